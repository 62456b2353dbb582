"""The DynamoDB round-trip budget (docs/design.md), counted with a botocore event hook, and faults of
DynamoDB and Secrets Manager injected at the boto3 boundary: the right answer, and nothing half-written."""

from __future__ import annotations

import contextlib
import json
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from authcore import runtime, tokens
from authcore.clock import Manual
from local import lambda_host
from tests.conftest import GRACE, SECRET, TABLE, Api, LogCapture
from tests.integration.contract import assert_error
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
    assert_error(product, method="POST", path="/auth/device/exchange", status=status, error=type_)
    assert product.headers["retry-after"] == "1"
    assert_error(oauth, method="POST", path="/oauth/token", status=503, error="temporarily_unavailable")
    assert oauth.headers["retry-after"] == "1"
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
    status, type_ = PRODUCT[kind]
    assert_error(result, method="POST", path="/auth/device/exchange", status=status, error=type_)
    assert result.headers["retry-after"] == "1"
    assert scan() == before
    assert api.exchange(started["device_code"]).status == 200


@pytest.mark.parametrize("kind", ["throttle", "error", "timeout"])
def test_device_authorization_faults_write_nothing(api: Api, kind: str) -> None:
    before = scan()
    with inject(kind, "dynamodb", "TransactWriteItems"):
        result = api.call("POST", "/oauth/device/code", form={"client_id": "demo-cli"})
    assert_error(
        result, method="POST", path="/oauth/device/code", status=503, error="temporarily_unavailable"
    )
    assert result.headers["retry-after"] == "1"
    assert scan() == before


@pytest.mark.parametrize("kind", ["throttle", "error", "timeout"])
def test_approval_faults_leave_the_request_pending(api: Api, account: Seed, kind: str) -> None:
    started = api.device_code()
    before = scan()
    with inject(kind, "dynamodb", "UpdateItem"):
        result = api.approve(started["user_code"], account.user)
    status, type_ = PRODUCT[kind]
    assert_error(result, method="POST", path="/oauth/device/verify", status=status, error=type_)
    assert scan() == before
    assert api.approve(started["user_code"], account.user).status == 200


@pytest.mark.parametrize("kind", ["throttle", "error", "timeout"])
def test_refresh_faults_leave_the_family_unchanged(api: Api, account: Seed, kind: str) -> None:
    refresh = api.signed_in(account)["refresh_token"]
    before = scan()
    with inject(kind, "dynamodb", "UpdateItem"):
        result = api.call("POST", "/auth/refresh", body={"refresh_token": refresh})
    status, type_ = PRODUCT[kind]
    assert_error(result, method="POST", path="/auth/refresh", status=status, error=type_)
    assert scan() == before  # no half rotation: the old token is still the current one
    assert api.call("POST", "/auth/refresh", body={"refresh_token": refresh}).status == 200


def test_a_client_created_after_a_miss_works_at_once(warm: Api) -> None:
    from local import admin

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


# ---------------------------------------------------------------- faults that are not AWS's


@contextlib.contextmanager
def raising(exc: BaseException, operation: str) -> Iterator[None]:
    """One DynamoDB operation of the runtime's client raises ``exc`` (not an AWS error: a bug in a
    library, a bad response shape) at the botocore boundary."""

    def hook(model: Any, **_: Any) -> None:
        if model.name == operation:
            raise exc

    events = runtime.store().client.meta.events
    events.register_first("before-call.dynamodb", hook)
    try:
        yield
    finally:
        events.unregister("before-call.dynamodb", hook)


DIALECT_500 = {  # (method, path) -> (status, error) for an unexpected fault, docs/api.md's three dialects
    ("POST", "/oauth/token"): (500, "server_error"),
    ("POST", "/auth/device/exchange"): (500, "internal_error"),
    ("GET", "/oauth/token"): (500, "server_error"),
}


def exchange_in(api: Api, method: str, path: str, device_code: str) -> Any:
    if path == "/auth/device/exchange":
        return api.exchange(device_code)
    params = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": "demo-cli"}
    if method == "GET":
        return api.call("GET", path, query=params)
    return api.call("POST", path, form=params)


def assert_clean_fault_log(logs: LogCapture, error_type: str, *secrets: str) -> None:
    """One error line that names the exception's type and where it was raised, never its text."""
    faults = [json.loads(line) for line in logs.lines if '"unexpected error"' in line]
    assert len(faults) == 1, logs.lines
    assert faults[0]["level"] == "ERROR" and faults[0]["error_type"] == error_type, faults[0]
    assert faults[0]["frames"] and all(isinstance(f, str) for f in faults[0]["frames"]), faults[0]
    text = "\n".join(logs.lines)
    for secret in secrets:
        assert secret not in text


