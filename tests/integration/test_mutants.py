"""Tests that kill mutants `make mutate` (docs/mutation.md) found alive, through the real handlers: each
states a guarantee that a deliberately broken variant of the layer broke without any other test noticing.

DynamoDB returns an item past its expiry until it deletes it (up to two days late), so expiry is set
directly on the stored item here, with boto3, as time passing would leave it."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from authcore import runtime, tokens
from authcore.clock import Manual
from tests.conftest import GRACE, TABLE, Api
from tests.integration.contract import assert_error_in
from tests.support import aws
from tests.support.aws import Seed
from tests.support.forge import grant_of

CODE = "BCDFGHJK"  # every device request below gets this user code: collisions on demand
SHOWN = "BCDF-GHJK"
DEVICE_CODE_TTL = 900  # the default DEVICE_CODE_TTL_SECONDS
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def same_user_code_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Input control: the random user code (1 in 20^8) is made to collide."""
    monkeypatch.setattr(tokens, "new_user_code", lambda: CODE)


def set_expires_at(pk: str, sk: str, expires_at: int) -> None:
    boto3.client("dynamodb", region_name=aws.REGION).update_item(
        TableName=TABLE,
        Key={"pk": {"S": pk}, "sk": {"S": sk}},
        UpdateExpression="SET expires_at = :e",
        ExpressionAttributeValues={":e": {"N": str(expires_at)}},
    )


def grant_of_code(device_code: str) -> str:
    grant_id = tokens.grant_id_of(device_code, tokens.DEVICE_CODE_PREFIX)
    assert grant_id is not None
    return grant_id


def item(pk: str, sk: str) -> dict[str, Any]:
    stored = aws.raw_item(TABLE, pk, sk)
    assert stored is not None
    return stored


def verify(api: Api, account: Seed, user_code: str = SHOWN) -> Any:
    return api.call("GET", "/oauth/device/verify", query={"user_code": user_code}, claims=account.user)


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


# ---------------------------------------------------------------- user codes


