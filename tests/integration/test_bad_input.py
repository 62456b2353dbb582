"""Bad input on every route: the right 4xx in the route's dialect, never a 5xx, never a stack trace.

docs/api.md: "Bad input is always a 4xx in the route's dialect, never a 5xx". Every case states the exact status and
`error`/`type`; product 422s must locate the field in `details`. Each route is described once (a
well-formed body, what it answers, what each field answers when missing or unknown) and the cases
are generated from that description.
"""

from __future__ import annotations

import base64
import itertools
import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest

from authcore.store import Store
from local import admin
from local.lambda_host import HttpResult, http_event
from tests.conftest import ORIGIN, TABLE, Api
from tests.integration.contract import assert_common, assert_error, dialect_of, shared_account
from tests.support import aws
from tests.support.forge import UNKNOWN_RT

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
UNKNOWN_DC = "dc_" + "0" * 32 + "_" + "A" * 43
SECRET = "{{secret}}"  # replaced by the seed's client secret of `backend`
Outcome = tuple[int, str | None]  # (status, error); error None: a success
SCHEMA = "schema"  # an outcome placeholder: the dialect's schema failure for this field

_users = itertools.count()


@pytest.fixture(scope="module")
def account() -> Iterator[aws.Seed]:
    """One moto account for the module: these cases make no state that others depend on (every
    signed-in call is made by a user of its own, so the wrong-code limit never interferes)."""
    with shared_account() as seed:
        yield seed


@pytest.fixture
def api(account: aws.Seed) -> Api:
    return Api()


def fresh_user() -> dict[str, str]:
    """A new member of the seed's organization (deciding needs a membership), with its own attempts."""
    n = next(_users)
    sub = f"bad-input-{n}"
    admin.add_member(Store(boto3.client("dynamodb", region_name=aws.REGION), TABLE), sub, "acme", "member")
    return {"sub": sub, "email": f"u{n}@example.com", "email_verified": "true", "name": f"User {n}"}


@dataclass(frozen=True)
class Route:
    name: str
    method: str
    path: str
    base: dict[str, Any]  # a well-formed body ...
    baseline: Outcome  # ... and what it answers
    missing: dict[str, Outcome | str]  # every field of `base`: the answer without it
    unknown: dict[str, Outcome | str]  # string fields: the answer to a well-typed value that matches nothing
    signed_in: bool = False
    location: str = "body"  # where its parameters are: "body" or "query"
    not_strings: frozenset[str] = field(default_factory=frozenset)  # fields where "" is allowed

    @property
    def dialect(self) -> str:
        return dialect_of(self.method, self.path)

    def __str__(self) -> str:
        return self.name


ROUTES = [
    Route(
        "device_code",
        "POST",
        "/oauth/device/code",
        {"client_id": "demo-cli", "scope": "read"},
        (200, None),
        missing={"client_id": (401, "invalid_client"), "scope": (200, None)},
        unknown={"client_id": (401, "invalid_client"), "scope": (400, "invalid_scope")},
        not_strings=frozenset({"scope"}),
    ),
    Route(
        "verify",
        "POST",
        "/oauth/device/verify",
        {"user_code": "BCDF-GHJK", "decision": "approve", "organization_id": "acme"},
        (404, "not_found"),
        missing={"user_code": SCHEMA, "decision": SCHEMA, "organization_id": (404, "not_found")},
        unknown={"user_code": (404, "not_found"), "decision": SCHEMA, "organization_id": (404, "not_found")},
        signed_in=True,
    ),
    Route(
        "exchange",
        "POST",
        "/auth/device/exchange",
        {"device_code": UNKNOWN_DC, "client_id": "demo-cli"},
        (401, "invalid_grant"),
        missing={"device_code": SCHEMA, "client_id": SCHEMA},
        unknown={"device_code": (401, "invalid_grant"), "client_id": (401, "invalid_client")},
    ),
    Route(
        "token",
        "POST",
        "/oauth/token",
        {"grant_type": "refresh_token", "refresh_token": UNKNOWN_RT, "client_id": "demo-cli"},
        (400, "invalid_grant"),
        missing={
            "grant_type": SCHEMA,
            "refresh_token": (400, "invalid_request"),
            "client_id": (401, "invalid_client"),
        },
        unknown={
            "grant_type": (400, "unsupported_grant_type"),
            "refresh_token": (400, "invalid_grant"),
            "client_id": (401, "invalid_client"),
        },
    ),
    Route(
        "refresh",
        "POST",
        "/auth/refresh",
        {"refresh_token": UNKNOWN_RT},
        (401, "invalid_grant"),
        missing={"refresh_token": (401, "invalid_grant")},
        unknown={"refresh_token": (401, "invalid_grant")},
    ),
    Route(
        "logout",
        "POST",
        "/auth/logout",
        {"refresh_token": UNKNOWN_RT},
        (200, None),
        missing={"refresh_token": (200, None)},
        unknown={"refresh_token": (200, None)},
    ),
    Route(
        "revoke",
        "POST",
        "/oauth/revoke",
        {"token": UNKNOWN_RT, "client_id": "demo-cli"},
        (200, None),
        missing={"token": SCHEMA, "client_id": (401, "invalid_client")},
        unknown={"token": (200, None), "client_id": (401, "invalid_client")},
    ),
    Route(
        "introspect",
        "POST",
        "/oauth/introspect",
        {"token": UNKNOWN_RT, "client_id": "backend", "client_secret": SECRET},
        (200, None),
        missing={
            "token": SCHEMA,
            "client_id": (401, "invalid_client"),
            "client_secret": (401, "invalid_client"),
        },
        unknown={
            "token": (200, None),
            "client_id": (401, "invalid_client"),
            "client_secret": (401, "invalid_client"),
        },
    ),
]
BY_NAME = {r.name: r for r in ROUTES}
OAUTH_ROUTES = [r for r in ROUTES if r.dialect == "oauth"]
PRODUCT_ROUTES = [r for r in ROUTES if r.dialect == "product"]


