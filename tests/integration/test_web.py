"""GET /device: the verification page, invoked the way the HTTP API calls WebFunction."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from local import lambda_host
from local.lambda_host import HttpResult

POOL_ID = "eu-west-1_Pool123"
CLIENT_ID = "4p1c1i3nt1d"


@pytest.fixture
def page_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_POOL_ID", POOL_ID)
    monkeypatch.setenv("USER_POOL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("COGNITO_REGION", "eu-west-1")
    for name in ("COGNITO_ENDPOINT", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")


def get_page(query: dict[str, str] | str | None = None) -> HttpResult:
    handler = lambda_host.load_function("functions/web")
    event = lambda_host.http_event("GET", "/device", query=query)
    return lambda_host.invoke(handler, event, "web")


def csp(result: HttpResult) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in result.headers["content-security-policy"].split(";"):
        name, *values = part.split()
        assert name not in directives, f"{name} appears twice"
        directives[name] = values
    return directives


def inline(result: HttpResult, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", result.text, flags=re.DOTALL)


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def attribute(result: HttpResult, name: str) -> Any:
    found = re.search(rf'\b{name}="([^"]*)"', result.text)
    assert found, f"{name} is missing"
    return found.group(1)


def test_page_is_html_never_cached_and_not_framable(page_env: None) -> None:
    result = get_page()
    assert result.status == 200
    assert result.headers["content-type"] == "text/html; charset=utf-8"
    assert result.headers["cache-control"] == "no-store"
    assert result.headers["x-frame-options"] == "DENY"
    assert result.headers["x-content-type-options"] == "nosniff"
    assert result.headers["referrer-policy"] == "no-referrer"  # the URL may carry a user code
    assert result.text.startswith("<!doctype html>")


def test_csp_allows_exactly_the_page_own_script_and_style(page_env: None) -> None:
    result = get_page()
    policy = csp(result)
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'none'"]
    (script,) = inline(result, "script")
    (style,) = inline(result, "style")
    assert policy["script-src"] == [sha256_source(script)]
    assert policy["style-src"] == [sha256_source(style)]
    assert "'unsafe-inline'" not in result.headers["content-security-policy"]
    assert "'unsafe-eval'" not in result.headers["content-security-policy"]
    # the API (same origin) and Cognito's endpoint for the configured region, nothing else
    assert policy["connect-src"] == ["'self'", "https://cognito-idp.eu-west-1.amazonaws.com"]


def test_page_loads_nothing_from_elsewhere(page_env: None) -> None:
    result = get_page()
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", result.text)
    assert "innerHTML" not in result.text and "localStorage" not in result.text


def test_page_carries_the_user_pool_configuration(page_env: None) -> None:
    result = get_page()
    assert attribute(result, "data-user-pool-id") == POOL_ID
    assert attribute(result, "data-client-id") == CLIENT_ID
    assert attribute(result, "data-cognito-endpoint") == "https://cognito-idp.eu-west-1.amazonaws.com/"


def test_cognito_endpoint_can_point_at_a_local_service(
    page_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COGNITO_ENDPOINT", "http://127.0.0.1:4566/")
    result = get_page()
    assert attribute(result, "data-cognito-endpoint") == "http://127.0.0.1:4566/"
    assert csp(result)["connect-src"] == ["'self'", "http://127.0.0.1:4566"]


def test_without_cognito_endpoint_the_page_uses_the_sdk_endpoint(
    page_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local stack sets AWS_ENDPOINT_URL (the embedded AWS endpoint) and nothing else."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5001")
    assert attribute(get_page(), "data-cognito-endpoint") == "http://127.0.0.1:5001"
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "http://localhost:5002/")
    assert attribute(get_page(), "data-cognito-endpoint") == "http://localhost:5002/"
    monkeypatch.setenv("COGNITO_ENDPOINT", "https://idp.example.test/")
    result = get_page()
    assert attribute(result, "data-cognito-endpoint") == "https://idp.example.test/"
    assert csp(result)["connect-src"] == ["'self'", "https://idp.example.test"]


def test_a_page_without_a_user_pool_still_renders_and_allows_no_other_origin(
    page_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER_POOL_CLIENT_ID", "")
    monkeypatch.setenv("COGNITO_ENDPOINT", "javascript:alert(1)")
    result = get_page()
    assert result.status == 200
    assert attribute(result, "data-client-id") == ""
    assert attribute(result, "data-cognito-endpoint") == ""  # the page says sign-in is not configured
    assert csp(result)["connect-src"] == ["'self'"]


def test_user_code_prefills_the_field(page_env: None) -> None:
    result = get_page({"user_code": "WDJB-MJHT"})
    assert re.search(r'<input id="user-code"[^>]*\svalue="WDJB-MJHT"', result.text)


def test_no_user_code_leaves_the_field_empty(page_env: None) -> None:
    assert re.search(r'<input id="user-code"[^>]*\svalue=""', get_page().text)


@pytest.mark.parametrize(
    "hostile",
    ['"><script>alert(1)</script>', "<script>alert(1)</script>", "' onfocus='alert(1)", 'a&b<c>d"e'],
)
def test_user_code_is_escaped_never_reflected_raw(page_env: None, hostile: str) -> None:
    result = get_page({"user_code": hostile})
    assert result.status == 200
    assert hostile not in result.text
    assert len(inline(result, "script")) == 1  # still only the page's own script
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace('"', "&quot;").replace("'", "&#x27;")
    assert re.search(r'<input id="user-code"[^>]*\svalue="' + re.escape(escaped) + '"', result.text)


def test_an_overlong_user_code_is_not_prefilled(page_env: None) -> None:
    result = get_page({"user_code": "B" * 65})
    assert "B" * 65 not in result.text
    assert re.search(r'<input id="user-code"[^>]*\svalue=""', result.text)