def test_a_live_user_code_is_never_taken_over(
    api: Api, account: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """store.create_device_grant: the user code item is written only if the code is free (or held by an
    expired request). Otherwise a new request would take over a code someone is typing in, and the person
    would approve a device that is not theirs."""
    same_user_code_every_time(monkeypatch)
    first = api.device_code()  # demo-cli
    assert first["user_code"] == SHOWN
    second = api.call("POST", "/oauth/device/code", form={"client_id": "old-cli"})
    assert second.status == 503, second.text  # five collisions in a row: no code left to give
    assert second.json()["error"] == "temporarily_unavailable"  # RFC 6749 dialect of dependency_failed
    code_item = item(f"USERCODE#{CODE}", "USERCODE")
    assert code_item["grant_id"]["S"] == grant_of_code(first["device_code"])
    shown = verify(api, account)
    assert shown.status == 200 and shown.json()["client"]["id"] == "demo-cli"
    assert api.approve(SHOWN, account.user).status == 200
    assert api.exchange(first["device_code"]).status == 200


def test_a_collision_is_retried_with_a_new_user_code(
    api: Api, account: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """device.start / store.create_device_grant: a user code held by a live request is a cancelled
    transaction that the request retries with a fresh code (not a 503), writing nothing for the first."""
    first = api.device_code()
    taken = first["user_code"].replace("-", "")
    codes = iter([taken, "CDFGHJKL"])
    monkeypatch.setattr(tokens, "new_user_code", lambda: next(codes))
    second = api.device_code("old-cli")
    assert second["user_code"] == "CDFG-HJKL"
    assert item(f"USERCODE#{taken}", "USERCODE")["grant_id"]["S"] == grant_of_code(first["device_code"])
    assert item("USERCODE#CDFGHJKL", "USERCODE")["grant_id"]["S"] == grant_of_code(second["device_code"])


def test_a_user_code_item_is_collected_when_its_request_expires(api: Api, account: Seed) -> None:
    """The user code item carries the TTL attribute, set to its request's expiry: DynamoDB collects it."""
    started = api.device_code()
    grant = item(f"GRANT#{grant_of_code(started['device_code'])}", "GRANT")
    code = item(f"USERCODE#{started['user_code'].replace('-', '')}", "USERCODE")
    assert code["ttl"] == code["expires_at"] == grant["expires_at"]


@pytest.mark.parametrize("after", [0, 1], ids=["at_expiry", "after_expiry"])
def test_the_user_code_of_an_expired_request_is_given_again(
    api: Api, account: Seed, monkeypatch: pytest.MonkeyPatch, clock: Manual, after: int
) -> None:
    """An expired request's user code item may linger (TTL deletion is lazy): it does not hold the code.
    A request expires at its expires_at, the same second the exchange starts answering expired_token."""
    same_user_code_every_time(monkeypatch)
    first = api.device_code()
    clock.advance(DEVICE_CODE_TTL + after)
    second = api.device_code("old-cli")
    assert second["user_code"] == SHOWN
    assert item(f"USERCODE#{CODE}", "USERCODE")["grant_id"]["S"] == grant_of_code(second["device_code"])
    assert verify(api, account).json()["client"]["id"] == "old-cli"
    assert_error_in(api.exchange(first["device_code"]), "product", status=400, error="expired_token")


def test_an_expired_user_code_item_is_refused_while_its_grant_is_live(
    api: Api, account: Seed, clock: Manual
) -> None:
    """store.grant_id_for_user_code checks the code item's own expiry (the one DynamoDB may still return),
    not only the grant's: at its expires_at the code leads nowhere, for reading and for deciding."""
    started = api.device_code()
    assert verify(api, account, started["user_code"]).status == 200
    code = started["user_code"].replace("-", "")
    set_expires_at(f"USERCODE#{code}", "USERCODE", clock())  # the grant item keeps its own expiry
    assert_error_in(verify(api, account, started["user_code"]), "product", status=404, error="not_found")
    refused = api.approve(started["user_code"], account.user)
    assert_error_in(refused, "product", status=404, error="not_found")
    assert item(f"GRANT#{grant_of_code(started['device_code'])}", "GRANT")["status"]["S"] == "pending"


# ---------------------------------------------------------------- the decision


@contextlib.contextmanager
def expire_before_the_decision_is_written(at: int) -> Iterator[list[str]]:
    """The grant expires between the decision's read (live) and its conditional write: just before the
    decision's UpdateItem goes, its grant item's expires_at is set to ``at``, out of band. Yields the
    grant ids it did this to."""
    done: list[str] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        if "decided_at" not in params.get("UpdateExpression", ""):
            return
        pk = params["Key"]["pk"]["S"]
        set_expires_at(pk, "GRANT", at)
        done.append(pk.removeprefix("GRANT#"))

    events = runtime.store().client.meta.events
    event = "before-parameter-build.dynamodb.UpdateItem"
    events.register_first(event, hook)
    try:
        yield done
    finally:
        events.unregister(event, hook)


@pytest.mark.parametrize("decision", ["approve", "deny"])
def test_a_decision_is_not_written_once_the_request_has_expired(
    api: Api, account: Seed, clock: Manual, decision: str
) -> None:
    """store.decide's condition holds the expiry too (`expires_at > :now`): a request that expired after
    it was read is refused as expired (404, as an unknown code), and nothing is written."""
    started = api.device_code()
    grant_id = grant_of_code(started["device_code"])
    with expire_before_the_decision_is_written(clock()) as expired:
        result = api.call(
            "POST",
            "/oauth/device/verify",
            body={"user_code": started["user_code"], "decision": decision},
            claims=account.user,
        )
    assert expired == [grant_id]
    assert_error_in(result, "product", status=404, error="not_found")
    stored = item(f"GRANT#{grant_id}", "GRANT")
    assert stored["status"]["S"] == "pending" and "decided_at" not in stored and "user_id" not in stored


def test_a_decision_written_just_before_expiry_stands(api: Api, account: Seed, clock: Manual) -> None:
    """The other side of the boundary: one second before expiry, the decision is written."""
    started = api.device_code()
    with expire_before_the_decision_is_written(clock() + 1) as expired:
        assert api.approve(started["user_code"], account.user).json() == {"status": "approved"}
    assert expired == [grant_of_code(started["device_code"])]
    assert api.exchange(started["device_code"]).status == 200


# ---------------------------------------------------------------- revocation


@pytest.mark.parametrize("other", ["confidential", "public"])
def test_revoking_another_clients_access_token_ends_nothing(api: Api, account: Seed, other: str) -> None:
    """sessions.revoke: an access token presented by a client it was not issued to is ignored (RFC 7009
    §2.1, 200 all the same); its family lives on."""
    signed = api.signed_in(account)  # demo-cli's
    if other == "confidential":
        result = api.call(
            "POST",
            "/oauth/revoke",
            form={"token": signed["access_token"]},
            headers=basic("backend", account.confidential_secret),
        )
    else:
        result = api.call(
            "POST", "/oauth/revoke", form={"token": signed["access_token"], "client_id": "old-cli"}
        )
    assert result.status == 200, result.text
    assert "revoked_at" not in item(f"GRANT#{grant_of(signed['refresh_token'])}", "GRANT")
    refreshed = api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]})
    assert refreshed.status == 200, refreshed.text
    # the owner's own revocation of the same token does end it (the test can tell the two apart)
    owner = api.call("POST", "/oauth/revoke", form={"token": signed["access_token"], "client_id": "demo-cli"})
    assert owner.status == 200
    assert "revoked_at" in item(f"GRANT#{grant_of(signed['refresh_token'])}", "GRANT")