# ---------------------------------------------------------------- sending and judging


def body_of(route: Route, seed: aws.Seed, **changes: Any) -> dict[str, Any]:
    """The route's well-formed body with fields changed (a value of `...` removes the field)."""
    body = {k: (seed.confidential_secret if v == SECRET else v) for k, v in route.base.items()}
    for key, value in changes.items():
        if value is ...:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def send(
    api: Api,
    route: Route,
    text: str | None,
    *,
    content_type: str | None = JSON,
    b64: bool = False,
    headers: dict[str, str] | None = None,
    cookies: list[str] | None = None,
    query: str | None = None,
) -> tuple[HttpResult, dict[str, Any]]:
    hdrs = {"content-type": content_type} if content_type else {}
    event = http_event(
        route.method,
        route.path,
        headers={**hdrs, **(headers or {})},
        body=text,
        cookies=cookies,
        query=query,
        claims=fresh_user() if route.signed_in else None,
    )
    if b64:
        raw = (text or "").encode("utf-8", "surrogatepass")
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    return api.send(event), event


def schema_failure(route: Route, name: str) -> tuple[int, str, list[str | int] | None]:
    if route.dialect == "product":
        return 422, "validation_error", [route.location, name]
    return 400, "invalid_request", None


def judge(
    result: HttpResult,
    event: dict[str, Any],
    route: Route,
    outcome: Outcome | str,
    name: str | None = None,
) -> Any:
    """Assert `outcome` (or the schema failure of field `name`) in the route's dialect."""
    loc: list[str | int] | None = None
    if isinstance(outcome, str):
        assert outcome == SCHEMA and name is not None
        status, schema_error, loc = schema_failure(route, name)
        error: str | None = schema_error
    else:
        status, error = outcome
    if error is None:
        body = assert_common(result)
        assert result.status == status, result.text[:500]
        if route.name == "introspect":
            assert body == {"active": False}, body
        if route.name == "revoke":
            assert body == {}, body
        return body
    return assert_error(
        result,
        method=route.method,
        path=route.path,
        status=status,
        error=error,
        request_id=event["requestContext"]["requestId"],
        loc=loc,
    )


INVALID: Outcome = (400, "invalid_request")  # in both dialects: docs/api.md's product table and RFC 6749


# ---------------------------------------------------------------- the body as a whole

OVER_16_KIB = 16 * 1024 + 1
WHOLE_BODIES: dict[str, tuple[Any, str | None]] = {  # name -> (text or a function of the body, content type)
    "not_json": ('{"client_id": "demo-cli", ', JSON),
    "not_json_words": ("hello world", JSON),
    "json_array": (lambda b: json.dumps([b]), JSON),
    "json_empty_array": ("[]", JSON),
    "json_string": ('"client_id=demo-cli"', JSON),
    "json_number": ("42", JSON),
    "json_null": ("null", JSON),
    "json_true": ("true", JSON),
    "over_16_kib": (lambda b: json.dumps({**b, "padding": "x" * OVER_16_KIB}), JSON),
    "string_100_kb": (lambda b: json.dumps(dict.fromkeys(b, "x" * 100_000)), JSON),
    "deeply_nested_12k": ("[" * 12_000, JSON),
    "huge_integer_literal": (lambda b: json.dumps(b)[:-1] + ', "n": ' + "9" * 5_000 + "}", JSON),
    "nan_literal": (lambda b: json.dumps({**b, "n": float("nan")}), JSON),  # RFC 8259 has no NaN
    "deeply_nested_closed": ("[" * 6_000 + "]" * 6_000, JSON),
    "text_plain": (json.dumps, "text/plain"),
    "no_content_type": (json.dumps, None),
    "xml": ("<request><client_id>demo-cli</client_id></request>", "application/xml"),
    "multipart": (
        '--x\r\nContent-Disposition: form-data; name="a"\r\n\r\nb\r\n--x--',
        "multipart/form-data; boundary=x",
    ),
    "json_as_octet_stream": (json.dumps, "application/octet-stream"),
}


