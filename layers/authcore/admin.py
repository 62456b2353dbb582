"""Operator commands against whatever table and endpoint the environment names.

    python -m authcore.admin clients create --name "Acme CLI" --type public --grant device_code --grant refresh_token --scope read
    python -m authcore.admin clients list | disable ID | enable ID
    python -m authcore.admin orgs create --name "Acme" [--id acme] | orgs list
    python -m authcore.admin members add --user SUB --org ORG_ID [--role member] | members list --user SUB
    python -m authcore.admin keys rotate | keys publish | keys show

Environment: TABLE_NAME, KEYS_SECRET_ID, JWKS_SECRET_ID (the public key set, for `keys rotate` and
`keys publish`), and the usual AWS ones (AWS_REGION, AWS_PROFILE, AWS_ENDPOINT_URL for a local
endpoint). Output is JSON. A confidential client's secret is printed once and stored only as a keyed
digest.
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
from dataclasses import asdict
from typing import Any

import boto3

from authcore import keyrotation, tokens
from authcore.clients import DEVICE_GRANT, REFRESH_GRANT
from authcore.store import ClientRecord, Membership, Organization, Store

GRANT_ALIASES = {"device_code": DEVICE_GRANT, DEVICE_GRANT: DEVICE_GRANT, "refresh_token": REFRESH_GRANT}
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise SystemExit(f"error: set {name}")
    return value


def _store() -> Store:
    return Store(boto3.client("dynamodb"), _env("TABLE_NAME"))


def _keyset() -> tokens.KeySet:
    raw = boto3.client("secretsmanager").get_secret_value(
        SecretId=_env("KEYS_SECRET_ID"), VersionStage="AWSCURRENT"
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
    store.put_client(record)
    out = _client_view(record)
    if secret:
        out["client_secret"] = secret  # shown once, never stored
    return out


def _client_view(client: ClientRecord) -> dict[str, Any]:
    view = asdict(client)
    view.pop("secret_digest")
    return view


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
    parser = argparse.ArgumentParser(prog="python -m authcore.admin", description=__doc__.split("\n\n")[0])
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

    keys = sub.add_parser("keys", help="the signing key set").add_subparsers(dest="action", required=True)
    keys.add_parser("rotate", help="next -> current -> previous, new next (initialises an empty set)")
    keys.add_parser(
        "publish", help="write the current set's public halves to the JWKS secret (JWKS_SECRET_ID)"
    )
    keys.add_parser("show", help="key ids and states (no private halves)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
            )
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
        else:
            result = [asdict(m) for m in store.memberships(args.user)]
    else:
        sm = boto3.client("secretsmanager")
        secret_id = _env("KEYS_SECRET_ID")
        if args.action == "rotate":
            ttl = int(os.environ.get("ACCESS_TOKEN_TTL_SECONDS", "3600"))
            result = keyrotation.summary(keyrotation.rotate_now(sm, secret_id, ttl, _env("JWKS_SECRET_ID")))
        elif args.action == "publish":
            raw = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
            result = keyrotation.publish(sm, _env("JWKS_SECRET_ID"), raw)
        else:
            raw = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
            result = keyrotation.summary(json.loads(raw))
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