# ---------------------------------------------------------------- polling


@contextlib.contextmanager
def before_update(expression: str, side_write: dict[str, int]) -> Iterator[list[str]]:
    """Another request's write lands between this request's read and its conditional UpdateItem (the one
    whose UpdateExpression is ``expression``): the grant item gets ``side_write``, out of band, once."""
    done: list[str] = []

    def hook(params: dict[str, Any], **_: Any) -> None:
        if params.get("UpdateExpression") != expression or done:
            return
        pk = params["Key"]["pk"]["S"]
        names = {f"#{k}": k for k in side_write}
        boto3.client("dynamodb", region_name=aws.REGION).update_item(
            TableName=TABLE,
            Key={"pk": {"S": pk}, "sk": {"S": "GRANT"}},
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in side_write),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues={f":{k}": {"N": str(v)} for k, v in side_write.items()},
        )
        done.append(pk.removeprefix("GRANT#"))

    events = runtime.store().client.meta.events
    event = "before-parameter-build.dynamodb.UpdateItem"
    events.register_first(event, hook)
    try:
        yield done
    finally:
        events.unregister(event, hook)


def poll(api: Api, device_code: str) -> Any:
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": "demo-cli"}
    return api.call("POST", "/oauth/token", form=form)


def test_of_two_polls_at_once_one_is_slowed_down(api: Api, account: Seed, clock: Manual) -> None:
    """store.record_poll: a poll is accepted only if no other poll was accepted since it read the grant.
    Two polls at once (the other one, a second earlier, writes first) are polling too fast: this one is
    slow_down. (At the very same second the other write is taken for this poll's own, retried.)"""
    started = api.device_code()
    with before_update("SET last_poll_at = :now", {"last_poll_at": clock() - 1}) as raced:
        result = poll(api, started["device_code"])
    assert raced == [grant_of_code(started["device_code"])]
    body = assert_error_in(result, "oauth", status=400, error="slow_down")
    assert body["interval"] == 10
    stored = item(f"GRANT#{raced[0]}", "GRANT")
    assert stored["interval"]["N"] == "10" and stored["last_poll_at"]["N"] == str(clock() - 1)


def test_two_slow_downs_at_once_grow_the_interval_once(api: Api, account: Seed, clock: Manual) -> None:
    """store.slow_down: the interval grows by one step from the value read; when another too-fast poll
    grew it meanwhile, this one answers the interval now in force, and does not grow it again."""
    started = api.device_code()
    assert_error_in(poll(api, started["device_code"]), "oauth", status=400, error="authorization_pending")
    with before_update("SET #i = :new", {"interval": 10}) as raced:
        result = poll(api, started["device_code"])  # too fast: slow_down, racing another one
    assert raced == [grant_of_code(started["device_code"])]
    body = assert_error_in(result, "oauth", status=400, error="slow_down")
    assert body["interval"] == 10
    assert item(f"GRANT#{raced[0]}", "GRANT")["interval"]["N"] == "10"
    # a slow_down that lost to a larger interval answers that one, not its own
    with before_update("SET #i = :new", {"interval": 30}):
        again = poll(api, started["device_code"])
    assert assert_error_in(again, "oauth", status=400, error="slow_down")["interval"] == 30


# ---------------------------------------------------------------- refresh with a scope