@pytest.mark.parametrize("case", sorted(WHOLE_BODIES))
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_whole_body_rejected(api: Api, account: aws.Seed, route: Route, case: str) -> None:
    """Not JSON, not an object, too large, too deep, or not a type we read: 400 invalid_request."""
    make, content_type = WHOLE_BODIES[case]
    text: str = make(body_of(route, account)) if callable(make) else make
    result, event = send(api, route, text, content_type=content_type)
    judge(result, event, route, INVALID)


def test_the_100_kb_case_is_over_the_limit() -> None:
    assert len(json.dumps({"refresh_token": "x" * 100_000})) > 16 * 1024


@pytest.mark.parametrize("route", PRODUCT_ROUTES, ids=str)
def test_form_body_on_a_json_route(api: Api, account: aws.Seed, route: Route) -> None:
    result, event = send(api, route, urllib.parse.urlencode(body_of(route, account)), content_type=FORM)
    judge(result, event, route, INVALID)


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_empty_object(api: Api, account: aws.Seed, route: Route) -> None:
    """`{}`: every field missing at once. The first thing the route needs decides the answer."""
    expected: dict[str, Outcome | str] = {
        "device_code": (401, "invalid_client"),
        "verify": SCHEMA,
        "exchange": SCHEMA,
        "token": SCHEMA,
        "refresh": (401, "invalid_grant"),
        "logout": (200, None),
        "revoke": SCHEMA,
        "introspect": SCHEMA,
    }
    first = {"verify": "user_code", "exchange": "device_code", "token": "grant_type"}.get(route.name, "token")
    result, event = send(api, route, "{}")
    judge(result, event, route, expected[route.name], first)


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_empty_body_with_json_type(api: Api, account: aws.Seed, route: Route) -> None:
    """No body at all: not JSON where one is required; "no refresh token" where it is optional."""
    expected = {"refresh": (401, "invalid_grant"), "logout": (200, None)}.get(route.name, INVALID)
    result, event = send(api, route, "")
    judge(result, event, route, expected)


# ---------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    "content_type",
    [JSON, "application/json; charset=utf-8", "Application/JSON", "application/json ; charset=UTF-8"],
)
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_json_content_type_variants_are_read(
    api: Api, account: aws.Seed, route: Route, content_type: str
) -> None:
    result, event = send(api, route, json.dumps(body_of(route, account)), content_type=content_type)
    judge(result, event, route, route.baseline)


@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_base64_encoded_body_is_read(api: Api, account: aws.Seed, route: Route) -> None:
    """API Gateway base64-encodes some bodies; the answer is the same as for the plain body."""
    result, event = send(api, route, json.dumps(body_of(route, account)), b64=True)
    judge(result, event, route, route.baseline)


@pytest.mark.parametrize("route", OAUTH_ROUTES, ids=str)
def test_base64_encoded_form_is_read(api: Api, account: aws.Seed, route: Route) -> None:
    text = urllib.parse.urlencode(body_of(route, account))
    result, event = send(api, route, text, content_type=FORM, b64=True)
    judge(result, event, route, route.baseline)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("!!! not base64 !!!", id="not_base64"),
        pytest.param("eyJjbGllbnRfaWQiOi", id="truncated_base64"),
        pytest.param(base64.b64encode(b'{"client_id": "\xff\xfe"}').decode(), id="base64_of_invalid_utf8"),
        pytest.param(base64.b64encode(b"\x00\x01\x02\xff" * 100).decode(), id="base64_of_binary"),
        pytest.param(base64.b64encode(b"x" * OVER_16_KIB).decode(), id="base64_over_16_kib"),
    ],
)
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_bad_base64_body(api: Api, account: aws.Seed, route: Route, payload: str) -> None:
    claims = fresh_user() if route.signed_in else None
    event = http_event(route.method, route.path, headers={"content-type": JSON}, body="{}", claims=claims)
    event |= {"body": payload, "isBase64Encoded": True}
    judge(api.send(event), event, route, INVALID)


