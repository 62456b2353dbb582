"""The device flow through the handlers on moto: both exchange dialects, field by field, and every
error row of the contract these routes can produce."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import boto3
import jwt
import pytest

from authcore import runtime, tokens
from authcore.clock import Manual
from tests.conftest import GRACE, ISSUER, SECRET, TABLE, Api
from tests.integration.contract import assert_error_in
from tests.support import aws, jwt_check
from tests.support.aws import Seed

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def assert_api_headers(headers: dict[str, str]) -> None:
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"


def assert_product_error(result: Any, status: int, type_: str) -> dict[str, Any]:
    return assert_error_in(result, "product", status=status, error=type_)


def assert_oauth_error(result: Any, error: str, status: int = 400) -> dict[str, Any]:
    return assert_error_in(result, "oauth", status=status, error=error)


def set_item(grant_id: str, **values: int) -> None:
    """Move a grant in time by editing its item, as time passing would."""
    names = {f"#{k}": k for k in values}
    boto3.client("dynamodb", region_name=aws.REGION).update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"GRANT#{grant_id}"}, "sk": {"S": "GRANT"}},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in values),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues={f":{k}": {"N": str(v)} for k, v in values.items()},
    )


def grant_of(code: str) -> str:
    return code.split("_")[1]


def jwks(api: Api) -> dict[str, Any]:
    """The JWKS document the discovery function serves."""
    result = api.call("GET", "/.well-known/jwks.json")
    assert result.status == 200
    return result.json()  # type: ignore[no-any-return]


# ---------------------------------------------------------------- device authorization


def test_device_authorization_answers_per_rfc_8628(api: Api) -> None:
    result = api.call("POST", "/oauth/device/code", form={"client_id": "demo-cli", "scope": "read"})
    assert result.status == 200
    assert_api_headers(result.headers)
    body = result.json()
    assert set(body) == {
        "device_code",
        "user_code",
        "verification_uri",
        "verification_uri_complete",
        "expires_in",
        "interval",
    }
    assert body["device_code"].startswith("dc_") and len(body["device_code"].split("_", 2)[2]) >= 43
    code = body["user_code"]
    assert (
        len(code) == 9
        and code[4] == "-"
        and all(c in tokens.USER_CODE_ALPHABET for c in code.replace("-", ""))
    )
    assert body["verification_uri"] == f"{ISSUER}/device"
    assert body["verification_uri_complete"] == f"{ISSUER}/device?user_code={code}"
    assert (body["expires_in"], body["interval"]) == (900, 5)


def test_device_authorization_accepts_json_and_basic_auth(api: Api, account: Seed) -> None:
    assert api.call("POST", "/oauth/device/code", body={"client_id": "demo-cli"}).status == 200
    basic = base64.b64encode(f"backend:{account.confidential_secret}".encode()).decode()
    result = api.call("POST", "/oauth/device/code", form={}, headers={"authorization": f"Basic {basic}"})
    assert result.status == 200, result.text


@pytest.mark.parametrize(
    ("form", "error", "status"),
    [
        ({"client_id": "nobody"}, "invalid_client", 401),
        ({}, "invalid_client", 401),
        ({"client_id": "backend"}, "invalid_client", 401),  # confidential without its secret
        ({"client_id": "demo-cli", "scope": "admin"}, "invalid_scope", 400),
        ({"client_id": "no-device"}, "unauthorized_client", 400),
    ],
)
def test_device_authorization_errors(api: Api, form: dict[str, str], error: str, status: int) -> None:
    assert_oauth_error(api.call("POST", "/oauth/device/code", form=form), error, status)


def test_bad_basic_credentials_answer_401_with_www_authenticate(api: Api) -> None:
    basic = base64.b64encode(b"backend:wrong").decode()
    result = api.call("POST", "/oauth/device/code", form={}, headers={"authorization": f"Basic {basic}"})
    assert_oauth_error(result, "invalid_client", 401)
    assert result.headers["www-authenticate"].startswith("Basic")


def test_storage_holds_no_secret_in_the_clear(api: Api, account: Seed) -> None:
    started = api.device_code()
    assert api.approve(started["user_code"], account.user).status == 200
    tokens_ = api.exchange(started["device_code"]).json()
    dump = str(boto3.client("dynamodb", region_name=aws.REGION).scan(TableName=TABLE)["Items"])
    for secret in (
        started["device_code"],
        tokens_["refresh_token"],
        tokens_["access_token"],
        account.confidential_secret,
    ):
        assert secret not in dump
    assert started["device_code"].split("_", 2)[2] not in dump  # not even the random part
    assert tokens_["refresh_token"].removeprefix("rt_")[-40:] not in dump  # nor the nonce and tag


# ---------------------------------------------------------------- the user's decision


def test_verify_shows_the_request_and_matches_user_codes_loosely(api: Api, account: Seed) -> None:
    started = api.device_code(scope="read write")
    sloppy = " " + started["user_code"].lower().replace("-", " ") + " "
    result = api.call("GET", "/oauth/device/verify", query={"user_code": sloppy}, claims=account.user)
    assert result.status == 200, result.text
    assert_api_headers(result.headers)
    body = result.json()
    assert body["user_code"] == started["user_code"]
    assert body["client"] == {"id": "demo-cli", "name": "Demo CLI"}
    assert body["scope"] == "read write"
    assert body["status"] == "pending"
    assert body["expires_at"].endswith("Z")
    assert body["organizations"] == [{"id": "acme", "name": "Acme Corp", "role": "admin"}]


def test_verify_needs_a_signed_in_user(api: Api) -> None:
    started = api.device_code()
    result = api.call("GET", "/oauth/device/verify", query={"user_code": started["user_code"]})
    assert_product_error(result, 401, "unauthorized")
    result = api.call(
        "POST", "/oauth/device/verify", body={"user_code": started["user_code"], "decision": "approve"}
    )
    assert_product_error(result, 401, "unauthorized")


def test_unknown_and_expired_user_codes_get_the_same_404(api: Api, account: Seed) -> None:
    started = api.device_code()
    set_item(grant_of(started["device_code"]), expires_at=int(time.time()) - 1)
    expired = api.call(
        "GET", "/oauth/device/verify", query={"user_code": started["user_code"]}, claims=account.user
    )
    unknown = api.call("GET", "/oauth/device/verify", query={"user_code": "BCDF-GHJK"}, claims=account.user)
    a = assert_product_error(expired, 404, "not_found")
    b = assert_product_error(unknown, 404, "not_found")
    assert a["message"] == b["message"]
    assert_product_error(api.approve(started["user_code"], account.user), 404, "not_found")


def test_a_decision_is_final(api: Api, account: Seed) -> None:
    started = api.device_code()
    assert api.approve(started["user_code"], account.user).json() == {"status": "approved"}
    # the same person sending the same decision again (a double submit): the same answer, idempotent
    assert api.approve(started["user_code"], account.user).json() == {"status": "approved"}
    # anyone else, or another decision: the first decision stands
    assert_product_error(
        api.approve(started["user_code"], account.multi_user, organization_id="acme"), 409, "already_exists"
    )
    deny = {"user_code": started["user_code"], "decision": "deny"}
    assert_product_error(
        api.call("POST", "/oauth/device/verify", body=deny, claims=account.user), 409, "already_exists"
    )


def test_organization_choice(api: Api, account: Seed) -> None:
    started = api.device_code()
    body = assert_product_error(
        api.approve(started["user_code"], account.multi_user), 422, "validation_error"
    )
    assert body["details"] == [
        {"loc": ["body", "organization_id"], "msg": "Field required", "type": "missing"}
    ]
    assert_product_error(
        api.approve(started["user_code"], account.multi_user, organization_id="initech"), 403, "access_denied"
    )
    assert_product_error(api.approve(started["user_code"], account.lonely_user), 403, "access_denied")
    assert api.approve(started["user_code"], account.multi_user, organization_id="globex").status == 200
    issued = api.exchange(started["device_code"]).json()
    assert issued["organization"] == {"id": "globex", "name": "Globex", "role": "owner"}
    assert issued["user"] == {"id": "user-2", "email": "grace@example.com", "name": "Grace Hopper"}


def test_wrong_user_codes_are_limited_per_user(
    api: Api, account: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VERIFY_ATTEMPTS_LIMIT", "3")

    runtime.reset()
    started = api.device_code()
    for _ in range(3):
        r = api.call("GET", "/oauth/device/verify", query={"user_code": "BCDF-GHJK"}, claims=account.user)
        assert_product_error(r, 404, "not_found")
    # now even the right code is refused for this user (no oracle for guessing) ...
    limited = api.call(
        "GET", "/oauth/device/verify", query={"user_code": started["user_code"]}, claims=account.user
    )
    assert_product_error(limited, 429, "rate_limited")
    assert 0 < int(limited.headers["retry-after"]) <= 900
    assert_product_error(api.approve(started["user_code"], account.user), 429, "rate_limited")
    # ... while another user is not affected
    assert (
        api.call(
            "GET",
            "/oauth/device/verify",
            query={"user_code": started["user_code"]},
            claims=account.multi_user,
        ).status
        == 200
    )


def test_approval_snapshots_the_user_and_organization(api: Api, account: Seed) -> None:
    started = api.device_code()
    assert api.approve(started["user_code"], account.user).status == 200
    # the organization is renamed after approval: the grant keeps what the user approved
    boto3.client("dynamodb", region_name=aws.REGION).update_item(
        TableName=TABLE,
        Key={"pk": {"S": "USER#user-1"}, "sk": {"S": "ORG#acme"}},
        UpdateExpression="SET org_name = :n, #r = :r",
        ExpressionAttributeNames={"#r": "role"},
        ExpressionAttributeValues={":n": {"S": "Renamed"}, ":r": {"S": "member"}},
    )
    issued = api.exchange(started["device_code"]).json()
    assert issued["organization"] == {"id": "acme", "name": "Acme Corp", "role": "admin"}


# ---------------------------------------------------------------- exchange, both dialects


def test_product_exchange_answer_field_by_field(api: Api, account: Seed) -> None:
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    result = api.exchange(started["device_code"])
    assert result.status == 200
    assert_api_headers(result.headers)
    assert result.headers["pragma"] == "no-cache"
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
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "read write"
    assert body["refresh_token"].startswith("rt_") and len(body["refresh_token"]) >= 3 + 43
    assert body["user"] == {"id": "user-1", "email": "ada@example.com", "name": "Ada Lovelace"}
    assert body["organization"] == {"id": "acme", "name": "Acme Corp", "role": "admin"}
    claims = jwt_check.verify_access_token(body["access_token"], jwks(api), issuer=ISSUER, audience=ISSUER)
    assert claims["sub"] == "user-1" and claims["org_id"] == "acme" and claims["client_id"] == "demo-cli"
    assert claims["scope"] == "read write" and claims["sid"] == grant_of(started["device_code"])
    assert claims["exp"] - claims["iat"] == 3600 and claims["jti"]


def test_the_tests_token_check_refuses_what_a_resource_server_must(api: Api, account: Seed) -> None:
    """tests/support/jwt_check.py, which every test that checks a token relies on, can fail: a real
    token passes, and each way a token can be wrong for a resource server is refused."""
    token = api.signed_in(account)["access_token"]
    published = jwks(api)
    claims = jwt_check.verify_access_token(token, published, issuer=ISSUER, audience=ISSUER)
    keys = aws.keyset(SECRET)
    header = {"kid": keys.signing_kid, "typ": "at+jwt"}

    def signed(changes: dict[str, Any], **headers: Any) -> str:
        body = {k: v for k, v in {**claims, **changes}.items() if v is not None}
        return jwt.encode(body, keys.signing_key, algorithm="ES256", headers={**header, **headers})

    assert jwt_check.verify_access_token(signed({}), published, issuer=ISSUER, audience=ISSUER) == claims
    refused: dict[str, tuple[str, dict[str, str]]] = {
        "another issuer": (signed({"iss": "https://elsewhere.example"}), {}),
        "another audience": (signed({"aud": "https://elsewhere.example"}), {}),
        "checked for another issuer": (token, {"issuer": "https://elsewhere.example"}),
        "checked for another audience": (token, {"audience": "https://elsewhere.example"}),
        "not at+jwt": (signed({}, typ="JWT"), {}),
        "no sid": (signed({"sid": None}), {}),
        "no client_id": (signed({"client_id": None}), {}),
        "no jti": (signed({"jti": None}), {}),
        "expired": (signed({"exp": claims["iat"] - 1, "iat": claims["iat"] - 3601}), {}),
        "issued in the future": (signed({"iat": claims["iat"] + 600, "nbf": claims["iat"] + 600}), {}),
        "an unknown key": (signed({}, kid="someone-else"), {}),
        "HS256 keyed with nothing": (
            jwt.encode(claims, "x" * 32, algorithm="HS256", headers={**header, "alg": "HS256"}),
            {},
        ),
        "a tampered payload": (token.rsplit(".", 1)[0][:-4] + "AAAA." + token.rsplit(".", 1)[1], {}),
    }
    for case, (bad, overrides) in refused.items():
        expected = {"issuer": ISSUER, "audience": ISSUER, **overrides}
        with pytest.raises((AssertionError, jwt.PyJWTError)):
            jwt_check.verify_access_token(bad, published, **expected)
            pytest.fail(f"{case}: accepted")


def test_oauth_exchange_answer_field_by_field(api: Api, account: Seed, clock: Manual) -> None:
    started = api.device_code()
    form = {"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": "demo-cli"}
    assert_oauth_error(api.call("POST", "/oauth/token", form=form), "authorization_pending")
    api.approve(started["user_code"], account.user)
    result = api.call("POST", "/oauth/token", form=form)
    assert result.status == 200, result.text
    assert_api_headers(result.headers)
    assert result.headers["pragma"] == "no-cache"
    body = result.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "read write"
    claims = jwt_check.verify_access_token(
        body["access_token"], jwks(api), issuer=ISSUER, audience=ISSUER, now=clock()
    )
    assert claims["iat"] == clock() and claims["exp"] == clock() + 3600  # dated by the service's clock
    # re-sent at once (its answer was lost): the same family, the same refresh token
    again = api.call("POST", "/oauth/token", form=form)
    assert again.status == 200 and again.json()["refresh_token"] == body["refresh_token"], again.text
    clock.advance(GRACE)  # past the window: the code is used
    assert_oauth_error(api.call("POST", "/oauth/token", form=form), "invalid_grant")


def test_product_exchange_error_rows(api: Api, account: Seed) -> None:
    pending = api.device_code()
    assert_product_error(api.exchange(pending["device_code"]), 400, "authorization_pending")
    # polled again at once: too fast
    slow = assert_product_error(api.exchange(pending["device_code"]), 429, "slow_down")
    assert slow["message"]
    denied = api.device_code()
    api.call(
        "POST",
        "/oauth/device/verify",
        body={"user_code": denied["user_code"], "decision": "deny"},
        claims=account.user,
    )
    assert_product_error(api.exchange(denied["device_code"]), 403, "access_denied")
    expired = api.device_code()
    set_item(grant_of(expired["device_code"]), expires_at=int(time.time()) - 1)
    assert_product_error(api.exchange(expired["device_code"]), 400, "expired_token")
    unknown = "dc_" + "0" * 32 + "_" + "A" * 43
    assert_product_error(api.exchange(unknown), 401, "invalid_grant")
    assert_product_error(api.exchange("not-a-code"), 401, "invalid_grant")
    assert_product_error(api.exchange(pending["device_code"], client_id="nobody"), 401, "invalid_client")
    assert_product_error(api.exchange(pending["device_code"], client_id="old-cli"), 401, "invalid_grant")


def test_oauth_exchange_error_rows(api: Api, account: Seed) -> None:
    def poll(code: str, client_id: str = "demo-cli") -> Any:
        return api.call(
            "POST",
            "/oauth/token",
            form={"grant_type": DEVICE_GRANT, "device_code": code, "client_id": client_id},
        )

    denied = api.device_code()
    api.call(
        "POST",
        "/oauth/device/verify",
        body={"user_code": denied["user_code"], "decision": "deny"},
        claims=account.user,
    )
    assert_oauth_error(poll(denied["device_code"]), "access_denied")
    expired = api.device_code()
    set_item(grant_of(expired["device_code"]), expires_at=int(time.time()) - 1)
    assert_oauth_error(poll(expired["device_code"]), "expired_token")
    assert_oauth_error(poll("dc_" + "0" * 32 + "_" + "A" * 43), "invalid_grant")
    assert_oauth_error(poll(denied["device_code"], "nobody"), "invalid_client", 401)
    assert_oauth_error(
        api.call("POST", "/oauth/token", form={"grant_type": "password", "client_id": "demo-cli"}),
        "unsupported_grant_type",
    )
    assert_oauth_error(
        api.call("POST", "/oauth/token", form={"grant_type": DEVICE_GRANT, "client_id": "demo-cli"}),
        "invalid_request",
    )


def test_slow_down_grows_the_interval_and_the_first_poll_is_never_throttled(api: Api) -> None:
    started = api.device_code()
    code = started["device_code"]
    form = {"grant_type": DEVICE_GRANT, "device_code": code, "client_id": "demo-cli"}
    assert_oauth_error(api.call("POST", "/oauth/token", form=form), "authorization_pending")
    first = assert_oauth_error(api.call("POST", "/oauth/token", form=form), "slow_down")
    assert first["interval"] == 10
    second = assert_oauth_error(api.call("POST", "/oauth/token", form=form), "slow_down")
    assert second["interval"] == 15
    product = api.exchange(code)
    assert_product_error(product, 429, "slow_down")
    assert product.headers["retry-after"] == "20"
    # after the (grown) interval, less one second of jitter, a poll is accepted again
    set_item(grant_of(code), last_poll_at=int(time.time()) - 19)
    assert_oauth_error(api.call("POST", "/oauth/token", form=form), "authorization_pending")


def test_a_code_is_bound_to_its_client(api: Api, account: Seed) -> None:
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    basic = base64.b64encode(f"backend:{account.confidential_secret}".encode()).decode()
    other = api.call(
        "POST", "/oauth/token", form={"grant_type": DEVICE_GRANT, "device_code": started["device_code"]},
        headers={"authorization": f"Basic {basic}"},
    )  # fmt: skip
    assert_oauth_error(other, "invalid_grant")
    assert api.exchange(started["device_code"]).status == 200


def test_expired_items_still_stored_are_refused(api: Api, account: Seed) -> None:
    """DynamoDB returns items past their TTL until it deletes them, up to two days late."""
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    past = int(time.time()) - 10
    set_item(grant_of(started["device_code"]), expires_at=past, ttl=past)
    assert_product_error(api.exchange(started["device_code"]), 400, "expired_token")


def test_outdated_client_versions_are_refused(api: Api) -> None:
    started = api.device_code("old-cli")
    result = api.call(
        "POST", "/auth/device/exchange", body={"device_code": started["device_code"], "client_id": "old-cli"},
        headers={"x-client-version": "1.9.9"},
    )  # fmt: skip
    assert_product_error(result, 426, "upgrade_required")
    ok = api.call(
        "POST", "/auth/device/exchange", body={"device_code": started["device_code"], "client_id": "old-cli"},
        headers={"x-client-version": "2.0.0"},
    )  # fmt: skip
    assert_product_error(ok, 400, "authorization_pending")


def test_unknown_route_is_404_in_the_product_dialect(api: Api) -> None:
    from local import lambda_host

    event = lambda_host.http_event("GET", "/auth/nothing-here")
    handler = lambda_host.load_function("functions/device_exchange")
    assert_product_error(lambda_host.invoke(handler, event), 404, "not_found")


def test_discovery_lists_every_endpoint(api: Api) -> None:
    result = api.call("GET", "/.well-known/oauth-authorization-server")
    assert result.status == 200
    assert result.headers["content-type"] == "application/json"
    assert result.headers["cache-control"].startswith(
        "public, max-age="
    )  # tests/integration/test_public_documents.py
    meta = result.json()
    assert meta["issuer"] == ISSUER
    for key, path in {
        "device_authorization_endpoint": "/oauth/device/code",
        "token_endpoint": "/oauth/token",
        "revocation_endpoint": "/oauth/revoke",
        "introspection_endpoint": "/oauth/introspect",
        "jwks_uri": "/.well-known/jwks.json",
        "device_verification_endpoint": "/oauth/device/verify",
        "device_exchange_endpoint": "/auth/device/exchange",
        "refresh_endpoint": "/auth/refresh",
        "logout_endpoint": "/auth/logout",
    }.items():
        assert meta[key] == ISSUER + path
    assert set(meta["grant_types_supported"]) == {DEVICE_GRANT, "refresh_token"}
    assert {"none", "client_secret_basic", "client_secret_post"} <= set(
        meta["token_endpoint_auth_methods_supported"]
    )


def test_a_cognito_access_token_is_not_a_signed_in_person(api: Api, account: Seed) -> None:
    """Cognito access tokens pass the authorizer (their client_id is the audience) but name no person:
    approving with one would snapshot an empty user into the grant."""
    started = api.device_code()
    claims = {
        "sub": "user-1",
        "token_use": "access",
        "client_id": "web",
        "scope": "aws.cognito.signin.user.admin",
    }
    result = api.call(
        "POST",
        "/oauth/device/verify",
        body={"user_code": started["user_code"], "decision": "approve"},
        claims=claims,
    )
    assert_product_error(result, 401, "unauthorized")
    assert api.approve(started["user_code"], {**account.user, "token_use": "id"}).status == 200


# ---------------------------------------------------------------- lost answers (botocore's retries)


def lose_answers_of(operation: str, which: Callable[[dict[str, Any]], bool]) -> Any:
    """`aws.lose_answers`, only for the calls `which` picks out: a request makes several calls of one
    operation, and the test loses the answer of one of them."""
    return aws.lose_answers(operation, which=which)


def decision_write(params: dict[str, Any]) -> bool:
    """The decision's conditional write on the grant (not the wrong-code counter's updates)."""
    return str(params["Key"]["pk"]["S"]).startswith("GRANT#") and "decided_at" in params["UpdateExpression"]


def poll_write(params: dict[str, Any]) -> bool:
    """A pending poll's conditional write that records when it was accepted."""
    return str(params["Key"]["pk"]["S"]).startswith("GRANT#") and "last_poll_at" in params["UpdateExpression"]


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_a_lost_decision_answer_is_the_persons_own_decision(api: Api, account: Seed, decision: str) -> None:
    started = api.device_code()
    with lose_answers_of("UpdateItem", decision_write) as lost:
        result = api.call(
            "POST",
            "/oauth/device/verify",
            body={"user_code": started["user_code"], "decision": decision},
            claims=account.user,
        )
    assert lost.lost == 1  # the decision was applied once, out of band, before the retry went
    expected = {"approve": "approved", "deny": "denied"}[decision]
    assert result.status == 200, result.text
    assert result.json() == {"status": expected}


def test_a_lost_decision_answer_is_decided_all_the_same(api: Api, account: Seed) -> None:
    """Whatever the person is told, the decision that DynamoDB applied stands: the code redeems."""
    started = api.device_code()
    with lose_answers_of("UpdateItem", decision_write) as lost:
        api.approve(started["user_code"], account.user)
    assert lost.lost == 1
    assert api.exchange(started["device_code"]).status == 200


def test_a_lost_poll_answer_is_not_polling_too_fast(api: Api, clock: Manual) -> None:
    started = api.device_code()
    form = {"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": "demo-cli"}
    assert_oauth_error(api.call("POST", "/oauth/token", form=form), "authorization_pending")
    clock.advance(started["interval"])
    with lose_answers_of("UpdateItem", poll_write) as lost:
        second = api.call("POST", "/oauth/token", form=form)
    assert lost.lost == 1
    body = assert_oauth_error(second, "authorization_pending")
    assert "interval" not in body or body["interval"] == started["interval"]
