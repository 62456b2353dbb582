"""Issue #3: refresh (body and cookie), rotation and reuse, the token endpoint's refresh grant, the
legacy GET, revocation, introspection, logout."""

from __future__ import annotations

import base64
import re
import time
from typing import Any

import boto3
import pytest

from authcore.clock import Manual
from tests.conftest import GRACE, ORIGIN, TABLE, Api
from tests.integration.contract import assert_error_in
from tests.integration.test_device_flow import (
    assert_api_headers,
    assert_oauth_error,
    assert_product_error,
    set_item,
)
from tests.support import aws
from tests.support.aws import Seed
from tests.support.forge import UNKNOWN_RT, forged_refresh_token, grant_of

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def refresh_body(api: Api, token: str, **kw: Any) -> Any:
    return api.call("POST", "/auth/refresh", body={"refresh_token": token}, **kw)


def refresh_cookie(api: Api, token: str, origin: str | None = ORIGIN) -> Any:
    headers = {"origin": origin} if origin else {}
    return api.call("POST", "/auth/refresh", cookies=[f"refresh_token={token}"], headers=headers)


def introspect(api: Api, account: Seed, token: str) -> dict[str, Any]:
    basic = base64.b64encode(f"backend:{account.confidential_secret}".encode()).decode()
    result = api.call(
        "POST", "/oauth/introspect", form={"token": token}, headers={"authorization": f"Basic {basic}"}
    )
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


def cookie_attributes(set_cookie: str) -> dict[str, str]:
    parts = [p.strip() for p in set_cookie.split(";")]
    name, _, value = parts[0].partition("=")
    attrs = {"name": name, "value": value}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        attrs[k.lower()] = v
    return attrs


def past_grace(clock: Manual) -> None:
    clock.advance(GRACE + 1)


# ---------------------------------------------------------------- /auth/refresh


def test_body_refresh_answers_in_the_body(api: Api, account: Seed) -> None:
    first = api.signed_in(account)
    result = refresh_body(api, first["refresh_token"])
    assert result.status == 200, result.text
    assert_api_headers(result.headers)
    assert result.headers["pragma"] == "no-cache"
    assert result.cookies == []
    body = result.json()
    assert set(body) == {
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "scope",
        "user",
        "organization",
    }
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    assert body["refresh_token"] != first["refresh_token"] and body["refresh_token"].startswith("rt_")
    assert body["access_token"] != first["access_token"]
    assert body["user"] == first["user"] and body["organization"] == first["organization"]
    assert refresh_body(api, body["refresh_token"]).status == 200


def test_cookie_refresh_answers_only_in_set_cookie(api: Api, account: Seed, clock: Manual) -> None:
    first = api.signed_in(account)
    result = refresh_cookie(api, first["refresh_token"])
    assert result.status == 200, result.text
    body = result.json()
    assert "refresh_token" not in body
    assert body["user"]["id"] == "user-1" and body["organization"]["id"] == "acme"
    (cookie,) = result.cookies
    attrs = cookie_attributes(cookie)
    assert attrs["name"] == "refresh_token" and attrs["value"].startswith("rt_")
    assert attrs["value"] != first["refresh_token"]
    assert "httponly" in attrs and "secure" in attrs
    assert attrs["samesite"].lower() == "strict"
    assert attrs["path"] == "/auth"
    assert attrs["max-age"] == str(30 * 86400)  # the family's whole life: no time passed since it began
    assert attrs["value"] not in result.text
    assert refresh_cookie(api, attrs["value"]).status == 200


def test_cookie_refresh_needs_an_allowed_origin(api: Api, account: Seed) -> None:
    token = api.signed_in(account)["refresh_token"]
    assert_product_error(refresh_cookie(api, token, origin="https://evil.example"), 403, "access_denied")
    assert_product_error(refresh_cookie(api, token, origin=None), 403, "access_denied")
    assert refresh_cookie(api, token).status == 200  # the refused attempts did not rotate anything


def test_body_and_cookie_that_differ_are_refused(api: Api, account: Seed) -> None:
    a = api.signed_in(account)["refresh_token"]
    b = api.signed_in(account)["refresh_token"]
    result = api.call(
        "POST",
        "/auth/refresh",
        body={"refresh_token": a},
        cookies=[f"refresh_token={b}"],
        headers={"origin": ORIGIN},
    )
    assert_product_error(result, 400, "invalid_request")


