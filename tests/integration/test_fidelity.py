"""Issue #8: every answer in the contract's shape (the legacy envelope's missing parameters)."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import Api
from tests.integration.test_device_flow import assert_oauth_error
from tests.support.aws import Seed

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"
BASIC = {"authorization": "Basic " + base64.b64encode(b"demo-cli:").decode()}


@pytest.mark.parametrize(
    ("query", "headers", "missing"),
    [
        pytest.param({}, {}, ["grant_type", "client_id"], id="nothing"),
        pytest.param({}, BASIC, ["grant_type"], id="nothing_but_basic"),
        pytest.param({"client_id": "demo-cli"}, {}, ["grant_type"], id="no_grant_type"),
        pytest.param({"grant_type": DEVICE}, {}, ["device_code", "client_id"], id="device_grant_alone"),
        pytest.param(
            {"grant_type": "refresh_token", "client_id": "demo-cli"}, {}, ["refresh_token"], id="refresh"
        ),
        pytest.param({"grant_type": "refresh_token"}, BASIC, ["refresh_token"], id="refresh_basic"),
    ],
)
def test_the_legacy_get_lists_every_missing_parameter(
    api: Api, account: Seed, query: dict[str, str], headers: dict[str, str], missing: list[str]
) -> None:
    result = api.call("GET", "/oauth/token", query=query, headers=headers)
    assert result.status == 400, result.text
    assert result.json() == {
        "success": False,
        "errorMessage": "Missing required params",
        "errorDetails": missing,
        "errorCode": "invalid_request",
    }
    assert result.headers["deprecation"] and result.headers["cache-control"] == "no-store"


def test_the_token_endpoint_names_every_missing_parameter(api: Api, account: Seed) -> None:
    body = assert_oauth_error(
        api.call("POST", "/oauth/token", form={"grant_type": DEVICE}), "invalid_request"
    )
    assert body["error_description"] == "Missing required parameters: device_code, client_id."


def test_only_the_client_missing_is_still_invalid_client(api: Api, account: Seed) -> None:
    """RFC 6749 §5.2: no client authentication at all is invalid_client, not a missing parameter."""
    started = api.device_code()
    form = {"grant_type": DEVICE, "device_code": started["device_code"]}
    assert_oauth_error(api.call("POST", "/oauth/token", form=form), "invalid_client", 401)
    legacy = api.call("GET", "/oauth/token", query=form)
    assert legacy.status == 401 and legacy.json()["errorCode"] == "invalid_client"


# ---------------------------------------------------------------- the $default route


@pytest.mark.parametrize(
    ("method", "path", "dialect"),
    [
        pytest.param("GET", "/nope", "product", id="unknown_path"),
        pytest.param("GET", "/", "product", id="root"),
        pytest.param("POST", "/auth/nope", "product", id="unknown_product_path"),
        pytest.param("GET", "/auth/refresh", "product", id="known_path_other_method"),
        pytest.param("TRACE", "/auth/refresh", "product", id="trace"),
        pytest.param("GET", "/oauth/nope", "oauth", id="unknown_oauth_path"),
        pytest.param("DELETE", "/oauth/token", "oauth", id="oauth_other_method"),
        pytest.param("PROPFIND", "/oauth/revoke", "oauth", id="oauth_unknown_method"),
        pytest.param("PUT", "/oauth/device/verify", "product", id="verify_other_method"),
        pytest.param("POST", "/.well-known/jwks.json", "product", id="jwks_other_method"),
    ],
)
def test_unknown_routes_and_methods_answer_404_in_the_contracts_shape(
    api: Api, method: str, path: str, dialect: str
) -> None:
    """API Gateway sends every request no route matches to $default (the discovery function), which
    answers the contract's 404 instead of API Gateway's {"message":"Not Found"}."""
    result = api.call(method, path)
    assert result.status == 404, result.text
    assert result.headers["cache-control"] == "no-store"
    assert result.headers["content-type"] == "application/json"
    body = result.json()
    if dialect == "oauth":
        assert body == {"error": "invalid_request", "error_description": "No such route."}
    else:
        assert body["status"] == 404 and body["type"] == "not_found" and body["details"] == []
        assert body["request_id"]
