"""Signing-key rotation: the Secrets Manager rotation function's four steps, the admin command, and
what resource servers see through the JWKS."""

from __future__ import annotations

import json
import uuid
from typing import Any

import boto3
import jwt
import pytest

from authcore import admin, keyrotation, runtime, tokens
from local import lambda_host
from tests.conftest import ISSUER, SECRET, Api
from tests.support import aws
from tests.support.aws import Seed


def jwks(api: Api) -> dict[str, Any]:
    result = api.call("GET", "/.well-known/jwks.json")
    assert result.status == 200
    assert result.headers["content-type"] == "application/json"
    return {k["kid"]: k for k in result.json()["keys"]}


def verify_with_jwks(api: Api, token: str) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(jwks(api)[kid]).key
    return jwt.decode(token, key, algorithms=["ES256"], audience=ISSUER, issuer=ISSUER)  # type: ignore[no-any-return]


def document() -> dict[str, Any]:
    sm = boto3.client("secretsmanager", region_name=aws.REGION)
    return json.loads(sm.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")["SecretString"])  # type: ignore[no-any-return]


def rotate_with_the_lambda() -> None:
    """What Secrets Manager does on a scheduled rotation: the four steps, with one version token."""
    handler = lambda_host.load_function("functions/key_rotation")
    token = str(uuid.uuid4())
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        handler({"SecretId": SECRET, "ClientRequestToken": token, "Step": step}, lambda_host.LambdaContext())
    runtime.reset()  # a new execution environment (or the cache's max age passing)


def test_jwks_publishes_current_and_next(api: Api) -> None:
    doc = document()
    states = {k["kid"]: k["status"] for k in doc["keys"]}
    assert sorted(states.values()) == ["current", "next"]
    published = jwks(api)
    assert set(published) == set(states)
    for key in published.values():
        assert key["kty"] == "EC" and key["crv"] == "P-256" and key["alg"] == "ES256" and key["use"] == "sig"
        assert "d" not in key  # never a private half


def test_rotation_keeps_old_tokens_valid(api: Api, account: Seed) -> None:
    before = api.signed_in(account)
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    next_kid = next(k["kid"] for k in document()["keys"] if k["status"] == "next")
    rotate_with_the_lambda()
    states = {k["kid"]: k["status"] for k in document()["keys"]}
    assert states[old_kid] == "previous" and states[next_kid] == "current"
    assert list(states.values()).count("next") == 1
    after = api.signed_in(account)
    assert (
        jwt.get_unverified_header(after["access_token"])["kid"] == next_kid
    )  # the pre-published key signs now
    assert verify_with_jwks(api, before["access_token"])["sub"] == "user-1"  # tokens from before still verify
    assert verify_with_jwks(api, after["access_token"])["sub"] == "user-1"
    assert api.call("POST", "/auth/refresh", body={"refresh_token": before["refresh_token"]}).status == 200


def test_the_hmac_key_survives_rotation(api: Api, account: Seed) -> None:
    hmac_before = document()["hmac_key"]
    signed = api.signed_in(account)
    rotate_with_the_lambda()
    rotate_with_the_lambda()
    assert document()["hmac_key"] == hmac_before
    # digests still match: the refresh token and the confidential client's secret still work
    assert api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]}).status == 200
    assert api.device_code("backend", client_secret=account.confidential_secret)


def test_a_retired_key_leaves_the_jwks_only_after_its_tokens_expired() -> None:
    doc = tokens.new_keyset_document(now=1_000)
    first = next(k["kid"] for k in doc["keys"] if k["status"] == "current")
    ttl = 3600 + keyrotation.CLOCK_SKEW
    doc = keyrotation.next_document(doc, 2_000, 3600)  # first -> previous at t=2000
    doc = keyrotation.next_document(doc, 2_000 + ttl - 1, 3600)  # too soon: tokens it signed may live
    assert first in {k["kid"] for k in doc["keys"]}
    doc = keyrotation.next_document(doc, 2_000 + ttl, 3600)  # everything it signed has expired
    assert first not in {k["kid"] for k in doc["keys"]}