@pytest.mark.parametrize("route", sorted(DIALECT_500))
@pytest.mark.parametrize("error", [RuntimeError, KeyError, TypeError])
def test_a_non_aws_fault_is_a_clean_500_in_each_dialect(
    api: Api, account: Seed, captured_logs: LogCapture, route: tuple[str, str], error: type[Exception]
) -> None:
    method, path = route
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    before = scan()
    captured_logs.lines.clear()
    # The exception's text quotes the request, secrets and all, as a library's message might.
    fault = error(f"injected fault text: {started['device_code']}")
    with raising(fault, "UpdateItem"):
        result = exchange_in(api, method, path, started["device_code"])
    status, code = DIALECT_500[route]
    body = assert_error(result, method=method, path=path, status=status, error=code)
    assert "injected fault text" not in result.text and started["device_code"] not in result.text, body
    assert "retry-after" not in result.headers  # not a dependency that will come back
    assert_clean_fault_log(captured_logs, error.__name__, "injected fault text", started["device_code"])
    assert scan() == before  # nothing half-written
    assert api.exchange(started["device_code"]).status == 200  # and the code still works


# ---------------------------------------------------------------- invalid configuration

BAD_CONFIGURATION = [
    ("ACCESS_TOKEN_TTL_SECONDS", "ttl-7f3a9c"),  # not a number (and a value no log may repeat)
    ("ROTATION_GRACE_SECONDS", "5"),  # below the minimum: a retry would look like reuse
    ("TABLE_NAME", None),  # missing
]


def telltale(value: str | None) -> list[str]:
    """The value, when it is distinctive enough to look for in logs ("5" is in every timestamp)."""
    return [value] if value and not value.isdigit() else []


@pytest.fixture(params=BAD_CONFIGURATION, ids=[name for name, _ in BAD_CONFIGURATION])
def misconfigured(
    request: pytest.FixtureRequest, api: Api, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str | None]:
    name, value = request.param
    if value is None:
        monkeypatch.delenv(name)
    else:
        monkeypatch.setenv(name, value)
    runtime.reset()  # a new execution environment reads its configuration afresh
    return name, value


@pytest.mark.parametrize("route", sorted(DIALECT_500))
def test_invalid_configuration_is_a_clean_500_in_each_dialect(
    api: Api, misconfigured: tuple[str, str | None], captured_logs: LogCapture, route: tuple[str, str]
) -> None:
    name, value = misconfigured
    method, path = route
    captured_logs.lines.clear()
    code = "dc_" + "0" * 32 + "_" + "A" * 43
    result = exchange_in(api, method, path, code)
    status, error = DIALECT_500[route]
    assert_error(result, method=method, path=path, status=status, error=error)
    assert name not in result.text  # the caller learns nothing of the deployment
    faults = [json.loads(line) for line in captured_logs.lines if '"invalid configuration"' in line]
    assert len(faults) == 1 and faults[0]["level"] == "ERROR", captured_logs.lines
    assert faults[0]["error_type"] == "ConfigurationError" and name in faults[0]["detail"]
    assert all(v not in "\n".join(captured_logs.lines) for v in telltale(value))


def test_invalid_configuration_is_logged_by_name(
    api: Api, misconfigured: tuple[str, str | None], captured_logs: LogCapture
) -> None:
    name, value = misconfigured
    captured_logs.lines.clear()
    code = "dc_" + "0" * 32 + "_" + "A" * 43
    form = {"grant_type": DEVICE_GRANT, "device_code": code, "client_id": "demo-cli"}
    result = api.call("POST", "/oauth/token", form=form)
    assert result.status == 500
    text = "\n".join(captured_logs.lines)
    assert name in text
    assert all(v not in text for v in telltale(value))


# ---------------------------------------------------------------- key rotation under Secrets Manager faults


def sm_fault(kind: str, operation: str) -> Exception:
    if kind == "timeout":
        return ReadTimeoutError(endpoint_url="https://secretsmanager.local")
    code = {"throttle": "ThrottlingException", "error": "InternalServiceError"}[kind]
    return ClientError({"Error": {"Code": code, "Message": "injected"}}, operation)


@contextlib.contextmanager
def failing_secret_call(
    client: Any, kind: str, operation: str, secret_id: str, stage: str | None
) -> Iterator[list[dict[str, Any]]]:
    """One Secrets Manager operation on one secret (and version stage) of the rotation's own client
    fails at the botocore boundary; yields the calls it failed."""
    failed: list[dict[str, Any]] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        if params.get("SecretId") == secret_id and (stage is None or params.get("VersionStage") == stage):
            failed.append(dict(params))
            raise sm_fault(kind, operation)

    event = f"before-parameter-build.secrets-manager.{operation}"
    client.meta.events.register_first(event, hook)
    try:
        yield failed
    finally:
        client.meta.events.unregister(event, hook)