# ---------------------------------------------------------------- form bodies (OAuth routes)


@pytest.mark.parametrize(
    "form",
    [
        pytest.param("client_id=demo-cli&client_id=demo-cli", id="repeated_same_value"),
        pytest.param("client_id=demo-cli&client_id=backend", id="repeated_different_value"),
        pytest.param("client_id=%FF%FE", id="invalid_utf8_escape"),
        pytest.param("client_id=%ED%A0%80", id="encoded_lone_surrogate"),
        pytest.param("&".join(f"p{i}=v" for i in range(100)), id="hundred_parameters"),
        pytest.param("client_id=" + "x" * OVER_16_KIB, id="over_16_kib"),
        pytest.param("client_id=" + "x" * 100_000, id="string_100_kb"),
    ],
)
@pytest.mark.parametrize("route", OAUTH_ROUTES, ids=str)
def test_bad_form(api: Api, account: aws.Seed, route: Route, form: str) -> None:
    """RFC 6749 §3.2: parameters must not be included more than once; malformed forms are 400."""
    rest = {k: v for k, v in body_of(route, account).items() if k != "client_id"}
    text = f"{urllib.parse.urlencode(rest)}&{form}" if rest else form
    result, event = send(api, route, text, content_type=FORM)
    judge(result, event, route, INVALID)


@pytest.mark.parametrize("route", OAUTH_ROUTES, ids=str)
def test_repeated_parameter_other_than_client_id(api: Api, account: aws.Seed, route: Route) -> None:
    body = body_of(route, account)
    first = next(iter(body))
    text = urllib.parse.urlencode(body) + "&" + urllib.parse.urlencode({first: body[first]})
    result, event = send(api, route, text, content_type=FORM)
    judge(result, event, route, INVALID)


# ---------------------------------------------------------------- fields: types, presence, length

WRONG_TYPES: dict[str, Any] = {
    "number": 123,
    "float": 1.5,
    "huge_number": 10**30,
    "true": True,
    "false": False,
    "object": {"value": "demo-cli"},
    "nested_object": {"a": {"b": ["c", {"d": None}]}},
    "array": ["demo-cli"],
    "empty_array": [],
}


def _field_params() -> list[Any]:
    return [pytest.param(r, name, id=f"{r.name}.{name}") for r in ROUTES for name in r.base]


FIELDS = _field_params()


@pytest.mark.parametrize("kind", sorted(WRONG_TYPES))
@pytest.mark.parametrize(("route", "name"), FIELDS)
def test_wrong_type(api: Api, account: aws.Seed, route: Route, name: str, kind: str) -> None:
    """A number, boolean, object or array where a string is expected: the schema fails at that field."""
    result, event = send(api, route, json.dumps(body_of(route, account, **{name: WRONG_TYPES[kind]})))
    judge(result, event, route, SCHEMA, name)


@pytest.mark.parametrize(("route", "name"), FIELDS)
def test_null(api: Api, account: aws.Seed, route: Route, name: str) -> None:
    """null is the field's absence where the field is optional, and a schema failure where required."""
    result, event = send(api, route, json.dumps(body_of(route, account, **{name: None})))
    judge(result, event, route, route.missing[name], name)


@pytest.mark.parametrize(("route", "name"), FIELDS)
def test_missing(api: Api, account: aws.Seed, route: Route, name: str) -> None:
    result, event = send(api, route, json.dumps(body_of(route, account, **{name: ...})))
    judge(result, event, route, route.missing[name], name)


@pytest.mark.parametrize(("route", "name"), FIELDS)
def test_too_long_within_the_body_limit(api: Api, account: aws.Seed, route: Route, name: str) -> None:
    """5 000 characters: longer than any field may be, well under 16 KiB."""
    result, event = send(api, route, json.dumps(body_of(route, account, **{name: "B" * 5_000})))
    judge(result, event, route, SCHEMA, name)


@pytest.mark.parametrize(("route", "name"), FIELDS)
def test_empty_string(api: Api, account: aws.Seed, route: Route, name: str) -> None:
    result, event = send(api, route, json.dumps(body_of(route, account, **{name: ""})))
    judge(result, event, route, route.baseline if name in route.not_strings else SCHEMA, name)


@pytest.mark.parametrize(("route", "name"), FIELDS)
def test_lone_surrogate(api: Api, account: aws.Seed, route: Route, name: str) -> None:
    """JSON may escape a lone surrogate (`"\\ud800"`): not a valid Unicode string, so not valid input."""
    text = json.dumps(body_of(route, account, **{name: "ab\ud800cd"}))
    assert "\\ud800" in text
    result, event = send(api, route, text)
    judge(result, event, route, SCHEMA, name)


