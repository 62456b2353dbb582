"""The admin command: operator commands against the service's table and secrets.

From the repository root, against `make serve`'s stack (read from .local/serve.json, or the file
LOCAL_SERVE_INFO names, when TABLE_NAME is unset) or, with TABLE_NAME and the rest set, a deployed stack:

    make admin ARGS="clients list"                      # or: .venv/bin/python -m local.admin clients list
    .venv/bin/python -m local.admin clients create --name "Acme CLI" --type public --grant device_code --grant refresh_token --scope read
    .venv/bin/python -m local.admin clients list | disable ID | enable ID
    .venv/bin/python -m local.admin clients update ID [--access-token-ttl S] [--refresh-idle-timeout S] ... [--reset NAME]
    .venv/bin/python -m local.admin sessions list --user SUB | sessions revoke --user SUB | --org ORG | --client ID
    .venv/bin/python -m local.admin orgs create --name "Acme" [--id acme] | orgs list
    .venv/bin/python -m local.admin members add --user SUB --org ORG_ID [--role member] | members list --user SUB
    .venv/bin/python -m local.admin members remove --user SUB --org ORG_ID
    .venv/bin/python -m local.admin keys rotate | keys publish | keys show

Environment (a deployed stack's outputs): TABLE_NAME (TableName), KEYS_SECRET_ID (KeysSecretArn; `keys`
and confidential clients), JWKS_SECRET_ID (KeysPublicSecretArn; `keys rotate` and `keys publish`), and
the usual AWS ones (AWS_REGION, AWS_PROFILE or credentials, AWS_ENDPOINT_URL for a local endpoint).
Missing configuration (no table, no region, no credentials, an endpoint that does not answer) is one
line on stderr and exit status 2. Output is JSON. A confidential client's secret is printed once and
stored only as a keyed digest.

A tool, not part of the layer that ships to Lambda (docs/design.md).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "layers") not in sys.path:  # the layer's modules, as the functions have them
    sys.path.append(str(ROOT / "layers"))

import boto3  # noqa: E402
from botocore.exceptions import (  # noqa: E402
    BotoCoreError,
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

from authcore import keyrotation, sessions, tokens  # noqa: E402
from authcore.clients import DEVICE_GRANT, POLICY_BOUNDS, REFRESH_GRANT  # noqa: E402
from authcore.settings import MIN_IDLE_TIMEOUT_SECONDS  # noqa: E402
from authcore.store import ClientRecord, Grant, Membership, Organization, Store  # noqa: E402

INFO_FILE = ROOT / ".local" / "serve.json"  # written by `make serve`
# AWS answers that mean the command was pointed at the wrong place or with the wrong credentials
_CONFIGURATION_ERRORS = frozenset(
    {
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "AccessDeniedException",
        "AccessDenied",
    }
)

# admin option -> the client record's policy field (clients.policy): seconds, bounded by POLICY_BOUNDS
POLICY_OPTIONS = {
    "access-token-ttl": "access_token_ttl_seconds",
    "refresh-token-ttl": "refresh_token_ttl_seconds",
    "refresh-idle-timeout": "refresh_idle_timeout_seconds",
    "rotation-grace": "rotation_grace_seconds",
    "device-code-ttl": "device_code_ttl_seconds",
    "poll-interval": "poll_interval_seconds",
    "device-authorizations": "device_authorizations_per_window",  # a count per window, not seconds
}

GRANT_ALIASES = {"device_code": DEVICE_GRANT, DEVICE_GRANT: DEVICE_GRANT, "refresh_token": REFRESH_GRANT}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class Misconfigured(Exception):
    """What the command needs to know is missing: one line on stderr, exit status 2."""


def _env(name: str, what: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise Misconfigured(f"set {name} ({what}), or start `make serve` and leave TABLE_NAME unset")
    return value


def _store() -> Store:
    return Store(boto3.client("dynamodb"), _env("TABLE_NAME", "the service's DynamoDB table"))


def _keys_secret_id() -> str:
    return _env("KEYS_SECRET_ID", "the Secrets Manager secret of the signing key set")


def _jwks_secret_id() -> str:
    return _env("JWKS_SECRET_ID", "the Secrets Manager secret of the public key set")


def _keyset() -> tokens.KeySet:
    raw = boto3.client("secretsmanager").get_secret_value(
        SecretId=_keys_secret_id(), VersionStage="AWSCURRENT"
    )["SecretString"]
    return tokens.KeySet.parse(raw)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "item"


def _checked_id(value: str) -> str:
    if not _ID.match(value):
        raise SystemExit(f"error: {value!r} is not a valid id (letters, digits, . _ -, at most 64)")
    return value


def create_client(
    store: Store,
    *,
    name: str,
    client_type: str,
    grant_types: Sequence[str],
    scopes: Sequence[str],
    client_id: str | None = None,
    min_version: str | None = None,
    hmac: tokens.Hmac | None = None,
    introspection: bool = False,
    policy: dict[str, int] | None = None,
) -> dict[str, Any]:
    client_id = _checked_id(client_id or f"{_slug(name)}-{secrets.token_hex(4)}")
    grants = [GRANT_ALIASES[g] for g in grant_types]
    secret = None
    if introspection and client_type != "confidential":
        raise SystemExit("error: only a confidential client may introspect (--introspection)")
    if client_type == "confidential":
        if hmac is None:
            raise SystemExit("error: a confidential client needs the key set (KEYS_SECRET_ID)")
        secret = f"cs_{secrets.token_urlsafe(32)}"
    record = ClientRecord(
        client_id=client_id,
        name=name,
        client_type=client_type,
        grant_types=grants,
        scopes=list(dict.fromkeys(scopes)),
        secret_digest=hmac.digest(secret) if (hmac and secret) else None,
        min_version=min_version,
        created_at=int(time.time()),
        introspection=introspection,
    )
    record = replace(record, **cast(dict[str, Any], checked_policy(policy or {})))
    store.put_client(record)
    out = _client_view(record)
    if secret:
        out["client_secret"] = secret  # shown once, never stored
    return out


def _client_view(client: ClientRecord) -> dict[str, Any]:
    view = asdict(client)
    view.pop("secret_digest")
    return view


def checked_policy(policy: dict[str, int]) -> dict[str, int]:
    """Per-client lifetimes and limits, each within the bounds the deployment's settings have."""
    for name, value in policy.items():
        low, high = POLICY_BOUNDS[name]
        if name == "refresh_idle_timeout_seconds" and 0 < value < MIN_IDLE_TIMEOUT_SECONDS:
            raise SystemExit(
                f"error: --refresh-idle-timeout must be 0 (none) or at least {MIN_IDLE_TIMEOUT_SECONDS} seconds"
                " (longer than any rotation grace)"
            )
        if not low <= value <= high:
            option = next(o for o, f in POLICY_OPTIONS.items() if f == name)
            unit = "" if option == "device-authorizations" else " seconds"
            raise SystemExit(f"error: --{option} must be between {low} and {high}{unit}")
    return policy