def test_missing_unknown_and_expired_refresh_tokens(api: Api, account: Seed) -> None:
    assert_product_error(api.call("POST", "/auth/refresh", body={}), 401, "invalid_grant")
    assert_product_error(refresh_body(api, UNKNOWN_RT), 401, "invalid_grant")
    token = api.signed_in(account)["refresh_token"]
    set_item(grant_of(token), family_expires_at=int(time.time()) - 1)
    assert_product_error(refresh_body(api, token), 401, "invalid_grant")


def test_reuse_after_grace_kills_the_whole_family(api: Api, account: Seed, clock: Manual) -> None:
    first = api.signed_in(account)
    second = refresh_body(api, first["refresh_token"]).json()
    third = refresh_body(api, second["refresh_token"]).json()
    past_grace(clock)
    assert introspect(api, account, third["access_token"])["active"] is True
    # the first token comes back (stolen, replayed): reuse
    assert_product_error(refresh_body(api, first["refresh_token"]), 401, "invalid_grant")
    # every token of the family stops working at once
    assert_product_error(refresh_body(api, third["refresh_token"]), 401, "invalid_grant")
    assert introspect(api, account, third["access_token"]) == {"active": False}
    assert introspect(api, account, third["refresh_token"]) == {"active": False}
    assert introspect(api, account, first["access_token"]) == {"active": False}


def test_grace_covers_only_the_immediately_previous_token(api: Api, account: Seed) -> None:
    first = api.signed_in(account)["refresh_token"]
    second = refresh_body(api, first).json()["refresh_token"]
    # within grace, the previous token gets the same successor again, nothing new is minted
    again = refresh_body(api, first).json()["refresh_token"]
    assert again == second
    third = refresh_body(api, second).json()["refresh_token"]
    # `first` is now two generations old: no grace, reuse
    assert_product_error(refresh_body(api, first), 401, "invalid_grant")
    assert_product_error(refresh_body(api, third), 401, "invalid_grant")


def test_a_garbage_token_naming_a_grant_does_not_kill_it(api: Api, account: Seed) -> None:
    token = api.signed_in(account)["refresh_token"]
    forged = forged_refresh_token(grant_of(token), generation=2)
    assert_product_error(refresh_body(api, forged), 401, "invalid_grant")
    assert refresh_body(api, token).status == 200


def test_outdated_client_refresh_is_refused_without_losing_the_session(
    api: Api, account: Seed, clock: Manual
) -> None:
    started = api.device_code("old-cli")
    api.approve(started["user_code"], account.user)
    tokens_ = api.exchange(started["device_code"], client_id="old-cli").json()
    refused = refresh_body(api, tokens_["refresh_token"], headers={"x-client-version": "1.0.0"})
    assert_product_error(refused, 426, "upgrade_required")
    past_grace(clock)
    # after upgrading, the same token still works: the refusal rotated nothing (no reuse alarm)
    ok = refresh_body(api, tokens_["refresh_token"], headers={"x-client-version": "2.1.0"})
    assert ok.status == 200, ok.text


def test_logout_revokes_and_clears_the_cookie(api: Api, account: Seed) -> None:
    signed = api.signed_in(account)
    result = api.call(
        "POST",
        "/auth/logout",
        cookies=[f"refresh_token={signed['refresh_token']}"],
        headers={"origin": ORIGIN},
    )
    assert result.status == 200, result.text
    assert_api_headers(result.headers)
    (cookie,) = result.cookies
    attrs = cookie_attributes(cookie)
    assert attrs["name"] == "refresh_token" and attrs["value"] == "" and attrs["max-age"] == "0"
    assert attrs["path"] == "/auth"
    assert_product_error(refresh_body(api, signed["refresh_token"]), 401, "invalid_grant")
    assert introspect(api, account, signed["access_token"]) == {"active": False}
    assert api.call("POST", "/auth/logout", body={"refresh_token": signed["refresh_token"]}).status == 200


# ---------------------------------------------------------------- /oauth/token refresh grant


def test_token_endpoint_refresh_with_narrowing(api: Api, account: Seed) -> None:
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    first = api.call(
        "POST",
        "/oauth/token",
        form={"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": "demo-cli"},
    ).json()
    result = api.call(
        "POST",
        "/oauth/token",
        form={
            "grant_type": "refresh_token",
            "refresh_token": first["refresh_token"],
            "client_id": "demo-cli",
            "scope": "read",
        },
    )
    assert result.status == 200, result.text
    body = result.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["scope"] == "read" and body["token_type"] == "Bearer"
    # the family keeps its full scope: a later refresh without `scope` gets everything granted
    full = api.call(
        "POST",
        "/oauth/token",
        form={"grant_type": "refresh_token", "refresh_token": body["refresh_token"], "client_id": "demo-cli"},
    ).json()
    assert full["scope"] == "read write"