def refresh_with_scope(api: Api, refresh_token: str, scope: str) -> Any:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "demo-cli",
        "scope": scope,
    }
    return api.call("POST", "/oauth/token", form=form)


def test_a_refresh_asking_only_for_scopes_never_granted_is_invalid_scope(api: Api, account: Seed) -> None:
    """sessions._narrowing_refused: any asked scope outside the grant refuses the refresh as invalid_scope
    (RFC 6749 §6), also when none of the asked scopes was granted; the token stays good."""
    signed = api.signed_in(account)  # read write
    assert_error_in(
        refresh_with_scope(api, signed["refresh_token"], "admin"), "oauth", status=400, error="invalid_scope"
    )
    assert refresh_with_scope(api, signed["refresh_token"], "read").status == 200


def remove_scope_list(grant_id: str) -> None:
    """The grant as 0.1.0 wrote it (no scope_list): a device request started before the upgrade and
    exchanged after it gets a refresh family on such an item."""
    boto3.client("dynamodb", region_name=aws.REGION).update_item(
        TableName=TABLE,
        Key={"pk": {"S": f"GRANT#{grant_id}"}, "sk": {"S": "GRANT"}},
        UpdateExpression="REMOVE scope_list",
    )


def test_a_grant_without_a_scope_list_refuses_scopes_it_never_had(api: Api, account: Seed) -> None:
    """The fallback to the scope string: a family on a 0.1.0 item is refused a scope it was not granted
    (invalid_scope, not a 500), and keeps rotating without a scope."""
    signed = api.signed_in(account)
    remove_scope_list(grant_of(signed["refresh_token"]))
    assert_error_in(
        refresh_with_scope(api, signed["refresh_token"], "admin"), "oauth", status=400, error="invalid_scope"
    )
    plain = api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]})
    assert plain.status == 200, plain.text


def test_a_grant_without_a_scope_list_can_still_narrow(api: Api, account: Seed) -> None:
    """A refresh that narrows to a granted scope on a 0.1.0 item (no scope_list) is granted: its scope string
    says what was granted. (Found as a survivor of the fallback's mutants; answered invalid_grant 'not
    recognised' until sessions.refresh learned to pin the scope string instead.)"""
    signed = api.signed_in(account)
    remove_scope_list(grant_of(signed["refresh_token"]))
    narrowed = refresh_with_scope(api, signed["refresh_token"], "read")
    assert narrowed.status == 200, narrowed.text
    assert narrowed.json()["scope"] == "read"


# ---------------------------------------------------------------- the client cache


class MonotonicClock:
    """time.monotonic for authcore.clients, moved by the test (an injected clock, not a wait)."""

    def __init__(self) -> None:
        self.value = 1_000.0

    def monotonic(self) -> float:
        return self.value


@pytest.mark.parametrize("ttl", [1, 60])
def test_the_client_cache_serves_a_client_for_its_ttl_and_never_caches_a_miss(
    account: Seed, monkeypatch: pytest.MonkeyPatch, ttl: int
) -> None:
    """clients.ClientRegistry with CLIENT_CACHE_SECONDS > 0 (the tests run with 0): one read per client per
    ttl; a client created after a miss is found at once; a disabled client is seen after the ttl."""
    from authcore import clients
    from local import admin

    clock = MonotonicClock()
    monkeypatch.setattr(clients, "time", clock)
    store = runtime.store()
    registry = clients.ClientRegistry(ttl=ttl)
    with aws.count_dynamodb() as calls:
        found = registry.get(store, "demo-cli")
        assert found is not None and found.client_id == "demo-cli"
        clock.value += ttl - 1
        assert registry.get(store, "demo-cli") == found
        assert calls.calls == ["GetItem"]
        assert registry.get(store, "later-cli") is None
        admin.create_client(
            store, name="Later", client_type="public", grant_types=["device_code"], scopes=["read"],
            client_id="later-cli",
        )  # fmt: skip
        later = registry.get(store, "later-cli")
        assert later is not None and later.client_id == "later-cli"
        store.set_client_disabled("demo-cli", True)
        calls.reset()
        cached = registry.get(store, "demo-cli")
        assert cached is not None and not cached.disabled and calls.calls == []  # within the ttl
        clock.value += 1  # exactly the ttl after the read: read again
        fresh = registry.get(store, "demo-cli")
        assert fresh is not None and fresh.disabled and calls.calls == ["GetItem"]