def update_client(
    store: Store,
    client_id: str,
    policy: dict[str, int],
    reset: Sequence[str] = (),
    min_version: str | None = None,
) -> dict[str, Any]:
    """Change a client's policy (new grants take it; sessions keep what they began with); ``reset``
    gives a field back to the deployment's setting."""
    changes: dict[str, Any] = {**checked_policy(policy)}
    for option in reset:
        changes[POLICY_OPTIONS[option]] = None
    if min_version is not None:  # "" gives the client back every version
        changes["min_version"] = min_version or None
    if not changes:
        raise SystemExit("error: nothing to change (give an option, or --reset NAME)")
    updated = store.update_client(client_id, changes)
    if updated is None:
        raise SystemExit(f"error: no client {client_id!r}")
    return _client_view(updated)


def session_view(grant: Grant) -> dict[str, Any]:
    """A session as the admin command prints it: identifiers and times, never a digest."""
    return {
        "id": grant.grant_id,
        "user_id": grant.user_id,
        "client_id": grant.client_id,
        "org_id": grant.org_id,
        "scope": grant.scope,
        "issued_at": grant.issued_at,
        "last_used_at": grant.rt_rotated_at or grant.issued_at,
        "expires_at": grant.ends_at,
        "revoked_at": grant.revoked_at,
        "revoke_reason": grant.revoke_reason,
        "device_ip": grant.device_ip,
        "device_user_agent": grant.device_user_agent,
        "device_client_version": grant.device_client_version,
    }