# ---------------------------------------------------------------- fields: unicode

UNICODE = {
    "emoji": "\U0001f600\U0001f511",
    "rtl_override": "\u202edemo-cli",
    "hebrew": "\u05d0\u05d1\u05d2",
    "arabic": "\u0645\u0631\u062d\u0628\u0627",
    "nul": "demo\x00cli",
    "control": "\x01\x1b[31m\r\n",
    "zero_width": "demo\u200b-cli",
    "combining": "e\u0301" * 10,
    "astral": "\U0001d54f" * 5,
    "cjk": "\u8a8d\u8a3c",
    "replacement": "\ufffd\ufffd",
    "bom": "\ufeffdemo-cli",
}


def _string_fields() -> list[Any]:
    return [pytest.param(r, name, id=f"{r.name}.{name}") for r in ROUTES for name in r.unknown]


@pytest.mark.parametrize("kind", sorted(UNICODE))
@pytest.mark.parametrize(("route", "name"), _string_fields())
def test_unicode_json(api: Api, account: aws.Seed, route: Route, name: str, kind: str) -> None:
    """Valid Unicode that matches nothing: the same answer as any unknown value of that field."""
    text = json.dumps(body_of(route, account, **{name: UNICODE[kind]}), ensure_ascii=False)
    result, event = send(api, route, text)
    judge(result, event, route, route.unknown[name], name)


@pytest.mark.parametrize("kind", sorted(UNICODE))
@pytest.mark.parametrize(("route", "name"), [p for p in _string_fields() if p.values[0].dialect == "oauth"])
def test_unicode_form(api: Api, account: aws.Seed, route: Route, name: str, kind: str) -> None:
    text = urllib.parse.urlencode(body_of(route, account, **{name: UNICODE[kind]}))
    result, event = send(api, route, text, content_type=FORM)
    judge(result, event, route, route.unknown[name], name)


# ---------------------------------------------------------------- tokens that look like JWTs


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(header: Any, payload: bytes = b"{}", signature: bytes = b"sig") -> str:
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    return f"{_b64(raw)}.{_b64(payload)}.{_b64(signature)}"


FORGED_JWTS = {
    "typ_number": _jwt({"alg": "ES256", "typ": 1, "kid": "k"}),
    "typ_null": _jwt({"alg": "ES256", "typ": None, "kid": "k"}),
    "typ_array": _jwt({"alg": "ES256", "typ": ["at+jwt"], "kid": "k"}),
    "typ_object": _jwt({"alg": "ES256", "typ": {"a": 1}, "kid": "k"}),
    "alg_none": _jwt({"alg": "none", "typ": "at+jwt"}, b'{"sub": "x"}', b""),
    "alg_hs256": _jwt({"alg": "HS256", "typ": "at+jwt", "kid": "k"}),
    "alg_number": _jwt({"alg": 256, "typ": "at+jwt"}),
    "kid_number": _jwt({"alg": "ES256", "typ": "at+jwt", "kid": 5}),
    "kid_object": _jwt({"alg": "ES256", "typ": "at+jwt", "kid": {"a": 1}}),
    "header_array": _jwt([1, 2]),
    "header_not_json": _jwt(b"not json"),
    "header_not_utf8": _jwt(b"\xff\xfe\xfd"),
    "payload_not_object": _jwt({"alg": "ES256", "typ": "at+jwt", "kid": "k"}, b"[1]"),
    "not_base64": "@@@.@@@.@@@",
    "two_parts": "abc.def",
    "many_parts": "a.b.c.d.e",
}
JWT_FIELDS = [
    ("introspect", "token"),
    ("revoke", "token"),
    ("logout", "refresh_token"),
    ("refresh", "refresh_token"),
]


@pytest.mark.parametrize("kind", sorted(FORGED_JWTS))
@pytest.mark.parametrize(("route_name", "name"), JWT_FIELDS)
def test_forged_jwt(api: Api, account: aws.Seed, route_name: str, name: str, kind: str) -> None:
    """Revocation, introspection and logout also take access tokens: whatever the header holds, a token
    that is not ours is unknown (RFC 7009: 200; RFC 7662: inactive; logout: signed out)."""
    route = BY_NAME[route_name]
    result, event = send(api, route, json.dumps(body_of(route, account, **{name: FORGED_JWTS[kind]})))
    judge(result, event, route, route.unknown[name], name)