def test_no_client_cache_with_a_ttl_of_zero(account: Seed) -> None:
    from authcore import clients

    store = runtime.store()
    registry = clients.ClientRegistry(ttl=0)
    with aws.count_dynamodb() as calls:
        registry.get(store, "demo-cli")
        registry.get(store, "demo-cli")
    assert calls.calls == ["GetItem", "GetItem"]


# ---------------------------------------------------------------- introspection


def introspect_as(api: Api, client_id: str, secret: str, token: str) -> dict[str, Any]:
    result = api.call("POST", "/oauth/introspect", form={"token": token}, headers=basic(client_id, secret))
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


def test_introspection_answers_every_field_of_both_tokens(api: Api, account: Seed, clock: Manual) -> None:
    """sessions.introspect, field by field (RFC 7662 §2.2), for a refresh token and an access token."""
    from tests.conftest import ISSUER

    signed = api.signed_in(account)
    grant_id = grant_of(signed["refresh_token"])
    secret = account.confidential_secret
    assert introspect_as(api, "backend", secret, signed["refresh_token"]) == {
        "active": True,
        "scope": "read write",
        "client_id": "demo-cli",
        "username": "ada@example.com",
        "token_type": "refresh_token",
        "exp": clock() + 30 * 86400,
        "iat": clock(),
        "sub": "user-1",
        "iss": ISSUER,
        "sid": grant_id,
        "org_id": "acme",
    }
    claims = introspect_as(api, "backend", secret, signed["access_token"])
    jti = claims.pop("jti")
    assert isinstance(jti, str) and jti
    assert claims == {
        "active": True,
        "scope": "read write",
        "client_id": "demo-cli",
        "token_type": "Bearer",
        "exp": clock() + 3600,
        "iat": clock(),
        "sub": "user-1",
        "aud": claims["aud"],
        "iss": ISSUER,
        "sid": grant_id,
        "org_id": "acme",
    }
    assert claims["aud"]
    # a rotation moves the refresh token's iat to the rotation
    clock.advance(7)
    successor = api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]}).json()
    assert introspect_as(api, "backend", secret, successor["refresh_token"])["iat"] == clock()


def test_only_an_introspection_client_sees_other_clients_tokens(api: Api, account: Seed) -> None:
    """RFC 7662 §4: a confidential client not registered for introspection sees its own tokens only."""
    from local import admin

    created = admin.create_client(
        runtime.store(), name="Worker", client_type="confidential", grant_types=["device_code", "refresh_token"],
        scopes=["read"], client_id="worker", hmac=aws.keyset("token-service/keys").hmac,
    )  # fmt: skip
    signed = api.signed_in(account)  # demo-cli's
    for token in (signed["refresh_token"], signed["access_token"]):
        assert introspect_as(api, "worker", created["client_secret"], token) == {"active": False}
        assert introspect_as(api, "backend", account.confidential_secret, token)["active"] is True


# ---------------------------------------------------------------- the product API's refresh: the token names its client


def confidential_session(api: Api, account: Seed) -> dict[str, Any]:
    started = api.device_code("backend", client_secret=account.confidential_secret)
    assert api.approve(started["user_code"], account.user).status == 200
    form = {"grant_type": DEVICE_GRANT, "device_code": started["device_code"]}
    result = api.call(
        "POST", "/oauth/token", form=form, headers=basic("backend", account.confidential_secret)
    )
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


def test_a_confidential_session_refreshes_on_the_product_api_only_with_its_secret(
    api: Api, account: Seed
) -> None:
    """clients.admit_token_owner: /auth/refresh names no client, the token does; a confidential client's
    token needs HTTP Basic (401 invalid_client without it), and a wrong secret is refused."""
    session = confidential_session(api, account)
    body = {"refresh_token": session["refresh_token"]}
    assert_error_in(
        api.call("POST", "/auth/refresh", body=body), "product", status=401, error="invalid_client"
    )
    wrong = api.call("POST", "/auth/refresh", body=body, headers=basic("backend", "cs_wrong"))
    assert_error_in(wrong, "product", status=401, error="invalid_client")
    good = api.call("POST", "/auth/refresh", body=body, headers=basic("backend", account.confidential_secret))
    assert good.status == 200, good.text


