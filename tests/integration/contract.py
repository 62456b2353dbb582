"""What the HTTP contract (docs/api.md) says every response looks like, as assertions shared by the
integration suites. Written from the contract, not from the code: the dialect of a route, the three
error shapes, the headers every response carries, and what a body must never contain."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from moto import mock_aws

from authcore import runtime
from local.lambda_host import HttpResult
from tests import conftest
from tests.support import aws

Dialect = Literal["oauth", "product", "legacy"]

OAUTH_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "authorization_pending",
        "slow_down",
        "access_denied",
        "expired_token",
        "server_error",
        "temporarily_unavailable",
    }
)
PRODUCT_TYPES = {  # type -> the statuses the contract's product table allows for it
    "invalid_request": {400},
    "authorization_pending": {400},
    "expired_token": {400},
    "invalid_client": {401},
    "invalid_grant": {401},
    "unauthorized": {401},
    "access_denied": {403},
    "not_found": {404},
    "already_exists": {409},
    "validation_error": {422},
    "upgrade_required": {426},
    "slow_down": {429},
    "rate_limited": {429},
    "internal_error": {500},
    "bad_gateway": {502},
    "gateway_timeout": {504},
}
PRODUCT_KEYS = {"status", "message", "type", "details", "request_id"}
LEGACY_ERROR_KEYS = {"success", "errorMessage", "errorDetails", "errorCode"}

# Text that only an unhandled exception puts in a body.
LEAK_MARKERS = (
    "Traceback",
    'File "',
    "Error(",
    "RecursionError",
    "AttributeError",
    "KeyError",
    "TypeError",
    "ValueError",
    "IndexError",
    "UnicodeDecodeError",
    "UnicodeEncodeError",
    "JSONDecodeError",
    "ValidationError",
    "ClientError",
    "PyJWTError",
    "DecodeError",
    "botocore",
    "site-packages",
    ".py:",
)


def dialect_of(method: str, path: str) -> Dialect:
    """docs/api.md, "Three kinds of route, three dialects"."""
    if method.upper() == "GET" and path == "/oauth/token":
        return "legacy"
    if path.startswith("/auth/") or path.startswith("/oauth/device/verify"):
        return "product"
    return "oauth"


def assert_common(result: HttpResult) -> Any:
    """Every API response, success or error, in every dialect; returns the parsed body."""
    assert result.headers.get("content-type", "").split(";")[0].strip() == "application/json", result.headers
    assert "no-store" in result.headers.get("cache-control", ""), result.headers
    for marker in LEAK_MARKERS:
        assert marker not in result.text, f"{marker!r} in body: {result.text[:500]}"
    return result.json()


def assert_error(
    result: HttpResult,
    *,
    method: str,
    path: str,
    status: int,
    error: str,
    request_id: str | None = None,
    loc: list[str | int] | None = None,
) -> dict[str, Any]:
    """The exact status and the dialect-correct error body for `error` (OAuth `error`, product `type`,
    legacy `errorCode`). `loc`: a product 422 must name this field in `details`."""
    return assert_error_in(
        result, dialect_of(method, path), status=status, error=error, request_id=request_id, loc=loc
    )


def assert_error_in(
    result: HttpResult,
    dialect: Dialect,
    *,
    status: int,
    error: str,
    request_id: str | None = None,
    loc: list[str | int] | None = None,
) -> dict[str, Any]:
    """`assert_error` for a dialect named outright."""
    if status < 500:
        assert result.status < 500, f"5xx for bad input: {result.status} {result.text[:500]}"
    body = assert_common(result)
    assert result.status == status, f"expected {status} {error}, got {result.status}: {result.text[:500]}"
    assert isinstance(body, dict), body
    if dialect == "product":
        assert set(body) == PRODUCT_KEYS, body
        assert body["status"] == result.status, body
        assert body["type"] == error, body
        assert result.status in PRODUCT_TYPES[error], body
        assert isinstance(body["message"], str) and body["message"], body
        assert isinstance(body["details"], list), body
        for detail in body["details"]:
            assert set(detail) == {"loc", "msg", "type"}, detail
            assert isinstance(detail["loc"], list) and detail["loc"], detail
            assert isinstance(detail["msg"], str) and isinstance(detail["type"], str), detail
        if request_id is not None:
            assert body["request_id"] == request_id, body
        else:
            assert isinstance(body["request_id"], str) and body["request_id"], body
        if loc is not None:
            locs = [d["loc"] for d in body["details"]]
            assert loc in locs, f"details should locate {loc}: {body['details']}"
    elif dialect == "oauth":
        assert error in OAUTH_ERRORS, error
        assert body["error"] == error, body
        assert isinstance(body.get("error_description"), str) and body["error_description"], body
        assert set(body) <= {"error", "error_description", "error_uri", "interval"}, body
    else:
        assert error in OAUTH_ERRORS, error
        assert set(body) == LEGACY_ERROR_KEYS, body
        assert body["success"] is False, body
        assert body["errorCode"] == error, body
        assert isinstance(body["errorMessage"], str) and body["errorMessage"], body
        assert isinstance(body["errorDetails"], list), body
        assert all(isinstance(d, str) for d in body["errorDetails"]), body
        assert_legacy_headers(result)
    return body


def assert_legacy_headers(result: HttpResult) -> None:
    assert result.headers.get("deprecation"), result.headers
    link = result.headers.get("link", "")
    assert "</oauth/token>" in link and 'rel="successor-version"' in link, result.headers


@contextlib.contextmanager
def shared_account() -> Iterator[aws.Seed]:
    """The `account` fixture of tests/conftest.py for a whole module (it is per test): the same
    environment, the same moto account, the same seed. For suites whose cases do not depend on each
    other's state, so that hundreds of cases stay fast."""
    with pytest.MonkeyPatch.context() as mp:
        for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "ISSUER", "VERIFICATION_URI"):
            mp.delenv(key, raising=False)
        for key, value in conftest.ENV.items():
            mp.setenv(key, value)
        runtime.reset()
        try:
            with mock_aws():
                aws.create_table(conftest.TABLE)
                aws.create_keys(conftest.SECRET)
                runtime.reset()
                yield aws.seed(conftest.TABLE, conftest.SECRET)
        finally:
            runtime.reset()
