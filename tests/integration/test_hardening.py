"""Regression tests for the adversarial review (issue #7): each finding, as the attacker or the flaky
network that found it would try it again. Every test here failed against the code before the fix."""

from __future__ import annotations

import base64
import json
from typing import Any

import boto3
import jwt
import pytest

from authcore import settings, tokens
from authcore.clock import Manual
from authcore.runtime import BOTO_CONFIG
from authcore.store import Store
from local import admin
from local import template as tpl
from tests.conftest import GRACE, ISSUER, ORIGIN, SECRET, TABLE, Api, LogCapture
from tests.integration.test_device_flow import assert_oauth_error, assert_product_error
from tests.support import aws
from tests.support.aws import Seed, count_dynamodb, lose_answers
from tests.support.forge import forged_refresh_token, generation_of, grant_of

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def table() -> list[dict[str, Any]]:
    """Every item, as DynamoDB holds it: what a refused request must leave untouched."""
    items = boto3.client("dynamodb", region_name=aws.REGION).scan(TableName=TABLE)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def grant_item(grant_id: str) -> dict[str, Any]:
    item = aws.raw_item(TABLE, f"GRANT#{grant_id}", "GRANT")
    assert item is not None
    return item


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def refresh(api: Api, token: str, **kw: Any) -> Any:
    return api.call("POST", "/auth/refresh", body={"refresh_token": token}, **kw)


def introspect(api: Api, seed: Seed, token: str) -> dict[str, Any]:
    result = api.call(
        "POST", "/oauth/introspect", form={"token": token}, headers=basic("backend", seed.confidential_secret)
    )
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


def store() -> Store:
    return Store(boto3.client("dynamodb", region_name=aws.REGION), TABLE)


def hmac_key() -> tokens.Hmac:
    return aws.keyset(SECRET).hmac


def signed_in_with(api: Api, seed: Seed, client_id: str, **exchange_headers: str) -> dict[str, Any]:
    started = api.call("POST", "/oauth/device/code", form={"client_id": client_id}, headers=exchange_headers)
    assert started.status == 200, started.text
    code = started.json()
    assert api.approve(code["user_code"], seed.user).status == 200
    result = api.call(
        "POST",
        "/auth/device/exchange",
        body={"device_code": code["device_code"], "client_id": client_id},
        headers=exchange_headers,
    )
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


# ---------------------------------------------------------------- 1. forged tokens cost O(1)


def test_a_forged_token_naming_a_long_family_is_refused_by_its_tag_on_every_route(
    api: Api, account: Seed, captured_logs: LogCapture, clock: Manual
) -> None:
    """The old code walked the family's history for a forgery; now the tag refuses it before any read,
    the family lives on, and the refusal is counted with its reason."""
    token = api.signed_in(account)["refresh_token"]
    for _ in range(30):  # a long family: the cost must not depend on it
        token = refresh(api, token).json()["refresh_token"]
    assert generation_of(token) == 31
    forged = [forged_refresh_token(grant_of(token), generation=g) for g in (1, 30, 31, 32)]
    before = table()
    with count_dynamodb() as calls:
        for f in forged:
            assert_product_error(refresh(api, f), 401, "invalid_grant")
            form = {"grant_type": "refresh_token", "refresh_token": f, "client_id": "demo-cli"}
            assert_oauth_error(api.call("POST", "/oauth/token", form=form), "invalid_grant")
            assert api.call("POST", "/oauth/revoke", form={"token": f, "client_id": "demo-cli"}).status == 200
            assert api.call("POST", "/auth/logout", body={"refresh_token": f}).status == 200
    assert [c for c in calls.calls if c != "GetItem"] == []  # GetItem: the client registry (cache off)
    assert table() == before
    refusals = [
        json.loads(line)
        for line in captured_logs.lines
        if '"audit_event":"token_refused"' in line.replace(" ", "")
    ]
    assert len(refusals) == 4 * 4 and {r["reason"] for r in refusals} == {"forged"}
    assert all(r["grant_id"] == grant_of(token) for r in refusals)
    assert not any(f in line for f in forged for line in captured_logs.lines)
    clock.advance(GRACE + 1)
    assert refresh(api, token).status == 200  # the real session is untouched


