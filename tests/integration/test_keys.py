"""Signing-key rotation: the Secrets Manager rotation function's four steps, the admin command, and
what resource servers see through the JWKS: the public key set, published to a secret of its own."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import jwt
import pytest
from botocore.exceptions import ClientError

from authcore import keyrotation, runtime, tokens
from local import admin, lambda_host
from tests.conftest import ISSUER, SECRET, Api
from tests.integration.contract import assert_error_in
from tests.support import aws
from tests.support.aws import JWKS_SECRET, Seed

PUBLIC_JWK_MEMBERS = {"kty", "crv", "x", "y", "kid", "use", "alg"}


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


def published(sm: Any = None) -> dict[str, Any]:
    sm = sm or boto3.client("secretsmanager", region_name=aws.REGION)
    return json.loads(sm.get_secret_value(SecretId=JWKS_SECRET, VersionStage="AWSCURRENT")["SecretString"])  # type: ignore[no-any-return]


def public_versions(sm: Any) -> int:
    return len(sm.list_secret_version_ids(SecretId=JWKS_SECRET, IncludeDeprecated=True)["Versions"])


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


# ---------------------------------------------------------------- the public key set


def test_the_public_secret_is_the_public_half_of_the_private_set(api: Api) -> None:
    for _ in range(3):  # as initialised, then after rotations (with a previous key, then a retired one)
        doc = document()
        assert published() == tokens.KeySet.parse(doc).jwks()
        assert {k["kid"] for k in published()["keys"]} == {k["kid"] for k in doc["keys"]}
        result = api.call("GET", "/.well-known/jwks.json")
        assert result.status == 200 and result.json() == published()  # the route serves exactly it
        rotate_with_the_lambda()
    states = {k["status"] for k in document()["keys"]}
    assert states == {"previous", "current", "next"}


def test_the_public_document_holds_no_private_material(api: Api) -> None:
    rotate_with_the_lambda()  # a previous key too
    doc = document()
    for text in (
        boto3.client("secretsmanager", region_name=aws.REGION).get_secret_value(SecretId=JWKS_SECRET)[
            "SecretString"
        ],
        api.call("GET", "/.well-known/jwks.json").text,
    ):
        for key in json.loads(text)["keys"]:
            assert set(key) <= PUBLIC_JWK_MEMBERS, key  # no "d", no "private_pem", no "status"
        for private in ('"d"', "private_pem", "PRIVATE KEY", "hmac_key", doc["hmac_key"]):
            assert private not in text
        for key in doc["keys"]:
            assert key["private_pem"] not in text


def test_the_jwks_route_does_not_need_the_private_keys(api: Api, account: Seed) -> None:
    before = published()
    boto3.client("secretsmanager", region_name=aws.REGION).put_secret_value(
        SecretId=SECRET, SecretString='{"version": 1, "keys": []}'
    )  # the private set unreadable: the signers fail, discovery does not read it
    runtime.reset()
    result = api.call("GET", "/.well-known/jwks.json")
    assert result.status == 200 and result.json() == before
    refused = api.call("POST", "/oauth/device/code", form={"client_id": "demo-cli"})  # needs the HMAC key
    assert refused.status == 503, refused.text


@pytest.mark.parametrize(
    "broken",
    [
        None,  # no such secret
        "{}",  # the template's placeholder: not published yet
        "not json",
        '{"keys": []}',
        "private",  # the private key set, written to the wrong secret: never served
        "d",  # a JWK with its private half
    ],
)
def test_an_unreadable_public_key_set_answers_502(api: Api, broken: str | None) -> None:
    sm = boto3.client("secretsmanager", region_name=aws.REGION)
    if broken is None:
        sm.delete_secret(SecretId=JWKS_SECRET, ForceDeleteWithoutRecovery=True)
    else:
        if broken == "private":
            broken = json.dumps(document())
        elif broken == "d":
            jwks = published()
            jwks["keys"][0]["d"] = "c2VjcmV0"
            broken = json.dumps(jwks)
        sm.put_secret_value(SecretId=JWKS_SECRET, SecretString=broken)
    runtime.reset()  # a cold environment reads the new value
    result = api.call("GET", "/.well-known/jwks.json")
    # /.well-known/ is under neither /oauth/ nor /auth/: the service answers it as a product route
    assert_error_in(result, "product", status=502, error="bad_gateway")
    assert "PRIVATE KEY" not in result.text and "c2VjcmV0" not in result.text
    assert api.call("GET", "/.well-known/oauth-authorization-server").status == 200  # the rest still works


def test_rotation_steps_publish_idempotently(env: dict[str, str]) -> None:
    with aws.mock_secret() as sm:
        handler = lambda_host.load_function("functions/key_rotation")
        event = {"SecretId": SECRET, "ClientRequestToken": str(uuid.uuid4()), "Step": "createSecret"}
        before, versions = published(sm), public_versions(sm)
        for _ in range(2):  # createSecret publishes the current set: already published, nothing written
            handler(event, lambda_host.LambdaContext())
            assert published(sm) == before and public_versions(sm) == versions
        pending = tokens.KeySet.parse(
            sm.get_secret_value(SecretId=SECRET, VersionStage="AWSPENDING")["SecretString"]
        )
        assert pending.signing_kid in {k["kid"] for k in before["keys"]}  # in the JWKS before it signs
        for step in ("setSecret", "testSecret", "testSecret", "finishSecret"):
            handler({**event, "Step": step}, lambda_host.LambdaContext())
        after, versions = published(sm), public_versions(sm)
        assert after == tokens.KeySet.parse(document_in(sm)).jwks() != before  # the new next key is out
        for step in ("finishSecret", "createSecret"):  # retried: the same document, no new version
            handler({**event, "Step": step}, lambda_host.LambdaContext())
            assert published(sm) == after and public_versions(sm) == versions
        keyrotation.publish(sm, JWKS_SECRET, document_in(sm))
        assert published(sm) == after and public_versions(sm) == versions


def document_in(sm: Any) -> str:
    return str(sm.get_secret_value(SecretId=SECRET, VersionStage="AWSCURRENT")["SecretString"])


@contextmanager
def failing_publication(sm: Any) -> Iterator[None]:
    """PutSecretValue on the public key set's secret fails (at the boto3 boundary)."""

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if params.get("SecretId") == JWKS_SECRET:
            raise ClientError(
                {"Error": {"Code": "InternalServiceError", "Message": "injected"}}, "PutSecretValue"
            )

    sm.meta.events.register("before-parameter-build.secrets-manager.PutSecretValue", refuse)
    try:
        yield
    finally:
        sm.meta.events.unregister("before-parameter-build.secrets-manager.PutSecretValue", refuse)


