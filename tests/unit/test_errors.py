"""authcore.errors.TABLE against docs/api.md, and render_problem's exact bodies and headers per dialect.

The contract's tables are copied here by hand, on purpose: the test compares the code to the document,
not the code to itself.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.exceptions
import pytest

from authcore import errors, http

# docs/api.md, product dialect: status -> type values.
PRODUCT_TABLE = {
    "invalid_request": 400,
    "authorization_pending": 400,
    "expired_token": 400,
    "invalid_client": 401,
    "invalid_grant": 401,
    "unauthorized": 401,
    "access_denied": 403,
    "not_found": 404,
    "already_exists": 409,
    "validation_error": 422,
    "upgrade_required": 426,
    "slow_down": 429,
    "rate_limited": 429,
    "internal_error": 500,
    "bad_gateway": 502,
    "gateway_timeout": 504,
}
# docs/api.md, OAuth dialect: every `error`, status 400 except these.
OAUTH_ERRORS = {
    "invalid_request": 400,
    "invalid_client": 401,
    "invalid_grant": 400,
    "unauthorized_client": 400,
    "unsupported_grant_type": 400,
    "invalid_scope": 400,
    "authorization_pending": 400,
    "slow_down": 400,
    "access_denied": 400,
    "expired_token": 400,
    "server_error": 500,
    "temporarily_unavailable": 503,
}
# "No such route" (404 not_found) is the one row outside the OAuth table: only a path the resolver
# does not know reaches it (API Gateway itself answers unknown routes), and 404 is what it means.
NO_SUCH_ROUTE = "not_found"
# Too many device authorization requests from one source address: 429 with temporarily_unavailable (the
# sessions issue, #9: slow_down stays reserved for polling); the contract's 503 is for the service's own
# faults. The API reference says so.
ADDRESS_LIMIT = "too_many_requests"
DIALECTS: tuple[http.Dialect, ...] = ("oauth", "product", "legacy")
REQUEST_ID = "c0a8Xyz123abcde="
PROBLEMS = {  # kind -> its Problem class
    cls.kind: cls
    for cls in vars(errors).values()
    if isinstance(cls, type) and issubclass(cls, errors.Problem) and cls is not errors.Problem
}


def render(problem: errors.Problem, dialect: http.Dialect) -> tuple[int, dict[str, str], Any]:
    response = http.render_problem(problem, dialect, REQUEST_ID)
    return (
        response.status_code,
        {k: str(v) for k, v in response.headers.items()},
        json.loads(str(response.body)),
    )


# ---------------------------------------------------------------- the table


def test_every_product_type_of_the_contract_is_spoken() -> None:
    spoken = {(s.product_type, s.product_status) for s in errors.TABLE.values()}
    assert set(PRODUCT_TABLE.items()) <= spoken


def test_every_oauth_error_of_the_contract_is_spoken() -> None:
    spoken = {(s.oauth_error, s.oauth_status) for s in errors.TABLE.values()}
    assert set(OAUTH_ERRORS.items()) <= spoken


@pytest.mark.parametrize("kind", sorted(errors.TABLE))
def test_every_row_says_what_the_contract_allows(kind: str) -> None:
    spoken = errors.TABLE[kind]
    assert spoken.product_type in PRODUCT_TABLE, kind
    assert spoken.product_status == PRODUCT_TABLE[spoken.product_type], kind
    assert spoken.oauth_error in OAUTH_ERRORS, kind
    if kind == ADDRESS_LIMIT:
        assert (spoken.oauth_error, spoken.oauth_status) == ("temporarily_unavailable", 429)
    elif kind != NO_SUCH_ROUTE:
        assert spoken.oauth_status == OAUTH_ERRORS[spoken.oauth_error], kind
    assert spoken.title


@pytest.mark.parametrize(
    ("kind", "product", "oauth"),
    [  # the rows whose meaning the contract names outright
        ("invalid_request", ("invalid_request", 400), ("invalid_request", 400)),
        ("validation_error", ("validation_error", 422), ("invalid_request", 400)),
        ("invalid_client", ("invalid_client", 401), ("invalid_client", 401)),
        ("invalid_grant", ("invalid_grant", 401), ("invalid_grant", 400)),
        ("authorization_pending", ("authorization_pending", 400), ("authorization_pending", 400)),
        ("slow_down", ("slow_down", 429), ("slow_down", 400)),
        ("access_denied", ("access_denied", 403), ("access_denied", 400)),
        ("expired_token", ("expired_token", 400), ("expired_token", 400)),
        ("not_found", ("not_found", 404), None),
        ("already_exists", ("already_exists", 409), None),
        ("unauthorized", ("unauthorized", 401), None),
        ("upgrade_required", ("upgrade_required", 426), None),
        ("rate_limited", ("rate_limited", 429), None),
        ("dependency_failed", ("bad_gateway", 502), ("temporarily_unavailable", 503)),
        ("dependency_timeout", ("gateway_timeout", 504), ("temporarily_unavailable", 503)),
        ("dependency_throttled", None, ("temporarily_unavailable", 503)),
        ("internal_error", ("internal_error", 500), ("server_error", 500)),
    ],
)
def test_named_rows(kind: str, product: tuple[str, int] | None, oauth: tuple[str, int] | None) -> None:
    spoken = errors.TABLE[kind]
    if product is not None:
        assert (spoken.product_type, spoken.product_status) == product
    if oauth is not None:
        assert (spoken.oauth_error, spoken.oauth_status) == oauth


def test_every_kind_has_its_exception_and_every_exception_its_row() -> None:
    assert set(PROBLEMS) == set(errors.TABLE)
    for kind, cls in PROBLEMS.items():
        problem = cls()
        assert problem.spoken is errors.TABLE[kind]
        assert problem.message == cls.default_message and problem.message


# ---------------------------------------------------------------- rendering


def test_product_body_is_the_canonical_envelope() -> None:
    details = [{"loc": ["body", "device_code"], "msg": "Field required", "type": "missing"}]
    status, headers, body = render(errors.ValidationFailed(details=details), "product")
    assert status == 422
    assert body == {
        "status": 422,
        "message": "Request body failed validation.",
        "type": "validation_error",
        "details": details,
        "request_id": REQUEST_ID,
    }
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"


def test_oauth_body() -> None:
    status, headers, body = render(errors.InvalidGrant("The device code has already been used."), "oauth")
    assert status == 400
    assert body == {"error": "invalid_grant", "error_description": "The device code has already been used."}
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    assert "WWW-Authenticate" not in headers and "Retry-After" not in headers


def test_legacy_body() -> None:
    status, headers, body = render(errors.UnsupportedGrantType("Use a supported grant type."), "legacy")
    assert status == 400
    assert body == {
        "success": False,
        "errorMessage": "Invalid grant type",
        "errorDetails": ["Use a supported grant type."],
        "errorCode": "unsupported_grant_type",
    }
    assert headers["Deprecation"]
    assert headers["Link"] == '</oauth/token>; rel="successor-version"'
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("kind", sorted(errors.TABLE))
def test_every_problem_renders_in_every_dialect(kind: str, dialect: http.Dialect) -> None:
    spoken = errors.TABLE[kind]
    status, headers, body = render(PROBLEMS[kind](), dialect)
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    if dialect == "product":
        assert status == spoken.product_status == body["status"]
        assert set(body) == {"status", "message", "type", "details", "request_id"}
        assert body["type"] == spoken.product_type and body["request_id"] == REQUEST_ID
        assert body["details"] == []
    elif dialect == "oauth":
        assert status == spoken.oauth_status
        assert body["error"] == spoken.oauth_error and body["error_description"]
        assert set(body) <= {"error", "error_description", "interval"}
    else:
        # GET /oauth/token always has its route, and is never a device authorization request
        if kind not in (NO_SUCH_ROUTE, ADDRESS_LIMIT):
            assert status in {400, 401, 500}  # docs/api.md: legacy errors are 400/401/500
        assert status == min(spoken.oauth_status, 500)
        assert body["success"] is False and body["errorCode"] == spoken.oauth_error
        assert body["errorDetails"] == [PROBLEMS[kind].default_message]


@pytest.mark.parametrize(
    ("problem", "dialect", "status", "retry_after"),
    [
        (errors.SlowDown(retry_after=10, interval=10), "product", 429, "10"),
        (errors.RateLimited(retry_after=600), "product", 429, "600"),
        (errors.DependencyThrottled(retry_after=1), "product", 429, "1"),
        (errors.RateLimited(retry_after=600), "oauth", 503, "600"),
        (errors.DependencyFailed(retry_after=1), "oauth", 503, "1"),
        (errors.DependencyTimeout(retry_after=2), "oauth", 503, "2"),
        (errors.DependencyThrottled(retry_after=1), "oauth", 503, "1"),
    ],
)
def test_retry_after_on_429_and_503(
    problem: errors.Problem, dialect: http.Dialect, status: int, retry_after: str
) -> None:
    got_status, headers, _ = render(problem, dialect)
    assert got_status == status
    assert headers["Retry-After"] == retry_after


@pytest.mark.parametrize("dialect", ["oauth", "product"])
@pytest.mark.parametrize("kind", sorted(errors.TABLE))
def test_every_429_and_503_carries_retry_after(kind: str, dialect: http.Dialect) -> None:
    """docs/api.md ("Retry-After"): with every product 429 and every OAuth 503 temporarily_unavailable.
    Whoever raises the problem, with or without a retry_after, the answer carries the header (the layer
    raises some without one, e.g. DependencyFailed when the key set is unreadable)."""
    status, headers, _ = render(PROBLEMS[kind](), dialect)
    if status in (429, 503):
        assert headers.get("Retry-After") == "1", (kind, dialect, headers)  # none given: the default


def test_slow_down_carries_the_new_interval() -> None:
    """docs/api.md / RFC 8628 §3.5: the body carries the new "interval"."""
    status, _, body = render(errors.SlowDown(retry_after=10, interval=10), "oauth")
    assert status == 400
    assert body["error"] == "slow_down" and body["interval"] == 10


@pytest.mark.parametrize("dialect", ["oauth", "legacy"])
def test_www_authenticate_when_the_client_used_basic(dialect: http.Dialect) -> None:
    status, headers, _ = render(errors.InvalidClient(basic_auth=True), dialect)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith("Basic ")
    assert 'realm="' in headers["WWW-Authenticate"]


@pytest.mark.parametrize("dialect", DIALECTS)
def test_no_www_authenticate_without_basic(dialect: http.Dialect) -> None:
    status, headers, _ = render(errors.InvalidClient(), dialect)
    assert status == 401 and "WWW-Authenticate" not in headers


def test_internal_error_never_carries_exception_text() -> None:
    for dialect in DIALECTS:
        _, _, body = render(errors.InternalError(), dialect)
        text = json.dumps(body)
        assert "Traceback" not in text and "Error(" not in text


# ---------------------------------------------------------------- translating faults and validation


def _client_error(code: str) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": "x"}}, "UpdateItem")


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_client_error("ProvisionedThroughputExceededException"), "dependency_throttled"),
        (_client_error("ThrottlingException"), "dependency_throttled"),
        (_client_error("RequestLimitExceeded"), "dependency_throttled"),
        (_client_error("InternalServerError"), "dependency_failed"),
        (_client_error("AccessDeniedException"), "dependency_failed"),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="https://x"), "dependency_timeout"),
        (botocore.exceptions.ConnectTimeoutError(endpoint_url="https://x"), "dependency_timeout"),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="https://x"), "dependency_failed"),
    ],
)
def test_dependency_problem(exc: BaseException, kind: str) -> None:
    problem = errors.dependency_problem(exc)
    assert problem is not None and problem.kind == kind
    assert problem.retry_after is not None and problem.retry_after >= 1


def test_dependency_problem_follows_the_cause() -> None:
    try:
        try:
            raise _client_error("ThrottlingException")
        except botocore.exceptions.ClientError as inner:
            raise RuntimeError("wrapped by a library") from inner
    except RuntimeError as outer:
        problem = errors.dependency_problem(outer)
    assert problem is not None and problem.kind == "dependency_throttled"


@pytest.mark.parametrize("exc", [ValueError("x"), KeyError("k"), RecursionError()])
def test_our_own_faults_are_not_dependency_problems(exc: BaseException) -> None:
    assert errors.dependency_problem(exc) is None


def test_validation_problem_locates_fields_per_dialect() -> None:
    errs = [{"loc": ("device_code",), "msg": "Field required", "type": "missing", "input": "s3cr3t"}]
    product = http.validation_problem(errs, "product", prefix="body")
    assert product.kind == "validation_error"
    assert product.details == [{"loc": ["body", "device_code"], "msg": "Field required", "type": "missing"}]
    oauth = http.validation_problem(errs, "oauth")
    assert oauth.kind == "invalid_request" and "device_code" in oauth.message
    assert "s3cr3t" not in oauth.message + json.dumps(product.details)  # inputs are never echoed


def test_a_suppressed_aws_fault_does_not_disguise_a_later_bug() -> None:
    from botocore.exceptions import ClientError

    from authcore.errors import DependencyFailed, dependency_problem

    aws = ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "UpdateItem")
    try:
        try:
            raise aws
        except ClientError:
            raise KeyError("bug") from None
    except KeyError as bug:
        assert dependency_problem(bug) is None  # a 500, not a 502
    try:
        try:
            raise aws
        except ClientError as exc:
            raise RuntimeError("wrapped") from exc  # as Powertools Parameters wraps AWS errors
    except RuntimeError as wrapped:
        assert isinstance(dependency_problem(wrapped), DependencyFailed)