def test_the_hmac_cost_of_any_presented_token_is_fixed(
    api: Api, account: Seed, monkeypatch: pytest.MonkeyPatch, clock: Manual
) -> None:
    """Counted, not timed: the HMACs a refusal costs are the same for a family of 2 or of 40 generations."""
    import hmac as std_hmac
    import sys

    count = [0]

    def counted(real: Any) -> Any:
        def counting(*args: Any, **kwargs: Any) -> Any:  # ours only: botocore signs with HMACs too
            if sys._getframe(1).f_globals.get("__name__") == "authcore.tokens":
                count[0] += 1
            return real(*args, **kwargs)

        return counting

    monkeypatch.setattr(tokens.hmac, "new", counted(std_hmac.new))
    monkeypatch.setattr(tokens.hmac, "digest", counted(std_hmac.digest))

    def cost(token: str) -> int:
        count[0] = 0
        refresh(api, token)
        return count[0]

    short = api.signed_in(account)["refresh_token"]
    short = refresh(api, short).json()["refresh_token"]
    long_ = api.signed_in(account)["refresh_token"]
    for _ in range(40):
        long_ = refresh(api, long_).json()["refresh_token"]
    forged_short = cost(forged_refresh_token(grant_of(short), generation=1))
    forged_long = cost(forged_refresh_token(grant_of(long_), generation=1))
    unknown = cost(forged_refresh_token("f" * 32))
    assert forged_short == forged_long == unknown == 1  # the tag alone refuses it
    assert cost(long_) == cost(short) == 5  # accepted: tag, digest, successor (nonce, tag), its digest


def test_reuse_stays_exact_for_every_earlier_generation_and_any_route(
    api: Api, account: Seed, clock: Manual
) -> None:
    """An authentic earlier token ends its family wherever it is presented; the grace covers only the
    immediately previous token."""
    chain = [api.signed_in(account)["refresh_token"]]
    for _ in range(4):
        chain.append(refresh(api, chain[-1]).json()["refresh_token"])
    clock.advance(GRACE + 1)
    # /oauth/revoke with an old token: RFC 7009 ends the family
    assert api.call("POST", "/oauth/revoke", form={"token": chain[1], "client_id": "demo-cli"}).status == 200
    assert_product_error(refresh(api, chain[-1]), 401, "invalid_grant")
    assert introspect(api, account, chain[-1]) == {"active": False}
    # and on a fresh family, the oldest token through the token endpoint
    other = [api.signed_in(account)["refresh_token"]]
    other.append(refresh(api, other[0]).json()["refresh_token"])
    other.append(refresh(api, other[1]).json()["refresh_token"])
    clock.advance(GRACE + 1)
    form = {"grant_type": "refresh_token", "refresh_token": other[0], "client_id": "demo-cli"}
    assert_oauth_error(api.call("POST", "/oauth/token", form=form), "invalid_grant")
    item = grant_item(grant_of(other[0]))
    assert item["revoke_reason"] == {"S": "reuse"}


# ---------------------------------------------------------------- 2. a refused request changes nothing


def test_a_refresh_refused_for_its_scope_writes_nothing(api: Api, account: Seed) -> None:
    started = api.device_code(scope="read")  # the grant has read; the client may have read and write
    api.approve(started["user_code"], account.user)
    token = api.exchange(started["device_code"]).json()["refresh_token"]
    before = table()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token,
        "client_id": "demo-cli",
        "scope": "read write",
    }
    with count_dynamodb() as calls:
        assert_oauth_error(api.call("POST", "/oauth/token", form=form), "invalid_scope")
    assert [c for c in calls.calls if c != "GetItem"] == ["UpdateItem"]  # refused in the write's condition
    form["scope"] = "read admin"  # never the client's: refused before the write
    with count_dynamodb() as calls:
        assert_oauth_error(api.call("POST", "/oauth/token", form=form), "invalid_scope")
    assert [c for c in calls.calls if c != "GetItem"] == []
    form["scope"] = " ".join(f"s{i}" for i in range(200))  # a condition DynamoDB would refuse: never built
    assert_oauth_error(api.call("POST", "/oauth/token", form=form), "invalid_scope")
    assert table() == before
    form["scope"] = "read"
    assert api.call("POST", "/oauth/token", form=form).status == 200  # the token was never rotated


def test_a_refresh_refused_for_the_client_version_writes_nothing(api: Api, account: Seed) -> None:
    tokens_ = signed_in_with(api, account, "old-cli", **{"x-client-version": "2.0.0"})
    before = table()
    with count_dynamodb() as calls:
        result = refresh(api, tokens_["refresh_token"], headers={"x-client-version": "1.9.9"})
    assert_product_error(result, 426, "upgrade_required")
    assert [c for c in calls.calls if c != "GetItem"] == []  # decided before the write
    assert table() == before
    assert refresh(api, tokens_["refresh_token"], headers={"x-client-version": "2.0.0"}).status == 200