ROTATION_STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
# Each Secrets Manager call a rotation step makes: (step, operation, secret, version stage). The
# publication's PutSecretValue in finishSecret is tests/integration/test_keys.py's.
ROTATION_CALLS = [
    ("createSecret", "GetSecretValue", SECRET, "AWSPENDING"),  # created by an earlier attempt?
    ("createSecret", "GetSecretValue", SECRET, "AWSCURRENT"),  # the set to rotate
    ("createSecret", "PutSecretValue", SECRET, None),  # the pending set
    ("createSecret", "GetSecretValue", aws.JWKS_SECRET, "AWSCURRENT"),  # what is published
    ("testSecret", "GetSecretValue", SECRET, "AWSPENDING"),
    ("testSecret", "GetSecretValue", aws.JWKS_SECRET, "AWSCURRENT"),
    ("finishSecret", "DescribeSecret", SECRET, None),
    ("finishSecret", "UpdateSecretVersionStage", SECRET, None),
    ("finishSecret", "GetSecretValue", SECRET, "AWSCURRENT"),  # the set to publish, once current
    ("finishSecret", "GetSecretValue", aws.JWKS_SECRET, "AWSCURRENT"),
]


def secret_text(sm: Any, secret_id: str, stage: str = "AWSCURRENT") -> str:
    return str(sm.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"])


def published_kids(sm: Any) -> set[str]:
    return {key["kid"] for key in json.loads(secret_text(sm, aws.JWKS_SECRET))["keys"]}


@pytest.mark.parametrize("kind", ["error", "throttle", "timeout"])
@pytest.mark.parametrize(
    ("step", "operation", "secret_id", "stage"),
    ROTATION_CALLS,
    ids=[
        f"{step}-{op}-{'jwks' if sid == aws.JWKS_SECRET else 'keys'}-{stage}"
        for step, op, sid, stage in ROTATION_CALLS
    ],
)
def test_a_rotation_step_that_fails_is_retried_to_the_same_end(
    env: dict[str, str],
    captured_logs: LogCapture,
    step: str,
    operation: str,
    secret_id: str,
    stage: str | None,
    kind: str,
) -> None:
    """A step whose Secrets Manager call fails raises (so Secrets Manager retries it), leaves nothing a
    resource server could trip on (the key that signs is always in the published JWKS, the current
    set is untouched until finishSecret moves it), and the retried step ends the rotation as if nothing
    had happened: one new key set, current, and published."""
    with aws.mock_secret() as sm:
        handler = lambda_host.load_function("functions/key_rotation")
        rotation_client = sys.modules[handler.__module__]._sm
        event = {"SecretId": SECRET, "ClientRequestToken": str(uuid.uuid4())}
        before = secret_text(sm, SECRET)
        before_jwks = secret_text(sm, aws.JWKS_SECRET)
        for earlier in ROTATION_STEPS[: ROTATION_STEPS.index(step)]:
            handler({**event, "Step": earlier}, lambda_host.LambdaContext())
        # the new set, once createSecret has made it
        pending = None if step == "createSecret" else secret_text(sm, SECRET, "AWSPENDING")
        expected = ClientError if kind != "timeout" else ReadTimeoutError
        with (
            failing_secret_call(rotation_client, kind, operation, secret_id, stage) as failed,
            pytest.raises(expected),
        ):
            handler({**event, "Step": step}, lambda_host.LambdaContext())
        assert len(failed) == 1, failed
        # Whatever the step did before failing, what signs is published, and nothing else moved.
        signing = tokens.KeySet.parse(secret_text(sm, SECRET)).signing_kid
        assert signing in published_kids(sm)
        if (step, operation) == ("finishSecret", "GetSecretValue"):
            assert secret_text(sm, SECRET) == pending  # moved, then failed to publish: retried below
        else:
            assert secret_text(sm, SECRET) == before  # the stage moves only in finishSecret
        if step != "createSecret":
            assert secret_text(sm, SECRET, "AWSPENDING") == pending
        if step in ("createSecret", "testSecret"):
            assert secret_text(sm, aws.JWKS_SECRET) == before_jwks

        # Secrets Manager retries the step, then goes on.
        for retried in ROTATION_STEPS[ROTATION_STEPS.index(step) :]:
            handler({**event, "Step": retried}, lambda_host.LambdaContext())
        current = secret_text(sm, SECRET)
        assert current != before
        assert pending is None or current == pending  # the set created before the fault, not another
        versions = sm.list_secret_version_ids(SecretId=SECRET)["Versions"]
        assert sum("AWSCURRENT" in v["VersionStages"] for v in versions) == 1
        assert json.loads(secret_text(sm, aws.JWKS_SECRET)) == tokens.KeySet.parse(current).jwks()
        old = {k["kid"]: k["status"] for k in json.loads(before)["keys"]}
        new = {k["kid"]: k["status"] for k in json.loads(current)["keys"]}
        assert new[next(kid for kid, status in old.items() if status == "next")] == "current"
        assert new[next(kid for kid, status in old.items() if status == "current")] == "previous"

    text = "\n".join(captured_logs.lines)
    for private in ("PRIVATE KEY", "private_pem", json.loads(before)["hmac_key"]):
        assert private not in text
