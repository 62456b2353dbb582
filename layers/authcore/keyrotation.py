"""The signing key set in Secrets Manager: the rotation steps (used by the rotation Lambda and the
admin command) and first-time initialisation.

Rotation follows Secrets Manager's four steps (createSecret, setSecret, testSecret, finishSecret):
the pending version is the current key set rotated next -> current -> previous with a fresh next key;
the HMAC key is carried over unchanged (every stored digest depends on it).
"""

from __future__ import annotations

import json
import time
from typing import Any

from botocore.exceptions import ClientError

from authcore import tokens

CLOCK_SKEW = 300


def _current(sm: Any, secret_id: str) -> dict[str, Any] | None:
    try:
        raw = sm.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")["SecretString"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
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


def rotation_step(sm: Any, event: dict[str, Any], access_token_ttl: int) -> None:
    secret_id, token, step = event["SecretId"], event["ClientRequestToken"], event["Step"]
    if step == "createSecret":
        try:
            sm.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
            return  # already created by an earlier attempt
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
        doc = next_document(_current(sm, secret_id), int(time.time()), access_token_ttl)
        sm.put_secret_value(
            SecretId=secret_id,
            ClientRequestToken=token,
            SecretString=json.dumps(doc),
            VersionStages=["AWSPENDING"],
        )
    elif step == "setSecret":
        return  # nothing outside the secret holds the keys
    elif step == "testSecret":
        pending = sm.get_secret_value(SecretId=secret_id, VersionId=token, VersionStage="AWSPENDING")
        keyset = tokens.KeySet.parse(pending["SecretString"])
        now = int(time.time())
        probe = tokens.sign_access_token(
            keyset, issuer="test", audience="test", subject="test", client_id="test", scope="",
            org_id="", grant_id="test", now=now, ttl=60,
        )  # fmt: skip
        tokens.verify_access_token(probe, keyset.public_keys, issuer="test", audience="test")
    elif step == "finishSecret":
        meta = sm.describe_secret(SecretId=secret_id)
        current = next(
            (v for v, stages in meta.get("VersionIdsToStages", {}).items() if "AWSCURRENT" in stages), None
        )
        if current == token:
            return
        sm.update_secret_version_stage(
            SecretId=secret_id, VersionStage="AWSCURRENT", MoveToVersionId=token, RemoveFromVersionId=current
        )
    else:
        raise ValueError(f"unknown rotation step {step!r}")


def rotate_now(sm: Any, secret_id: str, access_token_ttl: int) -> dict[str, Any]:
    """Rotate (or initialise) in one go, for the admin command and the local stack."""
    doc = next_document(_current(sm, secret_id), int(time.time()), access_token_ttl)
    sm.put_secret_value(SecretId=secret_id, SecretString=json.dumps(doc))
    return doc


def summary(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The key set without private halves, for printing."""
    return [{k: v for k, v in key.items() if k != "private_pem"} for key in doc["keys"]]