def test_a_refresh_of_a_disabled_clients_session_writes_nothing(api: Api, account: Seed) -> None:
    token = api.signed_in(account)["refresh_token"]
    assert store().set_client_disabled("demo-cli", True)
    before = table()
    assert_product_error(refresh(api, token), 401, "invalid_grant")
    assert table() == before
    assert store().set_client_disabled("demo-cli", False)
    assert refresh(api, token).status == 200


# ---------------------------------------------------------------- 3. the same client rules on every route


def test_a_confidential_clients_token_needs_its_client_authentication_on_auth_refresh(
    api: Api, account: Seed
) -> None:
    started = api.device_code("backend", client_secret=account.confidential_secret)
    api.approve(started["user_code"], account.user)
    form = {"grant_type": DEVICE_GRANT, "device_code": started["device_code"]}
    token = api.call("POST", "/oauth/token", form=form, headers=basic("backend", account.confidential_secret))
    refresh_token = token.json()["refresh_token"]
    before = table()
    assert_product_error(refresh(api, refresh_token), 401, "invalid_client")
    assert_product_error(
        refresh(api, refresh_token, headers=basic("backend", "wrong")), 401, "invalid_client"
    )
    # another client's credentials: the token is not theirs
    assert_product_error(refresh(api, refresh_token, headers=basic("demo-cli", "")), 401, "invalid_grant")
    assert table() == before
    ok = refresh(api, refresh_token, headers=basic("backend", account.confidential_secret))
    assert ok.status == 200, ok.text
    assert generation_of(ok.json()["refresh_token"]) == 2


def test_a_client_without_the_refresh_grant_gets_no_refresh_token(api: Api, account: Seed) -> None:
    admin.create_client(
        store(), name="Access only", client_type="public", grant_types=["device_code"],
        scopes=["read"], client_id="access-only",
    )  # fmt: skip
    product = signed_in_with(api, account, "access-only")
    assert "refresh_token" not in product and product["access_token"]
    started = api.device_code("access-only")
    api.approve(started["user_code"], account.user)
    form = {"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": "access-only"}
    oauth = api.call("POST", "/oauth/token", form=form).json()
    assert set(oauth) == {"access_token", "token_type", "expires_in", "scope"}
    item = grant_item(grant_of_access(oauth["access_token"]))
    assert "rt_digest" not in item
    # the session lasts as long as its access token: introspection sees it, then not
    assert introspect(api, account, oauth["access_token"])["active"] is True
    # and the refresh grant is refused outright on the token endpoint
    refused = api.call(
        "POST",
        "/oauth/token",
        form={
            "grant_type": "refresh_token",
            "refresh_token": forged_refresh_token(),
            "client_id": "access-only",
        },
    )
    assert_oauth_error(refused, "unauthorized_client")


def grant_of_access(access_token: str) -> str:
    return str(jwt.decode(access_token, options={"verify_signature": False})["sid"])


# ---------------------------------------------------------------- 4. lost answers are not attacks


def test_a_lost_redemption_answer_gives_the_same_tokens(api: Api, account: Seed) -> None:
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    with lose_answers("UpdateItem") as lost:
        first = api.exchange(started["device_code"])
    assert lost.lost == 1
    assert first.status == 200, first.text  # the retry recognised its own first success
    again = api.exchange(started["device_code"])  # the device re-sends (its answer was lost too)
    assert again.status == 200 and again.json()["refresh_token"] == first.json()["refresh_token"]
    assert refresh(api, first.json()["refresh_token"]).status == 200  # one family, and it works


def test_a_resent_exchange_after_the_grace_or_after_a_rotation_is_refused(
    api: Api, account: Seed, clock: Manual
) -> None:
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    token = api.exchange(started["device_code"]).json()["refresh_token"]
    clock.advance(GRACE)
    assert_product_error(api.exchange(started["device_code"]), 401, "invalid_grant")
    started = api.device_code()
    api.approve(started["user_code"], account.user)
    token = api.exchange(started["device_code"]).json()["refresh_token"]
    assert refresh(api, token).status == 200
    assert_product_error(api.exchange(started["device_code"]), 401, "invalid_grant")  # no reset of the family


def test_a_lost_rotation_answer_is_not_reuse(api: Api, account: Seed) -> None:
    token = api.signed_in(account)["refresh_token"]
    with lose_answers("UpdateItem") as lost:
        rotated = refresh(api, token)
    assert lost.lost == 1 and rotated.status == 200, rotated.text
    successor = rotated.json()["refresh_token"]
    assert generation_of(successor) == 2
    assert refresh(api, successor).status == 200  # the session was not revoked


