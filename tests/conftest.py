"""Shared fixtures: an AWS account on moto (in-process), the handlers loaded from functions/, and a
client that invokes them with API Gateway HTTP API payload-2.0 events."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from moto import mock_aws

from authcore import clock as service_clock
from authcore import routes, runtime
from local import lambda_host
from local.lambda_host import HttpResult
from tests.support import aws
from tests.support.idp import IDP

ROOT = Path(__file__).resolve().parent.parent
TABLE = "tokens-test"
SECRET = "token-service/keys"
ISSUER = "https://auth.example.test"
ORIGIN = "https://app.example.test"

# (method, path) -> function directory: the layer's one list of routes (test_template checks template.yaml)
ROUTES = {(r.method, r.path): r.function for r in routes.ROUTES}

ENV = {
    "AWS_DEFAULT_REGION": aws.REGION,
    "AWS_REGION": aws.REGION,
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "TABLE_NAME": TABLE,
    "KEYS_SECRET_ID": SECRET,
    "JWKS_SECRET_ID": aws.JWKS_SECRET,
    "ISSUER": ISSUER,
    "ALLOWED_ORIGINS": ORIGIN,
    "POWERTOOLS_SERVICE_NAME": "token-service",
    "POWERTOOLS_METRICS_NAMESPACE": "TokenService",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_DEV": "false",
    "CLIENT_CACHE_SECONDS": "0",
    **IDP.env,  # people sign in to the verify routes with ID tokens of the tests' identity provider
}
lambda_host.SIGN_IN = IDP.bearer  # http_event(claims=...) signs the person in with a real ID token


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "ISSUER", "VERIFICATION_URI"):
        monkeypatch.delenv(key, raising=False)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    runtime.reset()
    yield dict(os.environ)
    runtime.reset()


@pytest.fixture
def account(env: dict[str, str]) -> Iterator[aws.Seed]:
    with mock_aws():
        aws.create_table(TABLE)
        aws.create_keys(SECRET)
        runtime.reset()
        yield aws.seed(TABLE, SECRET)


@pytest.fixture
def clock() -> Iterator[service_clock.Manual]:
    """The service's clock, moved by the test (``clock.advance(11)``) instead of waited for."""
    manual = service_clock.Manual()
    service_clock.use(manual)
    yield manual
    service_clock.use(None)


GRACE = 30  # the default rotation grace (ROTATION_GRACE_SECONDS)


class Api:
    """Invokes the handlers the way the HTTP API would."""

    def call(self, method: str, path: str, **kwargs: Any) -> HttpResult:
        if routes.match(method, path) is None:  # as API Gateway sends it to the $default route
            kwargs.setdefault("route_key", routes.DEFAULT)
        event = lambda_host.http_event(method, path, **kwargs)
        return self.send(event)

    def send(self, event: dict[str, Any]) -> HttpResult:
        route = routes.BY_KEY.get(
            event["routeKey"], routes.BY_KEY[routes.DEFAULT]
        )  # else API Gateway's $default
        function = route.function
        handler = lambda_host.load_function(f"functions/{function}")
        return lambda_host.invoke(handler, event, function)

    # conveniences for the device flow
    def device_code(self, client_id: str = "demo-cli", **form: str) -> dict[str, Any]:
        result = self.call("POST", "/oauth/device/code", form={"client_id": client_id, **form})
        assert result.status == 200, result.text
        return result.json()  # type: ignore[no-any-return]

    def approve(self, user_code: str, user: dict[str, str], **body: Any) -> HttpResult:
        return self.call(
            "POST",
            "/oauth/device/verify",
            body={"user_code": user_code, "decision": "approve", **body},
            claims=user,
        )

    def exchange(self, device_code: str, client_id: str = "demo-cli") -> HttpResult:
        return self.call(
            "POST", "/auth/device/exchange", body={"device_code": device_code, "client_id": client_id}
        )

    def signed_in(self, seed: aws.Seed) -> dict[str, Any]:
        """A whole device flow: the product exchange's answer."""
        started = self.device_code()
        assert self.approve(started["user_code"], seed.user).status == 200
        result = self.exchange(started["device_code"])
        assert result.status == 200, result.text
        return result.json()  # type: ignore[no-any-return]


@pytest.fixture
def api(account: aws.Seed) -> Api:
    return Api()


class LogCapture:
    """Every line the service's logger writes (Powertools' JSON log lines and the audit trail, which is
    written to the same stream: observability.audit), as it writes them, passed on to its stream."""

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.lines: list[str] = []
        self._partial = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        *complete, self._partial = (self._partial + text).split("\n")
        self.lines.extend(complete)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


@pytest.fixture(autouse=True)
def captured_logs() -> Iterator[LogCapture]:
    """Every log line our code writes, as the Powertools logger's handler writes it (JSON)."""
    from authcore.observability import logger

    handler = cast(logging.StreamHandler[Any], logger.registered_handler)
    capture = LogCapture(handler.stream)
    previous = handler.setStream(cast(Any, capture))
    yield capture
    handler.setStream(previous)


def load_event(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "events" / name).read_text())  # type: ignore[no-any-return]