def test_token_endpoint_refresh_errors(api: Api, account: Seed, clock: Manual) -> None:
    def refresh(token: str, **form: str) -> Any:
        return api.call(
            "POST",
            "/oauth/token",
            form={"grant_type": "refresh_token", "refresh_token": token, "client_id": "demo-cli", **form},
        )

    token = api.signed_in(account)["refresh_token"]
    assert_oauth_error(refresh(UNKNOWN_RT), "invalid_grant")
    assert_oauth_error(refresh(token, scope="read admin"), "invalid_scope")
    basic = base64.b64encode(f"backend:{account.confidential_secret}".encode()).decode()
    other_client = api.call(
        "POST",
        "/oauth/token",
        form={"grant_type": "refresh_token", "refresh_token": token},
        headers={"authorization": f"Basic {basic}"},
    )
    assert_oauth_error(other_client, "invalid_grant")
    bad_secret = base64.b64encode(b"backend:nope").decode()
    wrong = api.call(
        "POST",
        "/oauth/token",
        form={"grant_type": "refresh_token", "refresh_token": token},
        headers={"authorization": f"Basic {bad_secret}"},
    )
    assert_oauth_error(wrong, "invalid_client", 401)
    assert wrong.headers["www-authenticate"].startswith("Basic")
    assert_oauth_error(
        refresh(token, client_secret="x"), "invalid_client", 401
    )  # a public client has no secret
    assert_oauth_error(
        api.call("POST", "/oauth/token", form={"grant_type": "refresh_token", "client_id": "demo-cli"}),
        "invalid_request",
    )
    rotated = refresh(token).json()["refresh_token"]
    past_grace(clock)
    assert_oauth_error(refresh(token), "invalid_grant")  # reuse
    assert_oauth_error(refresh(rotated), "invalid_grant")  # the family is gone
    expired = api.signed_in(account)["refresh_token"]
    set_item(grant_of(expired), family_expires_at=int(time.time()) - 1)
    assert_oauth_error(refresh(expired), "invalid_grant")
    revoked = api.signed_in(account)["refresh_token"]
    api.call("POST", "/oauth/revoke", form={"token": revoked, "client_id": "demo-cli"})
    assert_oauth_error(refresh(revoked), "invalid_grant")


def test_confidential_client_authenticates_in_the_body_too(api: Api, account: Seed) -> None:
    started = api.device_code("backend", client_secret=account.confidential_secret)
    api.approve(started["user_code"], account.user)
    form = {
        "grant_type": DEVICE_GRANT,
        "device_code": started["device_code"],
        "client_id": "backend",
        "client_secret": account.confidential_secret,
    }
    result = api.call("POST", "/oauth/token", form=form)
    assert result.status == 200, result.text


# ---------------------------------------------------------------- legacy GET /oauth/token

LEGACY = {"deprecation", "link"}


def test_legacy_get_success_envelope(api: Api, account: Seed) -> None:
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    result = api.call(
        "GET",
        "/oauth/token",
        query={"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": "demo-cli"},
    )
    assert result.status == 200, result.text
    assert_api_headers(result.headers)
    assert result.headers["link"] == '</oauth/token>; rel="successor-version"'
    assert result.headers["deprecation"]
    body = result.json()
    assert set(body) == {"success", "data"} and body["success"] is True
    data = body["data"]
    assert set(data) == {"access_token", "token_type", "refresh_token", "ttl", "issued_at", "expires_at"}
    assert data["token_type"] == "bearer" and data["ttl"] == "3600"
    pattern = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
    assert re.match(pattern, data["issued_at"]) and re.match(pattern, data["expires_at"])
    issued = time.strptime(data["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
    expires = time.strptime(data["expires_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert time.mktime(expires) - time.mktime(issued) == 3600
    again = api.call(
        "GET",
        "/oauth/token",
        query={
            "grant_type": "refresh_token",
            "refresh_token": data["refresh_token"],
            "client_id": "demo-cli",
        },
    )
    assert again.status == 200 and again.json()["data"]["refresh_token"] != data["refresh_token"]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"grant_type": "password", "client_id": "demo-cli"}, 400, "unsupported_grant_type"),
        (
            {
                "grant_type": "refresh_token",
                "refresh_token": UNKNOWN_RT,
                "client_id": "demo-cli",
            },
            400,
            "invalid_grant",
        ),
        ({"grant_type": "refresh_token", "refresh_token": "x", "client_id": "nobody"}, 401, "invalid_client"),
        ({"client_id": "demo-cli"}, 400, "invalid_request"),
    ],
)
def test_legacy_get_error_envelope(api: Api, query: dict[str, str], status: int, code: str) -> None:
    result = api.call("GET", "/oauth/token", query=query)
    assert result.status == status, result.text
    assert_api_headers(result.headers)
    assert (
        result.headers["link"] == '</oauth/token>; rel="successor-version"' and result.headers["deprecation"]
    )
    body = result.json()
    assert set(body) == {"success", "errorMessage", "errorDetails", "errorCode"}
    assert body["success"] is False and body["errorCode"] == code
    assert isinstance(body["errorMessage"], str) and body["errorMessage"]
    assert isinstance(body["errorDetails"], list) and all(isinstance(d, str) for d in body["errorDetails"])