# ---------------------------------------------------------------- headers


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic !!!", id="not_base64"),
        pytest.param(_basic(b"no-colon"), id="no_colon"),
        pytest.param(_basic(b"\xff\xfe:\xfd"), id="not_utf8"),
        pytest.param(_basic(b"no-such-client:secret"), id="unknown_client"),
        pytest.param(_basic(b"backend:wrong-secret"), id="wrong_secret"),
        pytest.param(_basic(b"backend:"), id="empty_secret"),
        pytest.param(_basic(b":secret"), id="empty_client_id"),
        pytest.param(_basic("\U0001f600:\u202e".encode()), id="unicode"),
    ],
)
@pytest.mark.parametrize("route", OAUTH_ROUTES, ids=str)
def test_bad_basic_credentials(api: Api, account: aws.Seed, route: Route, authorization: str) -> None:
    """RFC 6749 §5.2: 401 invalid_client, with WWW-Authenticate because the client used Basic."""
    body = body_of(route, account, client_id=..., client_secret=...)
    result, event = send(
        api, route, urllib.parse.urlencode(body), content_type=FORM, headers={"authorization": authorization}
    )
    judge(result, event, route, (401, "invalid_client"))
    assert result.headers.get("www-authenticate", "").startswith("Basic"), result.headers


@pytest.mark.parametrize("route", OAUTH_ROUTES, ids=str)
def test_basic_and_secret_in_body(api: Api, account: aws.Seed, route: Route) -> None:
    """Two client authentication methods at once (RFC 6749 §2.3): 400 invalid_request."""
    body = body_of(route, account, client_id=..., client_secret=account.confidential_secret)
    auth = _basic(f"backend:{account.confidential_secret}".encode())
    result, event = send(
        api, route, urllib.parse.urlencode(body), content_type=FORM, headers={"authorization": auth}
    )
    judge(result, event, route, (400, "invalid_request"))


@pytest.mark.parametrize("version", ["abc", "1..2", "", "x" * 2_000, "1.2.3.4.5.6", "2.0.0 OR 1=1"])
@pytest.mark.parametrize(
    ("route_name", "body"),
    [
        ("device_code", {"client_id": "old-cli"}),
        ("exchange", {"device_code": UNKNOWN_DC, "client_id": "old-cli"}),
    ],
)
def test_malformed_client_version(
    api: Api, account: aws.Seed, route_name: str, body: dict[str, str], version: str
) -> None:
    route = BY_NAME[route_name]
    result, event = send(api, route, json.dumps(body), headers={"x-client-version": version})
    if version == "":
        judge(result, event, route, (200, None) if route_name == "device_code" else (401, "invalid_grant"))
    else:
        judge(result, event, route, (400, "invalid_request"))


@pytest.mark.parametrize(
    ("cookie", "origin", "expected"),
    [
        pytest.param("refresh_token=garbage", ORIGIN, (401, "invalid_grant"), id="garbage"),
        pytest.param("refresh_token=" + "x" * 100_000, ORIGIN, (401, "invalid_grant"), id="100_kb"),
        pytest.param("refresh_token=\U0001f600", ORIGIN, (401, "invalid_grant"), id="emoji"),
        pytest.param("refresh_token=a\x00b", ORIGIN, (401, "invalid_grant"), id="nul"),
        pytest.param("refresh_token=", ORIGIN, (401, "invalid_grant"), id="empty"),
        pytest.param("refresh_token=garbage", "null", (403, "access_denied"), id="origin_null"),
        pytest.param(
            "refresh_token=garbage", ORIGIN + ".evil.example", (403, "access_denied"), id="origin_suffix"
        ),
        pytest.param(
            "refresh_token=garbage", "http://app.example.test", (403, "access_denied"), id="origin_http"
        ),
        pytest.param("refresh_token=garbage", "\U0001f600", (403, "access_denied"), id="origin_emoji"),
    ],
)
@pytest.mark.parametrize("route_name", ["refresh", "logout"])
def test_bad_cookie(
    api: Api, account: aws.Seed, route_name: str, cookie: str, origin: str, expected: Outcome
) -> None:
    route = BY_NAME[route_name]
    if route_name == "logout" and expected[0] == 401:
        expected = (200, None)  # logout of an unknown session: signed out all the same
    result, event = send(api, route, None, content_type=None, cookies=[cookie], headers={"origin": origin})
    judge(result, event, route, expected)


# ---------------------------------------------------------------- GET /oauth/device/verify (query)