def list_sessions(store: Store, user_id: str, now: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: tuple[int, str] | None = None
    while True:
        ids, after = store.session_ids("user", user_id, after=after)
        found += [session_view(g) for g in store.get_grants(ids) if sessions.live(g, now)]
        if after is None:
            return found


def revoke_sessions(store: Store, by: str, key: str, now: int) -> dict[str, Any]:
    """End every live session of a user, an organization (offboarding) or a client."""
    ended = sessions.sweep(store, by, key, now, "admin")
    return {"revoked": len(ended), by: key, "sessions": [session_view(g) for g in ended]}


def create_organization(store: Store, name: str, org_id: str | None = None) -> dict[str, Any]:
    org = Organization(org_id=_checked_id(org_id or _slug(name)), name=name, created_at=int(time.time()))
    store.put_organization(org)
    return asdict(org)


def add_member(store: Store, user_id: str, org_id: str, role: str) -> dict[str, Any]:
    org = store.get_organization(org_id)
    if org is None:
        raise SystemExit(f"error: no organization {org_id!r}")
    membership = Membership(
        user_id=user_id, org_id=org_id, org_name=org.name, role=role, created_at=int(time.time())
    )
    store.put_membership(membership)
    return asdict(membership)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local.admin", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--info-file",
        type=Path,
        default=Path(os.environ.get("LOCAL_SERVE_INFO") or INFO_FILE),
        help="what `make serve` wrote, read when TABLE_NAME is unset (default .local/serve.json, or LOCAL_SERVE_INFO)",
    )
    sub = parser.add_subparsers(dest="area", required=True)

    clients = sub.add_parser("clients", help="OAuth clients").add_subparsers(dest="action", required=True)
    create = clients.add_parser("create", help="register a client")
    create.add_argument("--name", required=True)
    create.add_argument("--id", dest="client_id")
    create.add_argument("--type", dest="client_type", choices=["public", "confidential"], default="public")
    create.add_argument("--grant", dest="grants", action="append", choices=sorted(GRANT_ALIASES))
    create.add_argument("--scope", dest="scopes", action="append", default=[])
    create.add_argument("--min-version", help="oldest X-Client-Version accepted (older: 426)")
    create.add_argument(
        "--introspection",
        action="store_true",
        help="may introspect other clients' tokens (a resource server; confidential clients only)",
    )
    for command in (create, update := clients.add_parser("update", help="change a client's policy")):
        for option, name in POLICY_OPTIONS.items():
            low, high = POLICY_BOUNDS[name]
            unit = "N" if option == "device-authorizations" else "SECONDS"
            command.add_argument(f"--{option}", type=int, metavar=unit, help=f"{low}..{high}")
    update.add_argument("client_id")
    update.add_argument("--min-version", help="oldest X-Client-Version accepted (older: 426)")
    update.add_argument(
        "--reset",
        action="append",
        default=[],
        choices=sorted(POLICY_OPTIONS),
        help="back to the deployment's",
    )
    clients.add_parser("list", help="list clients")
    for verb in ("disable", "enable"):
        clients.add_parser(verb, help=f"{verb} a client").add_argument("client_id")

    orgs = sub.add_parser("orgs", help="organizations").add_subparsers(dest="action", required=True)
    ocreate = orgs.add_parser("create", help="create an organization")
    ocreate.add_argument("--name", required=True)
    ocreate.add_argument("--id", dest="org_id")
    orgs.add_parser("list", help="list organizations")

    members = sub.add_parser("members", help="memberships").add_subparsers(dest="action", required=True)
    madd = members.add_parser("add", help="add a user (the identity provider's sub) to an organization")
    madd.add_argument("--user", required=True)
    madd.add_argument("--org", required=True)
    madd.add_argument("--role", default="member")
    members.add_parser("list", help="a user's organizations").add_argument("--user", required=True)
    mremove = members.add_parser(
        "remove", help="take a user out of an organization (their sessions there: sessions revoke --org)"
    )
    mremove.add_argument("--user", required=True)
    mremove.add_argument("--org", required=True)

    sess = sub.add_parser("sessions", help="people's sessions").add_subparsers(dest="action", required=True)
    sess.add_parser("list", help="a user's live sessions").add_argument("--user", required=True)
    srevoke = sess.add_parser("revoke", help="end sessions: a user's, an organization's, or a client's")
    whose = srevoke.add_mutually_exclusive_group(required=True)
    whose.add_argument("--user")
    whose.add_argument("--org")
    whose.add_argument("--client")

    keys = sub.add_parser("keys", help="the signing key set").add_subparsers(dest="action", required=True)
    keys.add_parser("rotate", help="next -> current -> previous, new next (initialises an empty set)")
    keys.add_parser(
        "publish", help="write the current set's public halves to the JWKS secret (JWKS_SECRET_ID)"
    )
    keys.add_parser("show", help="key ids and states (no private halves)")
    return parser


def _policy_args(args: argparse.Namespace) -> dict[str, int]:
    return {
        name: getattr(args, option.replace("-", "_"))
        for option, name in POLICY_OPTIONS.items()
        if getattr(args, option.replace("-", "_")) is not None
    }