def test_legacy_unsupported_grant_says_invalid_grant_type(api: Api) -> None:
    body = api.call("GET", "/oauth/token", query={"grant_type": "password", "client_id": "demo-cli"}).json()
    assert body["errorMessage"] == "Invalid grant type"


# ---------------------------------------------------------------- revocation and introspection


def test_revoke_is_200_for_anything_well_formed(api: Api, account: Seed) -> None:
    for token in (UNKNOWN_RT, "garbage", "eyJhbGciOiJub25lIn0.e30."):
        result = api.call("POST", "/oauth/revoke", form={"token": token, "client_id": "demo-cli"})
        assert result.status == 200, result.text
        assert_api_headers(result.headers)
    assert_oauth_error(api.call("POST", "/oauth/revoke", form={"client_id": "demo-cli"}), "invalid_request")
    assert_oauth_error(
        api.call("POST", "/oauth/revoke", form={"token": "x", "client_id": "nobody"}), "invalid_client", 401
    )


def test_revoking_ends_the_family_and_only_the_owner_can(api: Api, account: Seed) -> None:
    signed = api.signed_in(account)
    basic = base64.b64encode(f"backend:{account.confidential_secret}".encode()).decode()
    # another client revoking our token: 200, but nothing happens
    assert (
        api.call(
            "POST",
            "/oauth/revoke",
            form={"token": signed["refresh_token"]},
            headers={"authorization": f"Basic {basic}"},
        ).status
        == 200
    )
    assert introspect(api, account, signed["refresh_token"])["active"] is True
    successor = refresh_body(api, signed["refresh_token"]).json()["refresh_token"]
    # the owner revokes the previous (just rotated-out) token: the whole family ends
    assert (
        api.call(
            "POST", "/oauth/revoke", form={"token": signed["refresh_token"], "client_id": "demo-cli"}
        ).status
        == 200
    )
    assert_product_error(refresh_body(api, successor), 401, "invalid_grant")
    assert introspect(api, account, signed["access_token"]) == {"active": False}


def test_revoking_an_access_token_ends_its_grant(api: Api, account: Seed) -> None:
    signed = api.signed_in(account)
    assert (
        api.call(
            "POST", "/oauth/revoke", form={"token": signed["access_token"], "client_id": "demo-cli"}
        ).status
        == 200
    )
    assert_product_error(refresh_body(api, signed["refresh_token"]), 401, "invalid_grant")


def test_introspection(api: Api, account: Seed, clock: Manual) -> None:
    signed = api.signed_in(account)
    active = introspect(api, account, signed["access_token"])
    assert active["active"] is True
    assert active["sub"] == "user-1" and active["client_id"] == "demo-cli" and active["scope"] == "read write"
    assert active["org_id"] == "acme" and active["token_type"] == "Bearer"
    assert active["exp"] == clock() + 3600
    rt = introspect(api, account, signed["refresh_token"])
    assert rt["active"] is True and rt["token_type"] == "refresh_token"
    successor = refresh_body(api, signed["refresh_token"]).json()["refresh_token"]
    assert introspect(api, account, signed["refresh_token"]) == {"active": False}  # rotated out
    assert introspect(api, account, successor)["active"] is True
    assert introspect(api, account, "garbage") == {"active": False}
    # public clients may not introspect
    result = api.call(
        "POST", "/oauth/introspect", form={"token": signed["access_token"], "client_id": "demo-cli"}
    )
    assert_oauth_error(result, "unauthorized_client")
    assert_oauth_error(api.call("POST", "/oauth/introspect", form={"token": "x"}), "invalid_client", 401)