VERIFY_GET = Route(
    "verify_get",
    "GET",
    "/oauth/device/verify",
    {},
    (404, "not_found"),
    {},
    {},
    signed_in=True,
    location="query",
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", SCHEMA, id="missing"),
        pytest.param("user_code=", SCHEMA, id="empty"),
        pytest.param("user_code=" + "B" * 100_000, SCHEMA, id="string_100_kb"),
        pytest.param("user_code=" + "B" * 65, SCHEMA, id="too_long"),
        pytest.param("user_code=BCDF-GHJK&user_code=BCDF-GHJK", SCHEMA, id="repeated"),
        pytest.param("user_code=BCDF-GHJK", (404, "not_found"), id="unknown"),
        pytest.param("user_code=BCDF-GHJ1", (404, "not_found"), id="digit"),
        pytest.param("user_code=BCDF-GHJA", (404, "not_found"), id="vowel"),
        pytest.param("user_code=%F0%9F%98%80", (404, "not_found"), id="emoji"),
        pytest.param("user_code=%E2%80%AEBCDF-GHJK", (404, "not_found"), id="rtl_override"),
        pytest.param("user_code=BCDF%00GHJK", (404, "not_found"), id="nul"),
        pytest.param("user_code=%FF%FE", (404, "not_found"), id="invalid_utf8"),
        pytest.param("user_code=%D7%90%D7%91", (404, "not_found"), id="hebrew"),
        pytest.param("user_code=----%20%20%20%20", (404, "not_found"), id="only_separators"),
        pytest.param("user_code=%0D%0A", (404, "not_found"), id="crlf"),
    ],
)
def test_verify_get_query(api: Api, account: aws.Seed, query: str, expected: Outcome | str) -> None:
    result, event = send(api, VERIFY_GET, None, content_type=None, query=query)
    judge(result, event, VERIFY_GET, expected, "user_code")


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param(None, id="none"),
        pytest.param({}, id="empty"),
        pytest.param({"sub": ""}, id="empty_sub"),
        pytest.param({"email": "ada@example.com"}, id="no_sub"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_verify_without_a_signed_in_user(
    api: Api, account: aws.Seed, method: str, claims: dict[str, Any] | None
) -> None:
    code = api.device_code()["user_code"]
    if method == "GET":
        result = api.call("GET", "/oauth/device/verify", query={"user_code": code}, claims=claims)
    else:
        result = api.call(
            "POST", "/oauth/device/verify", body={"user_code": code, "decision": "approve"}, claims=claims
        )
    assert_error(result, method=method, path="/oauth/device/verify", status=401, error="unauthorized")


# ---------------------------------------------------------------- user codes as people type them


def _variants(code: str) -> dict[str, str]:
    plain = code.replace("-", "")
    return {
        "as_shown": code,
        "lowercase": code.lower(),
        "lowercase_space": code.lower().replace("-", " "),
        "no_separator": plain,
        "lowercase_no_separator": plain.lower(),
        "mixed_case": "".join(c.lower() if i % 2 else c for i, c in enumerate(code)),
        "surrounding_spaces": f"  {code.lower()}  ",
        "spaces_everywhere": " ".join(plain.lower()),
        "hyphens_everywhere": "-".join(plain),
        "space_and_hyphen": f"{plain[:4].lower()} - {plain[4:].lower()}",
    }


VARIANT_NAMES = sorted(_variants("BCDF-GHJK"))


@pytest.mark.parametrize("variant", VARIANT_NAMES)
def test_user_code_as_typed_matches(api: Api, account: aws.Seed, variant: str) -> None:
    """Case-insensitive, hyphens and spaces ignored: GET shows, POST approves, the device gets tokens."""
    started = api.device_code()
    typed = _variants(started["user_code"])[variant]
    shown = api.call("GET", "/oauth/device/verify", query={"user_code": typed}, claims=account.user)
    assert shown.status == 200, shown.text
    assert assert_common(shown)["user_code"] == started["user_code"]
    decided = api.call(
        "POST", "/oauth/device/verify", body={"user_code": typed, "decision": "approve"}, claims=account.user
    )
    assert decided.status == 200, decided.text
    assert assert_common(decided) == {"status": "approved"}
    assert api.exchange(started["device_code"]).status == 200


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda c: c[:-1] + "A", id="vowel"),
        pytest.param(lambda c: c[:-1] + "1", id="digit"),
        pytest.param(lambda c: c[:-1], id="one_short"),
        pytest.param(lambda c: c + "B", id="one_long"),
        pytest.param(lambda c: c.replace("-", "_"), id="underscore"),
        pytest.param(lambda c: c.replace("-", "."), id="dot"),
    ],
)
def test_near_miss_user_code_does_not_match(api: Api, account: aws.Seed, change: Any) -> None:
    started = api.device_code()
    typed = change(started["user_code"])
    result = api.call(
        "POST", "/oauth/device/verify", body={"user_code": typed, "decision": "approve"}, claims=fresh_user()
    )
    assert_error(result, method="POST", path="/oauth/device/verify", status=404, error="not_found")


# ---------------------------------------------------------------- GET /oauth/token (legacy, query)