@pytest.mark.parametrize("gone", ["disabled", "deleted"])
def test_a_session_of_a_client_no_longer_registered_cannot_refresh(
    api: Api, account: Seed, gone: str
) -> None:
    """clients.admit_token_owner: the token's own client must still be registered and enabled."""
    signed = api.signed_in(account)  # demo-cli
    if gone == "disabled":
        runtime.store().set_client_disabled("demo-cli", True)
    else:
        boto3.client("dynamodb", region_name=aws.REGION).delete_item(
            TableName=TABLE, Key={"pk": {"S": "CLIENT#demo-cli"}, "sk": {"S": "CLIENT"}}
        )
    refused = api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]})
    assert_error_in(refused, "product", status=401, error="invalid_grant")


def test_a_client_that_lost_the_refresh_grant_cannot_refresh_its_old_tokens(api: Api, account: Seed) -> None:
    """clients.admit_token_owner applies the token endpoint's rules, the grant type included: a client
    whose registration no longer allows refresh_token cannot use the refresh tokens it was given before."""
    signed = api.signed_in(account)
    boto3.client("dynamodb", region_name=aws.REGION).update_item(
        TableName=TABLE,
        Key={"pk": {"S": "CLIENT#demo-cli"}, "sk": {"S": "CLIENT"}},
        UpdateExpression="SET grant_types = :g",
        ExpressionAttributeValues={":g": {"L": [{"S": "urn:ietf:params:oauth:grant-type:device_code"}]}},
    )
    refused = api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]})
    assert_error_in(refused, "product", status=403, error="access_denied")


def logout(api: Api, refresh_token: str, **kwargs: Any) -> Any:
    return api.call("POST", "/auth/logout", body={"refresh_token": refresh_token}, **kwargs)


def test_an_outdated_client_can_still_sign_out(api: Api, account: Seed) -> None:
    """sessions.logout admits the token's client without its version check: a client too old to refresh
    (426) may still end its session."""
    started = api.device_code("old-cli")
    assert api.approve(started["user_code"], account.user).status == 200
    signed = api.exchange(started["device_code"], "old-cli").json()
    old = {"x-client-version": "1.0.0"}
    outdated = api.call("POST", "/auth/refresh", body={"refresh_token": signed["refresh_token"]}, headers=old)
    assert_error_in(outdated, "product", status=426, error="upgrade_required")
    assert logout(api, signed["refresh_token"], headers=old).status == 200
    assert "revoked_at" in item(f"GRANT#{grant_of(signed['refresh_token'])}", "GRANT")


def test_another_client_cannot_sign_a_session_out(api: Api, account: Seed) -> None:
    """clients.admit_token_owner: a caller that names a client (HTTP Basic, here a public client with an
    empty password) must be the token's client; the session of another one is not ended."""
    signed = api.signed_in(account)  # demo-cli's
    other = logout(api, signed["refresh_token"], headers=basic("old-cli", ""))
    assert_error_in(other, "product", status=401, error="invalid_client")
    assert "revoked_at" not in item(f"GRANT#{grant_of(signed['refresh_token'])}", "GRANT")
    assert logout(api, signed["refresh_token"], headers=basic("demo-cli", "")).status == 200
    assert "revoked_at" in item(f"GRANT#{grant_of(signed['refresh_token'])}", "GRANT")


# ---------------------------------------------------------------- client authentication's challenge


@pytest.mark.parametrize(
    ("user", "password"),
    [
        pytest.param("", "x", id="no_client_id"),
        pytest.param("bad\tid", "x", id="not_vschar"),
        pytest.param("nobody", "x", id="unknown"),
        pytest.param("backend", "", id="confidential_without_secret"),
        pytest.param("demo-cli", "x", id="public_with_secret"),
    ],
)
def test_every_failed_basic_authentication_gets_a_basic_challenge(
    api: Api, account: Seed, user: str, password: str
) -> None:
    """clients.authenticate: RFC 6749 §5.2, a client that tried HTTP Basic and failed gets 401 with
    WWW-Authenticate, whichever check refused it; the same failure without Basic gets no challenge."""
    result = api.call("POST", "/oauth/device/code", form={}, headers=basic(user, password))
    assert_error_in(result, "oauth", status=401, error="invalid_client")
    assert result.headers["www-authenticate"].startswith("Basic ")
    form = {"client_id": user} | ({"client_secret": password} if password else {})
    plain = api.call("POST", "/oauth/device/code", form=form)
    if plain.status == 401:
        assert "www-authenticate" not in plain.headers


