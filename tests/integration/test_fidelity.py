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
