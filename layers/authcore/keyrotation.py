"""The signing key set in Secrets Manager: the rotation steps (used by the rotation Lambda and the
admin command), first-time initialisation, and the public key set published beside it.

Rotation follows Secrets Manager's four steps (createSecret, setSecret, testSecret, finishSecret):
the pending version is the current key set rotated next -> current -> previous with a fresh next key;
the HMAC key is carried over unchanged (every stored digest depends on it).

The private set (KEYS_SECRET_ID) is readable only by the functions that sign or digest. Its public
halves, the JWKS document (``KeySet.jwks()``: every kid of the set, current, previous and next), are
published to a second secret (JWKS_SECRET_ID) that the discovery function reads. A key is in the JWKS
before it signs: createSecret publishes the current set (whose ``next`` key is the one about to sign;
on first initialisation, the pending set, as nothing signs yet), testSecret refuses to go on unless the
published JWKS holds the key the pending set signs with, and finishSecret publishes the new current set
(with its new ``next``) once it is current. Publishing writes only when the document differs, so a
retried step publishes the same thing and adds no version.

Once finishSecret has published, it announces `keys.rotated` on the security events bus (EVENT_BUS_NAME;
authcore.security_events), best-effort: an event that cannot be put is logged, and the rotation, done by
then, does not fail for it. A retried finishSecret announces again, with the same `event_id`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from botocore.exceptions import ClientError

from authcore import security_events, tokens
from authcore.observability import logger

CLOCK_SKEW = 300
JWKS_SECRET_ENV = "JWKS_SECRET_ID"


def jwks_secret_id() -> str:
    """The id of the secret that holds the public key set (the environment's JWKS_SECRET_ID)."""
    value = os.environ.get(JWKS_SECRET_ENV, "")
    if not value:  # a deployment error: rotating without publishing would leave the JWKS behind
        raise RuntimeError(f"invalid configuration in environment variables: {JWKS_SECRET_ENV}")
    return value


def _not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException"


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code") or "ClientError")


def _current(sm: Any, secret_id: str) -> dict[str, Any] | None:
    try:
        raw = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise
    try:
        doc = json.loads(raw)
        tokens.KeySet.parse(doc)
    except (ValueError, KeyError, TypeError):
        return None  # a placeholder written by the template: initialise
    return doc  # type: ignore[no-any-return]


def next_document(current: dict[str, Any] | None, now: int, access_token_ttl: int) -> dict[str, Any]:
    if current is None:
        return tokens.new_keyset_document(now)
    return tokens.rotate_keyset_document(current, now, keep_retired_seconds=access_token_ttl + CLOCK_SKEW)


# ---------------------------------------------------------------- the public key set


def public_document(doc: dict[str, Any] | str) -> dict[str, list[dict[str, str]]]:
    """The JWKS of a key set document: the public halves of all its keys, nothing else."""
    return tokens.KeySet.parse(doc).jwks()


def _published(sm: Any, jwks_secret_id: str) -> str | None:
    try:
        raw = sm.get_secret_value(SecretId=jwks_secret_id, VersionStage="AWSCURRENT")["SecretString"]
    except ClientError as exc:
        if _not_found(exc):
            return None
        raise
    return str(raw)


def publish(sm: Any, jwks_secret_id: str, doc: dict[str, Any] | str) -> dict[str, Any]:
    """Make the JWKS secret hold the public halves of `doc`. Writes only when that changes it, so
    publishing the same key set again (a retried step) is a no-op."""
    jwks = public_document(doc)
    text = json.dumps(jwks, sort_keys=True, separators=(",", ":"))
    if _published(sm, jwks_secret_id) != text:
        sm.put_secret_value(SecretId=jwks_secret_id, SecretString=text)
    return jwks


def _published_kids(sm: Any, jwks_secret_id: str) -> set[str]:
    raw = _published(sm, jwks_secret_id)
    try:
        keys = json.loads(raw or "{}").get("keys", [])
        return {str(key["kid"]) for key in keys}
    except (ValueError, KeyError, TypeError, AttributeError):
        return set()


# ---------------------------------------------------------------- rotation


def announce(events: Any, doc: dict[str, Any] | str, secret_id: str) -> bool:
    """Put `keys.rotated` for the key set `doc` (now current) on the security events bus. Best-effort:
    a failure is logged (its error code, nothing of the keys) and answered False, never raised."""
    try:
        keys = (json.loads(doc) if isinstance(doc, str) else doc)["keys"]
        kid = next(str(k["kid"]) for k in keys if k["status"] == "current")
        next_kid = next((str(k["kid"]) for k in keys if k["status"] == "next"), None)
        event = security_events.key_rotation_event(kid, next_kid, int(time.time()))
        resources = [secret_id] if secret_id.startswith("arn:") else []
        bus = security_events.options().event_bus_name
        response = events.put_events(Entries=[security_events.entry(event, bus, resources)])
        if response.get("FailedEntryCount"):
            code = str((response.get("Entries") or [{}])[0].get("ErrorCode") or "NoResult")
            logger.warning("keys.rotated was not published", extra={"error_code": code})
            return False
    except Exception as exc:  # best-effort: the rotation is done and stays done
        code = _error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__
        logger.warning("keys.rotated was not published", extra={"error_code": code})
        return False
    return True


def rotation_step(
    sm: Any,
    event: dict[str, Any],
    access_token_ttl: int,
    jwks_secret: str | None = None,
    events: Any | None = None,
) -> None:
    """One step of a Secrets Manager rotation. `jwks_secret`: where the public set is published
    (default: JWKS_SECRET_ID from the environment). `events`: an EventBridge client, for finishSecret's
    `keys.rotated` (None: not announced)."""
    secret_id, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    jwks_id = jwks_secret or jwks_secret_id()  # before anything is written: a misconfiguration stops here
    if step == "createSecret":
        try:
            pending = sm.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
            doc = json.loads(pending["SecretString"])  # already created by an earlier attempt
        except ClientError as exc:
            if not _not_found(exc):
                raise
            doc = None
        current = _current(sm, secret_id)
        if doc is None:
            doc = next_document(current, int(time.time()), access_token_ttl)
            sm.put_secret_value(
                SecretId=secret_id,
                ClientRequestToken=token,
                SecretString=json.dumps(doc),
                VersionStages=["AWSPENDING"],
            )
        # The current set's `next` is the pending set's signing key: in the JWKS before it signs.
        # First initialisation: nothing signs yet; publish the pending set so a fresh deploy has a JWKS.
        publish(sm, jwks_id, current if current is not None else doc)
    elif step == "setSecret":
        return  # nothing outside the secret holds the private keys (the public set is published apart)
    elif step == "testSecret":
        pending = sm.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
        keyset = tokens.KeySet.parse(pending["SecretString"])
        now = int(time.time())
        probe = tokens.sign_access_token(
            keyset, issuer="test", audience="test", subject="test", client_id="test", scope="",
            org_id="", grant_id="test", now=now, ttl=60,
        )  # fmt: skip
        tokens.verify_access_token(probe, keyset.public_keys, issuer="test", audience="test")
        if keyset.signing_kid not in _published_kids(sm, jwks_id):
            raise ValueError("the published JWKS lacks the key the pending set signs with")
    elif step == "finishSecret":
        meta = sm.describe_secret(SecretId=secret_id)
        current = next(
            (v for v, stages in meta.get("VersionIdsToStages", {}).items() if "AWSCURRENT" in stages), None
        )
        if current != token:
            sm.update_secret_version_stage(
                SecretId=secret_id,
                VersionStage="AWSCURRENT",
                MoveToVersionId=token,
                RemoveFromVersionId=current,
            )
        # Also when the stage had already moved: a retried finishSecret still publishes.
        finished = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
        publish(sm, jwks_id, finished)
        if events is not None:
            announce(events, finished, secret_id)
    else:
        raise ValueError(f"unknown rotation step {step!r}")


def rotate_now(
    sm: Any, secret_id: str, access_token_ttl: int, jwks_secret: str | None = None
) -> dict[str, Any]:
    """Rotate (or initialise) in one go, for the admin command and the local stack, publishing the
    public set as the rotation function's steps do. `jwks_secret`: default JWKS_SECRET_ID."""
    jwks_id = jwks_secret or jwks_secret_id()
    current = _current(sm, secret_id)
    if current is not None:
        publish(sm, jwks_id, current)  # holds current's `next`, the key the new set signs with
    doc = next_document(current, int(time.time()), access_token_ttl)
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(doc))
    publish(sm, jwks_id, doc)
    return doc


def summary(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The key set without private halves, for printing."""
    return [{k: v for k, v in key.items() if k != "private_pem"} for key in doc["keys"]]