def test_no_setting_makes_a_retry_look_like_reuse() -> None:
    """botocore's retries end before the function does, and the grace outlasts the function: a request
    sent again after its answer was lost (by botocore, or by the client after a 5xx) is recognised."""
    retries = dict(BOTO_CONFIG.retries or {})
    attempts = retries.get("total_max_attempts", retries.get("max_attempts", 0) + 1)  # botocore's spellings
    assert BOTO_CONFIG.read_timeout is not None
    read_timeout = float(BOTO_CONFIG.read_timeout)
    backoff = sum(min(20, 2**i) for i in range(attempts - 1))  # standard mode's largest back-offs
    horizon = attempts * read_timeout + backoff
    template = tpl.load_template()
    timeout = int(template["Globals"]["Function"]["Timeout"])
    grace = template["Parameters"]["RotationGraceSeconds"]
    assert horizon < timeout < settings.MIN_ROTATION_GRACE_SECONDS == int(grace["MinValue"])
    assert int(grace["Default"]) == settings.DEFAULT_ROTATION_GRACE_SECONDS
    routed = [
        r["Properties"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function"
        and any(e.get("Type") == "HttpApi" for e in r.get("Properties", {}).get("Events", {}).values())
    ]  # fmt: skip (the functions behind the API: a stream consumer answers nobody)
    assert routed and all(int(p.get("Timeout", timeout)) <= timeout for p in routed)
    base = {"TABLE_NAME": "tokens", "KEYS_SECRET_ID": "keys"}
    for value in ("0", "5", str(settings.MIN_ROTATION_GRACE_SECONDS - 1)):
        with pytest.raises(RuntimeError, match="ROTATION_GRACE_SECONDS"):
            settings.from_environ({**base, "ROTATION_GRACE_SECONDS": value})
    least = settings.MIN_ROTATION_GRACE_SECONDS
    assert (
        settings.from_environ({**base, "ROTATION_GRACE_SECONDS": str(least)}).rotation_grace_seconds == least
    )


# ---------------------------------------------------------------- 5, 6, 7. the person's decision


def test_the_wrong_code_limit_counts_only_wrong_codes(api: Api, account: Seed) -> None:
    user = account.user
    for _ in range(12):  # right codes, more than the limit: never counted
        started = api.device_code()
        shown = api.call(
            "GET", "/oauth/device/verify", query={"user_code": started["user_code"]}, claims=user
        )
        assert shown.status == 200, shown.text
    for _ in range(10):
        wrong = api.call("GET", "/oauth/device/verify", query={"user_code": "BBBB-BBBB"}, claims=user)
        assert_product_error(wrong, 404, "not_found")
    started = api.device_code()
    limited = api.call("GET", "/oauth/device/verify", query={"user_code": started["user_code"]}, claims=user)
    body = assert_product_error(limited, 429, "rate_limited")  # even the right code: no guessing oracle
    assert int(limited.headers["retry-after"]) > 0 and body["details"] == []
    assert_product_error(api.approve(started["user_code"], user), 429, "rate_limited")


def test_deciding_needs_the_same_standing_as_approving(api: Api, account: Seed) -> None:
    started = api.device_code()
    stranger = account.lonely_user
    seen = api.call("GET", "/oauth/device/verify", query={"user_code": started["user_code"]}, claims=stranger)
    assert_product_error(seen, 403, "access_denied")
    assert "Demo CLI" not in seen.text and "read" not in seen.text
    before = table()
    denied = api.call(
        "POST",
        "/oauth/device/verify",
        body={"user_code": started["user_code"], "decision": "deny"},
        claims=stranger,
    )
    assert_product_error(denied, 403, "access_denied")
    assert table() == before
    assert api.approve(started["user_code"], account.user).status == 200  # still the owner's to decide


@pytest.mark.parametrize("verified", [None, False, "false", "False", "", "0"])
def test_an_unverified_email_is_never_recorded(api: Api, account: Seed, verified: Any) -> None:
    claims = {k: v for k, v in account.user.items() if k != "email_verified"}
    if verified is not None:
        claims["email_verified"] = verified
    started = api.device_code()
    assert api.approve(started["user_code"], claims).status == 200
    body = api.exchange(started["device_code"]).json()
    assert body["user"]["email"] == "" and body["user"]["name"] == "Ada Lovelace"
    item = grant_item(grant_of(body["refresh_token"]))
    assert "ada@example.com" not in json.dumps(item)
    assert "username" not in introspect(api, account, body["refresh_token"])


@pytest.mark.parametrize("verified", [True, "true", "TRUE"])
def test_a_verified_email_is_recorded(api: Api, account: Seed, verified: Any) -> None:
    started = api.device_code()
    assert api.approve(started["user_code"], {**account.user, "email_verified": verified}).status == 200
    assert api.exchange(started["device_code"]).json()["user"]["email"] == "ada@example.com"


def test_a_name_never_falls_back_to_an_unverified_email(api: Api, account: Seed) -> None:
    started = api.device_code()
    claims = {"sub": "user-1", "email": "mallory@example.com", "email_verified": "false"}
    assert api.approve(started["user_code"], claims).status == 200
    body = api.exchange(started["device_code"]).json()
    assert "mallory" not in json.dumps(body)


# ---------------------------------------------------------------- 8. no secret in a URL


def test_the_legacy_get_refuses_a_client_secret_in_the_query(api: Api, account: Seed) -> None:
    started = api.device_code("backend", client_secret=account.confidential_secret)
    api.approve(started["user_code"], account.user)
    before = table()
    query = {
        "grant_type": DEVICE_GRANT,
        "device_code": started["device_code"],
        "client_id": "backend",
        "client_secret": account.confidential_secret,
    }
    result = api.call("GET", "/oauth/token", query=query)
    assert result.status == 400, result.text
    body = result.json()
    assert body["success"] is False and body["errorCode"] == "invalid_request"
    assert "HTTP Basic" in body["errorDetails"][0]
    assert account.confidential_secret not in result.text
    assert table() == before  # refused before anything: the code is still there for a proper request
    del query["client_secret"]
    ok = api.call("GET", "/oauth/token", query=query, headers=basic("backend", account.confidential_secret))
    assert ok.status == 200, ok.text


# ---------------------------------------------------------------- 10. introspection


def test_an_access_token_whose_aud_is_a_list_introspects_cleanly(api: Api, account: Seed) -> None:
    signed = api.signed_in(account)
    claims = jwt.decode(signed["access_token"], options={"verify_signature": False})
    keys = aws.keyset(SECRET)
    listed = jwt.encode(
        {**claims, "aud": [ISSUER, "https://other.example.test"]},
        keys.signing_key,
        algorithm="ES256",
        headers={"kid": keys.signing_kid, "typ": "at+jwt"},
    )
    answer = introspect(api, account, listed)
    assert answer["active"] is True and answer["aud"] == [ISSUER, "https://other.example.test"]


def test_a_client_introspects_only_its_own_tokens_unless_registered_for_it(api: Api, account: Seed) -> None:
    nosy = admin.create_client(
        store(), name="Nosy", client_type="confidential", grant_types=["device_code", "refresh_token"],
        scopes=["read"], client_id="nosy", hmac=hmac_key(),
    )  # fmt: skip
    signed = api.signed_in(account)  # demo-cli's session

    def ask(token: str, client: str, secret: str) -> dict[str, Any]:
        result = api.call("POST", "/oauth/introspect", form={"token": token}, headers=basic(client, secret))
        assert result.status == 200, result.text
        return result.json()  # type: ignore[no-any-return]

    for token in (signed["access_token"], signed["refresh_token"]):
        assert ask(token, "nosy", nosy["client_secret"]) == {"active": False}
        assert ask(token, "backend", account.confidential_secret)["active"] is True  # registered for it
    started = api.device_code("nosy", client_secret=nosy["client_secret"])
    api.approve(started["user_code"], account.user)
    form = {"grant_type": DEVICE_GRANT, "device_code": started["device_code"]}
    own = api.call("POST", "/oauth/token", form=form, headers=basic("nosy", nosy["client_secret"])).json()
    assert ask(own["access_token"], "nosy", nosy["client_secret"])["active"] is True
    assert ask(own["refresh_token"], "nosy", nosy["client_secret"])["active"] is True


def test_the_cookie_route_follows_the_same_rules(api: Api, account: Seed) -> None:
    """Cookie and body are one route: the forged-token refusal and the client rules apply alike."""
    token = api.signed_in(account)["refresh_token"]
    forged = forged_refresh_token(grant_of(token))
    result = api.call(
        "POST", "/auth/refresh", cookies=[f"refresh_token={forged}"], headers={"origin": ORIGIN}
    )
    assert_product_error(result, 401, "invalid_grant")
    ok = api.call("POST", "/auth/refresh", cookies=[f"refresh_token={token}"], headers={"origin": ORIGIN})
    assert ok.status == 200, ok.text