def test_a_confidential_session_signs_out_with_its_own_secret(api: Api, account: Seed) -> None:
    """sessions.logout admits the token's client by its rules: a confidential client's session ends with
    its HTTP Basic credentials, and not without them."""
    session = confidential_session(api, account)
    grant = f"GRANT#{grant_of(session['refresh_token'])}"
    bare = logout(api, session["refresh_token"])
    assert_error_in(bare, "product", status=401, error="invalid_client")
    assert "revoked_at" not in item(grant, "GRANT")
    signed_out = logout(api, session["refresh_token"], headers=basic("backend", account.confidential_secret))
    assert signed_out.status == 200, signed_out.text
    assert "revoked_at" in item(grant, "GRANT")


def test_a_poll_whose_request_vanished_meanwhile_is_still_answered(api: Api, account: Seed) -> None:
    """store.slow_down: when the grant item is gone by the time the interval is grown (DynamoDB's TTL
    deletion), the too-fast poll is answered slow_down with the grown interval, not a 500."""
    started = api.device_code()
    assert_error_in(poll(api, started["device_code"]), "oauth", status=400, error="authorization_pending")
    gone: list[str] = []

    def delete_grant(params: dict[str, Any], **_: Any) -> None:
        if params.get("UpdateExpression") == "SET #i = :new" and not gone:
            boto3.client("dynamodb", region_name=aws.REGION).delete_item(TableName=TABLE, Key=params["Key"])
            gone.append(params["Key"]["pk"]["S"])

    events = runtime.store().client.meta.events
    events.register_first("before-parameter-build.dynamodb.UpdateItem", delete_grant)
    try:
        result = poll(api, started["device_code"])
    finally:
        events.unregister("before-parameter-build.dynamodb.UpdateItem", delete_grant)
    assert gone
    assert assert_error_in(result, "oauth", status=400, error="slow_down")["interval"] == 10


# ---------------------------------------------------------------- revocation, continued


def test_revoking_an_access_token_whose_grant_is_gone_is_200(api: Api, account: Seed) -> None:
    """sessions.revoke: an authentic access token whose grant item no longer exists (collected by TTL)
    is ignored like any unknown token (RFC 7009 §2.2), not a 500."""
    signed = api.signed_in(account)
    grant_id = grant_of(signed["refresh_token"])
    boto3.client("dynamodb", region_name=aws.REGION).delete_item(
        TableName=TABLE, Key={"pk": {"S": f"GRANT#{grant_id}"}, "sk": {"S": "GRANT"}}
    )
    form = {"token": signed["access_token"], "client_id": "demo-cli"}
    assert api.call("POST", "/oauth/revoke", form=form).status == 200


def test_a_revoked_family_records_why_it_ended(api: Api, account: Seed, clock: Manual) -> None:
    """The grant item keeps who ended its family (revoke_reason): "logout" by the client (RFC 7009 or
    /auth/logout), "reuse" when a rotated-out token came back after the grace."""
    by_access = api.signed_in(account)
    api.call("POST", "/oauth/revoke", form={"token": by_access["access_token"], "client_id": "demo-cli"})
    assert item(f"GRANT#{grant_of(by_access['refresh_token'])}", "GRANT")["revoke_reason"] == {"S": "logout"}
    by_refresh = api.signed_in(account)
    api.call("POST", "/oauth/revoke", form={"token": by_refresh["refresh_token"], "client_id": "demo-cli"})
    assert item(f"GRANT#{grant_of(by_refresh['refresh_token'])}", "GRANT")["revoke_reason"] == {"S": "logout"}
    reused = api.signed_in(account)
    assert api.call("POST", "/auth/refresh", body={"refresh_token": reused["refresh_token"]}).status == 200
    clock.advance(GRACE + 1)  # past the rotation grace
    again = api.call("POST", "/auth/refresh", body={"refresh_token": reused["refresh_token"]})
    assert_error_in(again, "product", status=401, error="invalid_grant")
    assert item(f"GRANT#{grant_of(reused['refresh_token'])}", "GRANT")["revoke_reason"] == {"S": "reuse"}