def test_a_finish_step_that_failed_to_publish_publishes_when_retried(env: dict[str, str]) -> None:
    with aws.mock_secret() as sm:
        handler = lambda_host.load_function("functions/key_rotation")
        rotation_client = sys.modules[handler.__module__]._sm
        event = {"SecretId": SECRET, "ClientRequestToken": str(uuid.uuid4())}
        for step in ("createSecret", "setSecret", "testSecret"):
            handler({**event, "Step": step}, lambda_host.LambdaContext())
        before = published(sm)
        with failing_publication(rotation_client), pytest.raises(ClientError):
            handler({**event, "Step": "finishSecret"}, lambda_host.LambdaContext())
        assert published(sm) == before  # the stage moved, the publication did not happen
        handler({**event, "Step": "finishSecret"}, lambda_host.LambdaContext())  # Secrets Manager retries
        assert published(sm) == tokens.KeySet.parse(document_in(sm)).jwks() != before


def test_the_test_step_refuses_a_set_whose_signing_key_is_not_published(env: dict[str, str]) -> None:
    with aws.mock_secret() as sm:
        handler = lambda_host.load_function("functions/key_rotation")
        event = {"SecretId": SECRET, "ClientRequestToken": str(uuid.uuid4())}
        current = document_in(sm)
        handler({**event, "Step": "createSecret"}, lambda_host.LambdaContext())
        stranger = tokens.KeySet.parse(tokens.new_keyset_document()).jwks()
        sm.put_secret_value(SecretId=JWKS_SECRET, SecretString=json.dumps(stranger))
        with pytest.raises(ValueError, match="JWKS"):
            handler({**event, "Step": "testSecret"}, lambda_host.LambdaContext())
        assert document_in(sm) == current  # nothing signs with a key resource servers cannot know


def test_a_rotation_without_a_public_secret_id_writes_nothing(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JWKS_SECRET_ID")
    with aws.mock_secret() as sm:
        handler = lambda_host.load_function("functions/key_rotation")
        current = document_in(sm)
        event = {"SecretId": SECRET, "ClientRequestToken": str(uuid.uuid4()), "Step": "createSecret"}
        with pytest.raises(RuntimeError, match="JWKS_SECRET_ID"):
            handler(event, lambda_host.LambdaContext())
        assert document_in(sm) == current
        with pytest.raises(ClientError):
            sm.get_secret_value(SecretId=SECRET, VersionStage="AWSPENDING")


def test_first_rotation_publishes_the_first_key_set(env: dict[str, str]) -> None:
    with aws.mock_secret(initial="{}") as sm:
        assert published(sm) == {}  # the template's placeholder
        handler = lambda_host.load_function("functions/key_rotation")
        event = {"SecretId": SECRET, "ClientRequestToken": str(uuid.uuid4())}
        handler({**event, "Step": "createSecret"}, lambda_host.LambdaContext())
        pending = sm.get_secret_value(SecretId=SECRET, VersionStage="AWSPENDING")["SecretString"]
        assert published(sm) == tokens.KeySet.parse(pending).jwks()  # a fresh deploy has a JWKS at once
        for step in ("setSecret", "testSecret", "finishSecret"):
            handler({**event, "Step": step}, lambda_host.LambdaContext())
        assert published(sm) == tokens.KeySet.parse(document_in(sm)).jwks()


def test_admin_command_rotates_and_publishes(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    sm = boto3.client("secretsmanager", region_name=aws.REGION)
    assert admin.main(["keys", "rotate"]) == 0
    capsys.readouterr()
    assert published() == tokens.KeySet.parse(document()).jwks()
    sm.put_secret_value(SecretId=JWKS_SECRET, SecretString="{}")  # e.g. a stack upgraded to two secrets
    runtime.reset()
    assert api.call("GET", "/.well-known/jwks.json").status == 502
    assert admin.main(["keys", "publish"]) == 0
    assert json.loads(capsys.readouterr().out) == published() == tokens.KeySet.parse(document()).jwks()
    runtime.reset()
    assert api.call("GET", "/.well-known/jwks.json").json() == published()