def test_rotation_steps_are_idempotent(env: dict[str, str]) -> None:
    with aws.mock_secret() as sm:
        handler = lambda_host.load_function("functions/key_rotation")
        token = str(uuid.uuid4())
        event = {"SecretId": SECRET, "ClientRequestToken": token, "Step": "createSecret"}
        handler(event, lambda_host.LambdaContext())
        pending = sm.get_secret_value(SecretId=SECRET, VersionStage="AWSPENDING")["SecretString"]
        handler(event, lambda_host.LambdaContext())  # Secrets Manager retries a step: no second key set
        assert sm.get_secret_value(SecretId=SECRET, VersionStage="AWSPENDING")["SecretString"] == pending
        for step in ("setSecret", "testSecret", "finishSecret", "finishSecret"):
            handler({**event, "Step": step}, lambda_host.LambdaContext())
        assert sm.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")["SecretString"] == pending


def test_first_rotation_initialises_a_placeholder_secret(env: dict[str, str]) -> None:
    """The template creates the secret with "{}"; the rotation on first deploy writes a key set."""
    with aws.mock_secret(initial="{}") as sm:
        handler = lambda_host.load_function("functions/key_rotation")
        token = str(uuid.uuid4())
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
            handler(
                {"SecretId": SECRET, "ClientRequestToken": token, "Step": step}, lambda_host.LambdaContext()
            )
        keyset = tokens.KeySet.parse(
            sm.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")["SecretString"]
        )
        assert len(keyset.public_keys) == 2


def test_admin_command_rotates_and_shows(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    before = {k["kid"] for k in document()["keys"]}
    assert admin.main(["keys", "rotate"]) == 0
    rotated = json.loads(capsys.readouterr().out)
    assert {k["status"] for k in rotated} == {"previous", "current", "next"}
    assert all("private_pem" not in k for k in rotated)
    assert before < {k["kid"] for k in rotated}
    assert admin.main(["keys", "show"]) == 0
    shown = capsys.readouterr().out
    assert "PRIVATE KEY" not in shown


def test_admin_command_manages_clients(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        admin.main(["clients", "create", "--name", "Ops Tool", "--type", "confidential", "--scope", "read"])
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    secret = created["client_secret"]
    assert secret.startswith("cs_") and created["grant_types"] == [
        "urn:ietf:params:oauth:grant-type:device_code",
        "refresh_token",
    ]
    assert admin.main(["clients", "list"]) == 0
    listed = capsys.readouterr().out
    assert created["client_id"] in listed and secret not in listed and "secret_digest" not in listed
    assert api.device_code(created["client_id"], client_secret=secret)
    assert admin.main(["clients", "disable", created["client_id"]]) == 0
    capsys.readouterr()
    result = api.call(
        "POST", "/oauth/device/code", form={"client_id": created["client_id"], "client_secret": secret}
    )
    assert result.status == 401 and result.json()["error"] == "invalid_client"
    with pytest.raises(SystemExit):
        admin.main(["clients", "disable", "no-such-client"])


def test_admin_command_manages_organizations(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert admin.main(["orgs", "create", "--name", "Initech"]) == 0
    org = json.loads(capsys.readouterr().out)
    assert org["org_id"] == "initech"
    assert admin.main(["members", "add", "--user", "user-3", "--org", "initech", "--role", "admin"]) == 0
    capsys.readouterr()
    assert admin.main(["members", "list", "--user", "user-3"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["org_name"] == "Initech"
    started = api.device_code()
    assert api.approve(started["user_code"], account.lonely_user).status == 200
    with pytest.raises(SystemExit):
        admin.main(["members", "add", "--user", "user-3", "--org", "nowhere"])