LEGACY = Route("legacy", "GET", "/oauth/token", {}, (400, "invalid_grant"), {}, {})
DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def _q(**params: str) -> str:
    return urllib.parse.urlencode(params)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("", (400, "invalid_request"), id="no_query"),
        pytest.param(
            _q(client_id="demo-cli", refresh_token=UNKNOWN_RT),
            (400, "invalid_request"),
            id="missing_grant_type",
        ),
        pytest.param(
            _q(grant_type="password", client_id="demo-cli"), (400, "unsupported_grant_type"), id="unsupported"
        ),
        pytest.param(
            _q(grant_type="x" * 100_000, client_id="demo-cli"),
            (400, "invalid_request"),
            id="grant_type_100_kb",
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token="x" * 100_000, client_id="demo-cli"),
            (400, "invalid_request"),
            id="refresh_token_100_kb",
        ),
        pytest.param(
            _q(grant_type="refresh_token", client_id="demo-cli") + "&grant_type=refresh_token",
            (400, "invalid_request"),
            id="repeated_grant_type",
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token=UNKNOWN_RT, client_id="demo-cli")
            + "&client_id=backend",
            (400, "invalid_request"),
            id="repeated_client_id",
        ),
        pytest.param("grant_type=%FF%FE&client_id=demo-cli", (400, "invalid_request"), id="invalid_utf8"),
        pytest.param(
            "&".join(f"p{i}=v" for i in range(100)), (400, "invalid_request"), id="hundred_parameters"
        ),
        pytest.param(
            _q(grant_type="refresh_token", client_id="demo-cli"),
            (400, "invalid_request"),
            id="missing_refresh_token",
        ),
        pytest.param(
            _q(grant_type=DEVICE, client_id="demo-cli"), (400, "invalid_request"), id="missing_device_code"
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token=UNKNOWN_RT),
            (401, "invalid_client"),
            id="missing_client_id",
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token=UNKNOWN_RT, client_id="no-such-client"),
            (401, "invalid_client"),
            id="unknown_client",
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token=UNKNOWN_RT, client_id="demo-cli", client_secret="s"),
            (400, "invalid_request"),  # RFC 6749 §2.3.1: a secret never travels in a URL
            id="secret_in_the_url",
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token=UNKNOWN_RT, client_id="backend", client_secret="s"),
            (400, "invalid_request"),
            id="confidential_secret_in_the_url",
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token=UNKNOWN_RT, client_id="demo-cli"),
            (400, "invalid_grant"),
            id="unknown_refresh_token",
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token="\U0001f600\u202e", client_id="demo-cli"),
            (400, "invalid_grant"),
            id="unicode_refresh_token",
        ),
        pytest.param(
            _q(grant_type="refresh_token", refresh_token="a\x00b", client_id="demo-cli"),
            (400, "invalid_grant"),
            id="nul_refresh_token",
        ),
        pytest.param(
            _q(grant_type=DEVICE, device_code="\u05d0\u05d1", client_id="demo-cli"),
            (400, "invalid_grant"),
            id="unicode_device_code",
        ),
        pytest.param(
            _q(grant_type=DEVICE, device_code=UNKNOWN_DC, client_id="\U0001f600"),
            (401, "invalid_client"),
            id="unicode_client_id",
        ),
    ],
)
def test_legacy_get_query(api: Api, account: aws.Seed, query: str, expected: Outcome) -> None:
    result, event = send(api, LEGACY, None, content_type=None, query=query)
    judge(result, event, LEGACY, expected)


# ---------------------------------------------------------------- the contract's own examples


def test_product_422_locates_the_missing_device_code(api: Api, account: aws.Seed) -> None:
    """docs/api.md's example, exactly."""
    result, event = send(api, BY_NAME["exchange"], json.dumps({"client_id": "demo-cli"}))
    body = judge(result, event, BY_NAME["exchange"], SCHEMA, "device_code")
    assert body["message"]
    assert {"loc": ["body", "device_code"], "msg": "Field required", "type": "missing"} in body["details"]


@pytest.mark.parametrize("shape", ["array", "too_long"])
@pytest.mark.parametrize("route", ROUTES, ids=str)
def test_validation_errors_never_echo_the_input(
    api: Api, account: aws.Seed, route: Route, shape: str
) -> None:
    """Inputs may be secrets: an error names the field, never its value."""
    marker = "Zq9SecretValueZq9"
    name = next(iter(route.base))
    value: Any = [marker] if shape == "array" else marker * 300
    result, event = send(api, route, json.dumps(body_of(route, account, **{name: value})))
    judge(result, event, route, SCHEMA, name)
    assert marker not in result.text