def _run(args: argparse.Namespace) -> Any:
    result: Any
    if args.area == "clients":
        store = _store()
        if args.action == "create":
            result = create_client(
                store,
                name=args.name,
                client_type=args.client_type,
                grant_types=args.grants or ["device_code", "refresh_token"],
                scopes=args.scopes,
                client_id=args.client_id,
                min_version=args.min_version,
                introspection=args.introspection,
                hmac=_keyset().hmac if args.client_type == "confidential" else None,
                policy=_policy_args(args),
            )
        elif args.action == "update":
            result = update_client(store, args.client_id, _policy_args(args), args.reset, args.min_version)
        elif args.action == "list":
            result = [_client_view(c) for c in store.list_clients()]
        else:
            if not store.set_client_disabled(args.client_id, args.action == "disable"):
                raise SystemExit(f"error: no client {args.client_id!r}")
            result = {"client_id": args.client_id, "disabled": args.action == "disable"}
    elif args.area == "orgs":
        store = _store()
        if args.action == "create":
            result = create_organization(store, args.name, args.org_id)
        else:
            result = [asdict(o) for o in store.list_organizations()]
    elif args.area == "members":
        store = _store()
        if args.action == "add":
            result = add_member(store, args.user, args.org, args.role)
        elif args.action == "remove":
            if not store.delete_membership(args.user, args.org):
                raise SystemExit(f"error: {args.user!r} is not a member of {args.org!r}")
            result = {"user_id": args.user, "org_id": args.org, "removed": True}
        else:
            result = [asdict(m) for m in store.memberships(args.user)]
    elif args.area == "sessions":
        store = _store()
        now = int(time.time())
        if args.action == "list":
            result = list_sessions(store, args.user, now)
        else:
            by, key = next((b, getattr(args, b)) for b in ("user", "org", "client") if getattr(args, b))
            result = revoke_sessions(store, by, key, now)
    else:
        secret_id = _keys_secret_id()
        sm = boto3.client("secretsmanager")
        if args.action == "rotate":
            ttl = int(os.environ.get("ACCESS_TOKEN_TTL_SECONDS", "3600"))
            result = keyrotation.summary(keyrotation.rotate_now(sm, secret_id, ttl, _jwks_secret_id()))
        elif args.action == "publish":
            raw = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
            result = keyrotation.publish(sm, _jwks_secret_id(), raw)
        else:
            raw = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
            result = keyrotation.summary(json.loads(raw))
    return result


def _configure(info_file: Path) -> None:
    """With no TABLE_NAME, the local stack `make serve` describes in ``info_file``; then: a region and
    credentials, checked before any request (botocore would say so with a traceback)."""
    if not os.environ.get("TABLE_NAME"):
        if not info_file.is_file():
            raise Misconfigured(
                "no table: set TABLE_NAME, KEYS_SECRET_ID and JWKS_SECRET_ID (a deployed stack's outputs"
                " TableName, KeysSecretArn and KeysPublicSecretArn) and AWS_REGION, or start `make serve`"
            )
        info = json.loads(info_file.read_text(encoding="utf-8"))
        os.environ.update(
            AWS_ENDPOINT_URL=info["aws_endpoint_url"],
            AWS_REGION=info["region"],
            AWS_DEFAULT_REGION=info["region"],
            AWS_ACCESS_KEY_ID="local",
            AWS_SECRET_ACCESS_KEY="local",
            TABLE_NAME=info["table_name"],
            KEYS_SECRET_ID=info["keys_secret_id"],
            JWKS_SECRET_ID=info.get("jwks_secret_id", ""),
        )
    if os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
        os.environ["AWS_DEFAULT_REGION"] = os.environ["AWS_REGION"]  # botocore reads only this one
    session = boto3.session.Session()
    if not session.region_name:
        raise Misconfigured("no AWS region: set AWS_REGION (or a profile with a region, AWS_PROFILE)")
    if session.get_credentials() is None:
        raise Misconfigured(
            "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )


def _aws_error(exc: Exception) -> tuple[str, int]:
    """One line for an AWS error, and the exit status: 2 when it says the configuration is wrong."""
    if isinstance(exc, NoRegionError):
        return "no AWS region: set AWS_REGION (or a profile with a region, AWS_PROFILE)", 2
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", 2
    if isinstance(exc, EndpointConnectionError):
        local = " (is `make serve` running?)" if os.environ.get("AWS_ENDPOINT_URL") else ""
        return f"cannot reach AWS at {exc.kwargs.get('endpoint_url', '?')}{local}", 2
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "?"))
        return f"AWS refused {exc.operation_name}: {code}: {error.get('Message', '')}", (
            2 if code in _CONFIGURATION_ERRORS else 1
        )
    return f"{type(exc).__name__}: {exc}", 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _configure(args.info_file)
        result = _run(args)
    except Misconfigured as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:
        message, status = _aws_error(exc)
        print(f"error: {message}", file=sys.stderr)
        return status
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
