"""The DynamoDB round-trip budget (DESIGN.md), counted with a botocore event hook, and faults of
DynamoDB and Secrets Manager injected at the boto3 boundary: the right answer, and nothing half-written."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from authcore import runtime
from authcore.clock import Manual
from tests.conftest import GRACE, TABLE, Api
from tests.support import aws
from tests.support.aws import Seed, count_dynamodb, inject
from tests.support.forge import forged_refresh_token, grant_of

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def warm(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    """Clients cached per execution environment, as deployed (CLIENT_CACHE_SECONDS default 60)."""
    monkeypatch.setenv("CLIENT_CACHE_SECONDS", "60")
    runtime.reset()
    api.device_code()  # warms the client cache and the key set
    return api


def test_device_authorization_is_one_call(warm: Api) -> None:
    with count_dynamodb() as calls:
        warm.device_code()
    assert calls.calls == ["TransactWriteItems"]


def test_exchange_is_one_call(warm: Api, account: Seed) -> None:
    started = warm.device_code()
    warm.approve(started["user_code"], account.user)
    with count_dynamodb() as calls:
        assert warm.exchange(started["device_code"]).status == 200
    assert calls.calls == ["UpdateItem"]
    form = {
        "grant_type": DEVICE_GRANT,
        "device_code": warm.device_code()["device_code"],
        "client_id": "demo-cli",
    }
    with count_dynamodb() as calls:
        assert warm.call("POST", "/oauth/token", form=form).json()["error"] == "authorization_pending"
    assert len(calls.calls) <= 2, calls.calls
    with count_dynamodb() as calls:
        assert warm.call("POST", "/oauth/token", form=form).json()["error"] == "slow_down"
    assert len(calls.calls) <= 2, calls.calls


def test_refresh_is_one_call_and_reuse_detection_two(warm: Api, account: Seed, clock: Manual) -> None:
    first = warm.signed_in(account)["refresh_token"]
    with count_dynamodb() as calls:
        second = warm.call("POST", "/auth/refresh", body={"refresh_token": first})
    assert second.status == 200
    assert calls.calls == ["UpdateItem"]
    clock.advance(GRACE + 1)
    with count_dynamodb() as calls:
        assert warm.call("POST", "/auth/refresh", body={"refresh_token": first}).status == 401
    assert calls.calls == ["UpdateItem", "UpdateItem"]


def test_a_forged_refresh_token_costs_no_call(warm: Api, account: Seed) -> None:
    """A token whose tag no server key made is refused before DynamoDB, on every route that takes one."""
    real = warm.signed_in(account)["refresh_token"]
    forged = forged_refresh_token(grant_of(real), generation=1)
    with count_dynamodb() as calls:
        assert warm.call("POST", "/auth/refresh", body={"refresh_token": forged}).status == 401
        form = {"grant_type": "refresh_token", "refresh_token": forged, "client_id": "demo-cli"}
        assert warm.call("POST", "/oauth/token", form=form).status == 400
        assert (
            warm.call("POST", "/oauth/revoke", form={"token": forged, "client_id": "demo-cli"}).status == 200
        )
        assert warm.call("POST", "/auth/logout", body={"refresh_token": forged}).status == 200
    assert calls.calls == []
    assert warm.call("POST", "/auth/refresh", body={"refresh_token": real}).status == 200


def test_revoking_a_family_is_one_call(warm: Api, account: Seed) -> None:
    refresh = warm.signed_in(account)["refresh_token"]
    with count_dynamodb() as calls:
        assert (
            warm.call("POST", "/oauth/revoke", form={"token": refresh, "client_id": "demo-cli"}).status == 200
        )
    assert calls.calls == ["UpdateItem"]


# ---------------------------------------------------------------- faults


def scan() -> list[dict[str, Any]]:
    items = boto3.client("dynamodb", region_name=aws.REGION).scan(TableName=TABLE)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


PRODUCT = {
    "throttle": (429, "rate_limited"),
    "error": (502, "bad_gateway"),
    "timeout": (504, "gateway_timeout"),
}


@pytest.mark.parametrize("kind", ["throttle", "error", "timeout"])
def test_exchange_faults_lose_nothing(api: Api, account: Seed, kind: str) -> None:
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    before = scan()
    with inject(kind, "dynamodb", "UpdateItem"):
        product = api.exchange(started["device_code"])
        oauth = api.call(
            "POST",
            "/oauth/token",
            form={"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": "demo-cli"},
        )
    status, type_ = PRODUCT[kind]
    assert product.status == status and product.json()["type"] == type_, product.text
    assert "retry-after" in product.headers or status != 429
    assert oauth.status == 503 and oauth.json()["error"] == "temporarily_unavailable"
    assert oauth.headers["retry-after"]
    assert scan() == before  # the code was not consumed
    assert api.exchange(started["device_code"]).status == 200  # and still works once the fault is gone


@pytest.mark.parametrize("kind", ["throttle", "error", "timeout"])
def test_secrets_manager_faults_do_not_consume_the_code(api: Api, account: Seed, kind: str) -> None:
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    before = scan()
    runtime.reset()  # a cold environment: the key set must be fetched
    with inject(kind, "secretsmanager", "GetSecretValue"):
        result = api.exchange(started["device_code"])
    assert result.status in {429, 502, 504} and result.json()["type"] in {
        "rate_limited",
        "bad_gateway",
        "gateway_timeout",
    }
    assert "Traceback" not in result.text
    assert scan() == before
    assert api.exchange(started["device_code"]).status == 200


@pytest.mark.parametrize("kind", ["throttle", "error", "timeout"])
def test_device_authorization_faults_write_nothing(api: Api, kind: str) -> None:
    before = scan()
    with inject(kind, "dynamodb", "TransactWriteItems"):
        result = api.call("POST", "/oauth/device/code", form={"client_id": "demo-cli"})
    assert result.status == 503 and result.json()["error"] == "temporarily_unavailable"
    assert result.headers["retry-after"]
    assert scan() == before


@pytest.mark.parametrize("kind", ["throttle", "error", "timeout"])
def test_approval_faults_leave_the_request_pending(api: Api, account: Seed, kind: str) -> None:
    started = api.device_code()
    before = scan()
    with inject(kind, "dynamodb", "UpdateItem"):
        result = api.approve(started["user_code"], account.user)
    assert result.status == PRODUCT[kind][0] and result.json()["type"] == PRODUCT[kind][1]
    assert scan() == before
    assert api.approve(started["user_code"], account.user).status == 200


@pytest.mark.parametrize("kind", ["throttle", "error", "timeout"])
def test_refresh_faults_leave_the_family_unchanged(api: Api, account: Seed, kind: str) -> None:
    refresh = api.signed_in(account)["refresh_token"]
    before = scan()
    with inject(kind, "dynamodb", "UpdateItem"):
        result = api.call("POST", "/auth/refresh", body={"refresh_token": refresh})
    assert result.status == PRODUCT[kind][0], result.text
    assert scan() == before  # no half rotation: the old token is still the current one
    assert api.call("POST", "/auth/refresh", body={"refresh_token": refresh}).status == 200


def test_a_client_created_after_a_miss_works_at_once(warm: Api) -> None:
    from authcore import admin

    assert warm.call("POST", "/oauth/device/code", form={"client_id": "late-cli"}).status == 401
    admin.create_client(
        runtime.store(),
        name="Late",
        client_type="public",
        grant_types=["device_code"],
        scopes=["read"],
        client_id="late-cli",
    )
    assert warm.call("POST", "/oauth/device/code", form={"client_id": "late-cli"}).status == 200


@pytest.mark.parametrize(
    ("client_id", "status", "type_"),
    [
        ("caf\u00e9-cli", 401, "invalid_client"),
        ("demo\x00cli", 401, "invalid_client"),
        ("tab\tcli", 401, "invalid_client"),
        ("\ud800", 422, "validation_error"),  # not even a string pydantic accepts
    ],
)
def test_a_client_id_outside_vschar_never_reaches_dynamodb(
    warm: Api, client_id: str, status: int, type_: str
) -> None:
    """RFC 6749 A.1: client_id is VSCHAR. Anything else is refused before it can key a read (real
    DynamoDB answers a ValidationException to some of these, which would have been a 5xx)."""
    with count_dynamodb() as calls:
        result = warm.call(
            "POST", "/auth/device/exchange", body={"device_code": "dc_x", "client_id": client_id}
        )
    assert result.status == status and result.json()["type"] == type_, result.text
    assert calls.calls == []
