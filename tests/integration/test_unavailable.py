"""When the signing key set cannot be read, every route answers the dependency error of its dialect,
with the headers the contract promises: OAuth `temporarily_unavailable` is "503 with Retry-After";
product `bad_gateway` is 502. (Injected AWS faults are covered by test_budget_and_faults; this is the
other way a key set goes missing: a secret that is there but unreadable, e.g. a bad manual edit.)"""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from authcore import runtime
from tests.conftest import SECRET, Api
from tests.integration.contract import assert_error
from tests.support import aws
from tests.support.forge import UNKNOWN_RT

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


@pytest.fixture
def broken_keys(account: aws.Seed) -> aws.Seed:
    boto3.client("secretsmanager", region_name=aws.REGION).put_secret_value(
        SecretId=SECRET, SecretString='{"version": 1, "keys": []}'
    )
    runtime.reset()  # a cold environment reads the new value
    return account


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/oauth/device/code", {"form": {"client_id": "demo-cli"}}),
        (
            "POST",
            "/oauth/token",
            {
                "form": {
                    "grant_type": "refresh_token",
                    "refresh_token": UNKNOWN_RT,
                    "client_id": "demo-cli",
                }
            },
        ),
        ("POST", "/oauth/revoke", {"form": {"token": "x", "client_id": "demo-cli"}}),
    ],
)
def test_oauth_routes_answer_503_with_retry_after(
    api: Api, broken_keys: aws.Seed, method: str, path: str, kwargs: dict[str, Any]
) -> None:
    result = api.call(method, path, **kwargs)
    assert_error(result, method=method, path=path, status=503, error="temporarily_unavailable")
    assert result.headers["retry-after"] == "1", result.headers  # the renderer's default: none was given


def test_product_route_answers_502(api: Api, broken_keys: aws.Seed) -> None:
    result = api.call("POST", "/auth/refresh", body={"refresh_token": UNKNOWN_RT})
    assert_error(result, method="POST", path="/auth/refresh", status=502, error="bad_gateway")
    assert result.headers["retry-after"] == "1"


def test_legacy_route_answers_500(api: Api, broken_keys: aws.Seed) -> None:
    """The legacy envelope has no 503: a dependency failure is its 500, temporarily_unavailable."""
    result = api.call(
        "GET",
        "/oauth/token",
        query={"grant_type": "refresh_token", "refresh_token": UNKNOWN_RT, "client_id": "demo-cli"},
    )
    assert_error(result, method="GET", path="/oauth/token", status=500, error="temporarily_unavailable")