def test_an_expired_family_is_inactive(api: Api, account: Seed) -> None:
    signed = api.signed_in(account)
    set_item(grant_of(signed["refresh_token"]), family_expires_at=int(time.time()) - 1)
    assert introspect(api, account, signed["refresh_token"]) == {"active": False}
    assert introspect(api, account, signed["access_token"]) == {"active": False}


def test_the_family_item_lives_as_long_as_its_tokens(api: Api, account: Seed, clock: Manual) -> None:
    signed = api.signed_in(account)
    item = boto3.client("dynamodb", region_name=aws.REGION).get_item(
        TableName=TABLE,
        Key={"pk": {"S": f"GRANT#{grant_of(signed['refresh_token'])}"}, "sk": {"S": "GRANT"}},
    )["Item"]
    family_expires = int(item["family_expires_at"]["N"])
    assert family_expires == clock() + 30 * 86400
    assert int(item["ttl"]["N"]) == family_expires + 3600  # the last access token's lifetime on top


def test_public_client_may_use_basic_with_an_empty_password(api: Api, account: Seed) -> None:
    token = api.signed_in(account)["refresh_token"]
    basic = base64.b64encode(b"demo-cli:").decode()
    result = api.call(
        "POST",
        "/oauth/token",
        form={"grant_type": "refresh_token", "refresh_token": token},
        headers={"authorization": f"Basic {basic}"},
    )
    assert result.status == 200, result.text
    both = api.call(
        "POST", "/oauth/token",
        form={"grant_type": "refresh_token", "refresh_token": result.json()["refresh_token"], "client_secret": "x"},
        headers={"authorization": f"Basic {basic}"},
    )  # fmt: skip
    assert_oauth_error(both, "invalid_request")  # one authentication method per request (RFC 6749 §2.3)


# ---------------------------------------------------------------- a browser app's first cookie (issue #12 item 2)


def test_a_browser_app_moves_its_refresh_token_into_the_cookie(api: Api, account: Seed) -> None:
    """Signed in with the device flow, a web app holds a refresh token in memory once: one refresh with
    `set_cookie` puts the successor into the HttpOnly cookie and nowhere else, and from then on the app
    refreshes with the cookie alone."""
    signed = api.signed_in(account)
    moved = api.call(
        "POST",
        "/auth/refresh",
        body={"refresh_token": signed["refresh_token"], "set_cookie": True},
        headers={"origin": ORIGIN},
    )
    assert moved.status == 200, moved.text
    assert "refresh_token" not in moved.json() and moved.json()["access_token"]
    (cookie,) = moved.cookies
    parts = [p.strip().lower() for p in cookie.split(";")]
    assert parts[0].startswith("refresh_token=rt_") and {
        "httponly",
        "secure",
        "samesite=strict",
        "path=/auth",
    } <= set(parts)
    successor = cookie.split(";")[0].split("=", 1)[1]
    assert successor != signed["refresh_token"]
    again = refresh_cookie(api, successor)
    assert again.status == 200 and "refresh_token" not in again.json(), again.text


@pytest.mark.parametrize("origin", [None, "https://evil.example.test"])
def test_set_cookie_needs_an_allowed_origin_and_changes_nothing_otherwise(
    api: Api, account: Seed, origin: str | None
) -> None:
    signed = api.signed_in(account)
    refused = api.call(
        "POST",
        "/auth/refresh",
        body={"refresh_token": signed["refresh_token"], "set_cookie": True},
        headers={"origin": origin} if origin else {},
    )
    assert_error_in(refused, "product", status=403, error="access_denied")
    assert refused.cookies == []
    assert refresh_body(api, signed["refresh_token"]).status == 200  # not consumed


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"set_cookie": True}, 400, "invalid_request"),  # nothing to move
        ({"refresh_token": "rt_x", "set_cookie": "true"}, 422, "validation_error"),  # a boolean, not a string
    ],
)
def test_set_cookie_bad_input_is_a_clear_4xx(
    api: Api, account: Seed, body: dict[str, Any], status: int, error: str
) -> None:
    result = api.call("POST", "/auth/refresh", body=body, headers={"origin": ORIGIN})
    assert_error_in(result, "product", status=status, error=error)
