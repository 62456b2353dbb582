"""Every events/*.json, invoked through its route's handler the way `sam local invoke -e` would.

EXPECTED maps each file to what the contract says it answers. A file without an entry fails, so a
new event needs an expectation. Placeholders (`{{device_code}}`, ...) are filled with live values
made by a real device flow first; events/README.md documents them.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from authcore import routes
from local.lambda_host import HttpResult, http_event
from tests.conftest import ISSUER, ROUTES, Api
from tests.integration.contract import assert_common, assert_error, assert_legacy_headers, shared_account
from tests.support import aws
from tests.support.forge import grant_of
from tests.support.idp import IDP

EVENTS = Path(__file__).resolve().parents[2] / "events"
FILES = sorted(p.name for p in EVENTS.glob("*.json"))
PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
USER_CODE = re.compile(r"^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$")
FUNCTIONS = {  # function directory -> the template's logical id (for `sam local invoke`)
    "device_authorization": "DeviceAuthorizationFunction",
    "device_verification": "DeviceVerificationFunction",
    "device_exchange": "DeviceExchangeFunction",
    "token": "TokenFunction",
    "refresh": "RefreshFunction",
    "revocation": "RevocationFunction",
    "discovery": "DiscoveryFunction",
    "web": "WebFunction",
    "sessions": "SessionsFunction",
}

State = dict[str, str]
Check = Callable[[HttpResult, Any, Api, State], None]


@dataclass(frozen=True)
class Case:
    status: int
    error: str | None = None  # OAuth `error`, product `type`, legacy `errorCode`
    loc: list[str | int] | None = None  # a product 422 must locate this field
    check: Check | None = None  # what a success (or an error's side effects) must look like
    setup: str | None = None  # the live state its placeholders need: see `prepare`
    html: bool = False  # the verification page answers HTML, not JSON
    public: int | None = None  # a public document: cacheable for this many seconds, with an ETag


# ---------------------------------------------------------------- success checks


def _device_authorization(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert body["device_code"].startswith("dc_")
    assert USER_CODE.match(body["user_code"]), body
    assert body["verification_uri"].startswith("https://")
    assert body["verification_uri_complete"] == f"{body['verification_uri']}?user_code={body['user_code']}"
    assert body["expires_in"] == 900 and body["interval"] == 5


def _verify_info(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body["user_code"] == state["user_code"]
    assert body["client"] == {"id": "demo-cli", "name": "Demo CLI"}
    assert body["scope"] == "read write"
    assert body["status"] == "pending"
    datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%SZ")


def _decided(status: str) -> Check:
    def check(result: HttpResult, body: Any, api: Api, state: State) -> None:
        assert body == {"status": status}

    return check


def _approved_for(org: str, role: str) -> Check:
    def check(result: HttpResult, body: Any, api: Api, state: State) -> None:
        assert body == {"status": "approved"}
        tokens = api.exchange(state["device_code"])
        assert tokens.status == 200, tokens.text
        assert tokens.json()["organization"]["id"] == org
        assert tokens.json()["organization"]["role"] == role

    return check


def _is_jwt(text: str) -> None:
    header = json.loads(base64.urlsafe_b64decode(text.split(".")[0] + "=="))
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256" and header["kid"], header


def _token_headers(result: HttpResult) -> None:
    assert result.headers.get("pragma") == "no-cache", result.headers


def _oauth_tokens(result: HttpResult, body: Any, api: Api, state: State) -> None:
    _token_headers(result)
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}, body
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["refresh_token"].startswith("rt_")
    assert body["refresh_token"] != state.get("refresh_token")
    _is_jwt(body["access_token"])


def _product_tokens(result: HttpResult, body: Any, *, refresh_in_body: bool) -> None:
    _token_headers(result)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    _is_jwt(body["access_token"])
    assert body["user"] == {"id": "user-1", "email": "ada@example.com", "name": "Ada Lovelace"}
    assert body["organization"] == {"id": "acme", "name": "Acme Corp", "role": "admin"}
    assert ("refresh_token" in body) is refresh_in_body, body


def _exchanged(result: HttpResult, body: Any, api: Api, state: State) -> None:
    _product_tokens(result, body, refresh_in_body=True)
    assert body["refresh_token"].startswith("rt_")
    assert body["scope"] == "read write"
    again = api.exchange(state["device_code"])  # re-sent: the same family, not a second one
    assert again.status == 200 and again.json()["refresh_token"] == body["refresh_token"], again.text
    assert api.call("POST", "/auth/refresh", body={"refresh_token": body["refresh_token"]}).status == 200
    late = api.exchange(state["device_code"])  # the family has moved on: the code is used
    assert_error(late, method="POST", path="/auth/device/exchange", status=401, error="invalid_grant")


def _refreshed_in_body(result: HttpResult, body: Any, api: Api, state: State) -> None:
    _product_tokens(result, body, refresh_in_body=True)
    assert body["refresh_token"].startswith("rt_") and body["refresh_token"] != state["refresh_token"]
    assert not any(c.startswith("refresh_token=") for c in result.cookies), result.cookies


def _refreshed_in_cookie(result: HttpResult, body: Any, api: Api, state: State) -> None:
    _product_tokens(result, body, refresh_in_body=False)
    assert state["refresh_token"] not in result.text
    (cookie,) = [c for c in result.cookies if c.startswith("refresh_token=")]
    value, *attributes = [part.strip() for part in cookie.split(";")]
    assert value.startswith("refresh_token=rt_") and value != f"refresh_token={state['refresh_token']}"
    assert value.removeprefix("refresh_token=") not in result.text  # only in Set-Cookie
    lowered = {a.lower() for a in attributes}
    assert {"httponly", "secure", "samesite=strict", "path=/auth"} <= lowered, cookie
    (max_age,) = [int(a.split("=", 1)[1]) for a in lowered if a.startswith("max-age=")]
    assert 0 < max_age <= 30 * 86400


def _legacy_tokens(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert_legacy_headers(result)
    assert body["success"] is True
    data = body["data"]
    assert set(data) == {"access_token", "token_type", "refresh_token", "ttl", "issued_at", "expires_at"}
    assert data["token_type"] == "bearer" and data["ttl"] == "3600"
    assert data["refresh_token"].startswith("rt_") and data["refresh_token"] != state["refresh_token"]
    _is_jwt(data["access_token"])
    issued = datetime.strptime(data["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
    expires = datetime.strptime(data["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert (expires - issued).total_seconds() == 3600


def _family_ended(token_key: str) -> Check:
    """After the request, the refresh token of `token_key` (and its family) no longer works."""

    def check(result: HttpResult, body: Any, api: Api, state: State) -> None:
        after = api.call("POST", "/auth/refresh", body={"refresh_token": state[token_key]})
        assert_error(after, method="POST", path="/auth/refresh", status=401, error="invalid_grant")

    return check


def _signed_out(result: HttpResult, body: Any, api: Api, state: State) -> None:
    (cookie,) = [c for c in result.cookies if c.startswith("refresh_token=")]
    lowered = [part.strip().lower() for part in cookie.split(";")]
    assert lowered[0] == "refresh_token=" and "max-age=0" in lowered, cookie
    _family_ended("refresh_token")(result, body, api, state)


def _revoked(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body == {}
    _family_ended("refresh_token")(result, body, api, state)


def _empty(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body == {}


def _active(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body["active"] is True
    assert body["client_id"] == "demo-cli" and body["sub"] == "user-1"


def _inactive(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body == {"active": False}


def _still_valid(token_key: str) -> Check:
    """A refused request did not consume the token."""

    def check(result: HttpResult, body: Any, api: Api, state: State) -> None:
        after = api.call("POST", "/auth/refresh", body={"refresh_token": state[token_key]})
        assert after.status == 200, after.text

    return check


def _listed(result: HttpResult, body: Any, api: Api, state: State) -> None:
    ids = [s["id"] for s in body["sessions"]]
    assert state["session_id"] in ids and "next" in body
    (session,) = [s for s in body["sessions"] if s["id"] == state["session_id"]]
    assert (
        session["client"] == {"id": "demo-cli", "name": "Demo CLI"}
        and session["organization"]["id"] == "acme"
    )


def _ended(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body == {"status": "revoked"}
    _family_ended("refresh_token")(result, body, api, state)


def _all_ended(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body["status"] == "revoked" and body["count"] >= 1
    _family_ended("refresh_token")(result, body, api, state)


def _metadata(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body["issuer"] == ISSUER
    for key, path in {
        "device_authorization_endpoint": "/oauth/device/code",
        "token_endpoint": "/oauth/token",
        "revocation_endpoint": "/oauth/revoke",
        "introspection_endpoint": "/oauth/introspect",
        "jwks_uri": "/.well-known/jwks.json",
    }.items():
        assert body[key] == f"{ISSUER}{path}", key
    assert set(body["grant_types_supported"]) >= {
        "urn:ietf:params:oauth:grant-type:device_code",
        "refresh_token",
    }
    assert body["token_endpoint_auth_methods_supported"]


def _jwks(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert body["keys"]
    for key in body["keys"]:
        assert key["kid"] and key["kty"] == "EC" and key["crv"] == "P-256"
        assert "d" not in key  # never a private half


def _device_page(result: HttpResult, body: Any, api: Api, state: State) -> None:
    assert 'value="WDJB-MJHT"' in body and "<form" in body


# ---------------------------------------------------------------- the table

P, A, S, R = "pending", "approved", "signed_in", "rotated"
EXPECTED: dict[str, Case] = {
    # POST /oauth/device/code (OAuth dialect)
    "device_code.success.json": Case(200, check=_device_authorization),
    "device_code.success_json.json": Case(200, check=_device_authorization),
    "device_code.success_base64.json": Case(200, check=_device_authorization),
    "device_code.unknown_client.json": Case(401, "invalid_client"),
    "device_code.missing_client_id.json": Case(401, "invalid_client"),
    "device_code.wrong_content_type.json": Case(400, "invalid_request"),
    "device_code.basic_unknown_client.json": Case(401, "invalid_client"),
    # GET /oauth/device/verify (product dialect)
    "verify_get.success.json": Case(200, check=_verify_info, setup=P),
    "verify_get.missing_claims.json": Case(401, "unauthorized", setup=P),
    "verify_get.bad_id_token.json": Case(401, "unauthorized", setup=P),
    "verify_get.missing_user_code.json": Case(422, "validation_error", loc=["query", "user_code"]),
    "verify_get.unknown_user_code.json": Case(404, "not_found"),
    # POST /oauth/device/verify (product dialect)
    "verify_post.approve.json": Case(200, check=_approved_for("acme", "admin"), setup=P),
    "verify_post.approve_organization.json": Case(200, check=_approved_for("globex", "owner"), setup=P),
    "verify_post.deny.json": Case(200, check=_decided("denied"), setup=P),
    "verify_post.bad_body.json": Case(400, "invalid_request"),
    "verify_post.missing_claims.json": Case(401, "unauthorized", setup=P),
    "verify_post.expired_id_token.json": Case(401, "unauthorized", setup=P),
    "verify_post.validation_error.json": Case(422, "validation_error", loc=["body", "decision"], setup=P),
    "verify_post.organization_required.json": Case(
        422, "validation_error", loc=["body", "organization_id"], setup=P
    ),
    "verify_post.unknown_user_code.json": Case(404, "not_found"),
    # POST /auth/device/exchange (product dialect)
    "device_exchange.success.json": Case(200, check=_exchanged, setup=A),
    "device_exchange.pending.json": Case(400, "authorization_pending", setup=P),
    "device_exchange.bad_body.json": Case(400, "invalid_request"),
    "device_exchange.json_array.json": Case(400, "invalid_request"),
    "device_exchange.unknown_client.json": Case(401, "invalid_client"),
    "device_exchange.unknown_device_code.json": Case(401, "invalid_grant"),
    "device_exchange.validation_error.json": Case(422, "validation_error", loc=["body", "device_code"]),
    # POST /oauth/token (OAuth dialect)
    "token.device_pending.json": Case(400, "authorization_pending", setup=P),
    "token.device_success.json": Case(200, check=_oauth_tokens, setup=A),
    "token.unsupported_grant_type.json": Case(400, "unsupported_grant_type"),
    "token.missing_device_code.json": Case(400, "invalid_request"),
    "token.refresh_success.json": Case(200, check=_oauth_tokens, setup=S),
    "token.refresh_json.json": Case(200, check=_oauth_tokens, setup=S),
    "token.refresh_unknown_token.json": Case(400, "invalid_grant"),
    "token.deeply_nested_json.json": Case(400, "invalid_request"),
    # GET /oauth/token (legacy dialect)
    "token.legacy_get.success.json": Case(200, check=_legacy_tokens, setup=S),
    "token.legacy_get.error.json": Case(400, "unsupported_grant_type"),
    "token.legacy_get.unknown_client.json": Case(401, "invalid_client"),
    # POST /auth/refresh (product dialect)
    "refresh.body.json": Case(200, check=_refreshed_in_body, setup=S),
    "refresh.cookie.json": Case(200, check=_refreshed_in_cookie, setup=S),
    "refresh.cookie_bad_origin.json": Case(
        403, "access_denied", check=_still_valid("refresh_token"), setup=S
    ),
    "refresh.cookie_no_origin.json": Case(403, "access_denied", check=_still_valid("refresh_token"), setup=S),
    "refresh.both_differ.json": Case(400, "invalid_request", check=_still_valid("refresh_token"), setup=S),
    "refresh.reuse.json": Case(401, "invalid_grant", check=_family_ended("current_refresh_token"), setup=R),
    "refresh.missing_token.json": Case(401, "invalid_grant"),
    "refresh.validation_error.json": Case(422, "validation_error", loc=["body", "refresh_token"]),
    # POST /auth/logout (product dialect)
    "logout.body.json": Case(200, check=_signed_out, setup=S),
    "logout.cookie.json": Case(200, check=_signed_out, setup=S),
    # POST /oauth/revoke (OAuth dialect)
    "revoke.refresh_token.json": Case(200, check=_revoked, setup=S),
    "revoke.unknown_token.json": Case(200, check=_empty),
    "revoke.missing_token.json": Case(400, "invalid_request"),
    # POST /oauth/introspect (OAuth dialect)
    "introspect.active.json": Case(200, check=_active, setup=S),
    "introspect.unknown_token.json": Case(200, check=_inactive),
    "introspect.public_client.json": Case(400, "unauthorized_client"),
    "introspect.jwt_typ_not_string.json": Case(200, check=_inactive),
    # discovery
    "well_known.metadata.json": Case(200, check=_metadata, public=3600),
    "well_known.jwks.json": Case(200, check=_jwks, public=300),
    # the verification page (HTML): a prefilled code is shown, escaped, never decided
    "device_page.prefilled.json": Case(200, html=True, check=_device_page),
    # the signed-in person's sessions
    "sessions_list.success.json": Case(200, check=_listed, setup=S),
    "sessions_list.bad_cursor.json": Case(400, "invalid_request", setup=S),
    "sessions_list.missing_id_token.json": Case(401, "unauthorized"),
    "sessions_end.success.json": Case(200, check=_ended, setup=S),
    "sessions_end.not_found.json": Case(404, "not_found", setup=S),
    "sessions_end.someone_elses.json": Case(404, "not_found", check=_still_valid("refresh_token"), setup=S),
    "sessions_revoke_all.success.json": Case(200, check=_all_ended, setup=S),
}


def prepare(api: Api, seed: aws.Seed, setup: str | None) -> State:
    """Live values for the placeholders: a pending or approved device request of demo-cli, a signed-in
    session's refresh token, or a refresh token already rotated out twice (and its family's current one)."""
    state: State = {
        "client_secret": seed.confidential_secret,
        "id_token": IDP.token(seed.user),
        "multi_user_id_token": IDP.token(seed.multi_user),
        "expired_id_token": IDP.token(seed.user, now=int(time.time()) - 7200),
    }
    if setup in ("pending", "approved"):
        started = api.device_code()
        state |= {"device_code": started["device_code"], "user_code": started["user_code"]}
        if setup == "approved":
            assert api.approve(started["user_code"], seed.user).status == 200
    elif setup == "signed_in":
        state["refresh_token"] = api.signed_in(seed)["refresh_token"]
        state["session_id"] = grant_of(state["refresh_token"])
    elif setup == "rotated":  # a token two rotations old: outside any grace period, whatever the clock
        first = api.signed_in(seed)["refresh_token"]
        current = first
        for _ in range(2):
            rotated = api.call("POST", "/auth/refresh", body={"refresh_token": current})
            assert rotated.status == 200, rotated.text
            current = rotated.json()["refresh_token"]
        state |= {"rotated_refresh_token": first, "current_refresh_token": current}
    return state


def load(name: str, state: State) -> dict[str, Any]:
    text = (EVENTS / name).read_text()
    for key in set(PLACEHOLDER.findall(text)):
        assert key in state, f"{name}: no value for {{{{{key}}}}}; give its EXPECTED entry a setup"
        text = text.replace(f"{{{{{key}}}}}", state[key])
    event: dict[str, Any] = json.loads(text)
    return event


# ---------------------------------------------------------------- tests


def test_there_are_events() -> None:
    assert len(FILES) >= 40, FILES


def test_every_expectation_has_its_event() -> None:
    assert sorted(set(EXPECTED) - set(FILES)) == []


@pytest.fixture(scope="module")
def account() -> Iterator[aws.Seed]:
    """One moto account for the module: every case makes its own live state in `prepare`."""
    with shared_account() as seed:
        yield seed


@pytest.fixture
def api(account: aws.Seed) -> Api:
    return Api()


@pytest.mark.parametrize("name", FILES)
def test_event(name: str, api: Api, account: aws.Seed) -> None:
    assert name in EXPECTED, f"events/{name} has no expectation: add it to EXPECTED in {__name__}"
    case = EXPECTED[name]
    state = prepare(api, account, case.setup)
    event = load(name, state)
    method, path = event["requestContext"]["http"]["method"], event["rawPath"]

    result = api.send(event)

    if case.error is not None:
        body = assert_error(
            result,
            method=method,
            path=path,
            status=case.status,
            error=case.error,
            request_id=event["requestContext"]["requestId"],
            loc=case.loc,
        )
    elif case.html:
        assert result.status == case.status
        assert result.headers["content-type"].startswith("text/html")
        assert result.headers["cache-control"] == "no-store"
        body = result.text
    elif case.public is not None:  # the one exception to no-store (issue #10 item 6)
        assert result.headers["content-type"] == "application/json"
        assert result.headers["cache-control"] == f"public, max-age={case.public}"
        assert result.headers["etag"].startswith('"')
        assert result.status == case.status, result.text
        body = result.json()
    else:
        body = assert_common(result)
        assert result.status == case.status, result.text
    if name.startswith("device_code.basic_"):
        assert result.headers.get("www-authenticate", "").startswith("Basic"), result.headers
    if case.check is not None:
        case.check(result, body, api, state)


# ---------------------------------------------------------------- the files themselves


@pytest.mark.parametrize("name", FILES)
def test_event_is_an_http_api_payload_v2(name: str) -> None:
    """The shape local.lambda_host.http_event builds (and API Gateway sends), for a route we serve."""
    event = json.loads((EVENTS / name).read_text())
    method, path = event["requestContext"]["http"]["method"], event["rawPath"]
    reference = http_event(method, path)
    assert (
        set(reference)
        <= set(event)
        <= set(reference)
        | {
            "body",
            "cookies",
            "queryStringParameters",
            "pathParameters",
        }
    ), sorted(event)
    assert set(event["requestContext"]) == set(reference["requestContext"])
    assert event["version"] == "2.0"
    matched = routes.match(method, path)
    assert matched is not None, f"{method} {path} is no route of ours"
    route, params = matched
    assert event["routeKey"] == event["requestContext"]["routeKey"] == route.key
    assert event.get("pathParameters", {}) == params
    assert event["requestContext"]["http"]["path"] == path
    assert all(k == k.lower() for k in event["headers"]), event["headers"]
    assert isinstance(event["isBase64Encoded"], bool)
    if event["isBase64Encoded"]:
        base64.b64decode(event["body"], validate=True)
    if event["rawQueryString"]:
        assert "queryStringParameters" in event
    assert (
        "authorizer" not in event["requestContext"]
    )  # people sign in with an ID token, checked by the function
    if path in {r[1] for r in ROUTES if r[1] == "/oauth/device/verify"} and "missing_claims" not in name:
        assert event["headers"]["authorization"].startswith("Bearer ")


@pytest.mark.parametrize("name", FILES)
def test_event_holds_no_real_secret(name: str) -> None:
    text = (EVENTS / name).read_text()
    for prefix, grant_id in re.findall(r"\b(dc|rt)_([0-9a-f]{32})_[A-Za-z0-9_-]{43}\b", text):
        assert set(grant_id) == {"0"}, f"{name}: a real-looking {prefix} token; use a placeholder"
    assert "-----BEGIN" not in text
    for match in re.findall(r"client_secret=([^&\"]*)", text):
        assert match == "{{client_secret}}", name


@pytest.mark.parametrize("name", FILES)
def test_event_is_documented(name: str) -> None:
    """events/README.md has one line per file, with its function and how to invoke it."""
    event = json.loads((EVENTS / name).read_text())
    matched = routes.match(event["requestContext"]["http"]["method"], event["rawPath"])
    assert matched is not None
    function = FUNCTIONS[matched[0].function]
    readme = (EVENTS / "README.md").read_text().splitlines()
    lines = [line for line in readme if line.startswith("- ") and f"events/{name}" in line]
    assert len(lines) == 1, f"events/README.md should have exactly one line for {name}"
    assert f"sam local invoke {function} -e events/{name}" in lines[0], lines[0]
    assert str(EXPECTED[name].status) in lines[0], lines[0]
    for key in set(PLACEHOLDER.findall((EVENTS / name).read_text())):
        assert f"{{{{{key}}}}}" in lines[0], f"README line for {name} should name {{{{{key}}}}}"
