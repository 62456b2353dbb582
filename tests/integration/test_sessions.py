"""Issue #9 §2 and §3: sessions a person can see and end (and an operator can end for a user, an
organization or a client); the per-address limit on device authorization; per-client lifetimes and the
idle timeout. Every handler and the layer run; moto stands in for DynamoDB."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from authcore import clock as service_clock
from authcore import runtime, store
from authcore.clock import Manual
from authcore.issuance import iso
from local import admin
from tests.conftest import IDP, ORIGIN, TABLE, Api, LogCapture
from tests.integration.contract import assert_error_in
from tests.integration.test_token_lifecycle import introspect
from tests.support.aws import Seed, count_dynamodb, inject, lose_answers, raw_item
from tests.support.forge import grant_of

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def signed_in_now(user: dict[str, str]) -> dict[str, str]:
    """The person's ID token, issued at the service's now (the tests move that clock, not the wall's)."""
    return {"authorization": IDP.bearer(user, now=service_clock.now())}


def sessions_of(api: Api, user: dict[str, str], cursor: str | None = None) -> dict[str, Any]:
    result = api.call(
        "GET", "/auth/sessions", headers=signed_in_now(user), query={"cursor": cursor} if cursor else None
    )
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


def refresh(api: Api, token: str) -> Any:
    return api.call("POST", "/auth/refresh", body={"refresh_token": token})


def sign_in(api: Api, user: dict[str, str], *, ip: str = "198.51.100.4", org: str | None = None,
            client_id: str = "demo-cli", **headers: str) -> dict[str, Any]:  # fmt: skip
    started = api.call(
        "POST", "/oauth/device/code", form={"client_id": client_id}, source_ip=ip, headers=headers
    )
    assert started.status == 200, started.text
    code = started.json()
    body = {"organization_id": org} if org else {}
    assert api.approve(code["user_code"], user, **body).status == 200
    result = api.exchange(code["device_code"], client_id)
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


def audits(logs: LogCapture, event: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in logs.lines if line.startswith("{")]
    return [r for r in records if r.get("message") == "audit" and r.get("audit_event") == event]


# ---------------------------------------------------------------- listing


def test_a_person_sees_their_live_sessions_newest_first(api: Api, account: Seed, clock: Manual) -> None:
    first = sign_in(api, account.user, **{"user-agent": "demo-cli/1.0 (Linux)", "x-client-version": "1.0.0"})
    clock.advance(60)
    second = sign_in(api, account.user, ip="2001:db8::7")
    clock.advance(60)
    assert refresh(api, first["refresh_token"]).status == 200  # used: last_used_at moves
    sign_in(api, account.multi_user, org="globex")  # someone else's

    listed = sessions_of(api, account.user)
    assert listed["next"] is None
    ids = [s["id"] for s in listed["sessions"]]
    assert ids == [grant_of(second["refresh_token"]), grant_of(first["refresh_token"])]
    newest, oldest = listed["sessions"]
    assert newest["client"] == {"id": "demo-cli", "name": "Demo CLI"}
    assert newest["organization"] == {"id": "acme", "name": "Acme Corp"}
    assert newest["scope"] == "read write"
    assert newest["device"]["ip"] == "2001:db8::7"
    assert oldest["device"] == {
        "ip": "198.51.100.4",
        "user_agent": "demo-cli/1.0 (Linux)",
        "client_version": "1.0.0",
        "country": None,
        "requested_at": oldest["created_at"],
    }
    assert oldest["last_used_at"] > oldest["created_at"]
    assert newest["last_used_at"] == newest["created_at"]
    assert oldest["expires_at"] > oldest["last_used_at"]


def test_ended_and_expired_sessions_are_not_listed(api: Api, account: Seed, clock: Manual) -> None:
    ended = sign_in(api, account.user)
    assert api.call("POST", "/auth/logout", body={"refresh_token": ended["refresh_token"]}).status == 200
    assert sessions_of(api, account.user)["sessions"] == []
    sign_in(api, account.user)
    clock.advance(30 * 86400 + 1)  # past the family's lifetime; DynamoDB has not collected it
    assert sessions_of(api, account.user)["sessions"] == []


def test_the_list_pages_with_a_cursor(
    api: Api, account: Seed, clock: Manual, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "SESSIONS_PAGE", 2)
    made = []
    for _ in range(5):
        made.append(grant_of(sign_in(api, account.user)["refresh_token"]))
        clock.advance(1)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = sessions_of(api, account.user, cursor)
        pages += 1
        seen += [s["id"] for s in page["sessions"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == list(reversed(made)) and pages == 3


def test_a_listing_costs_one_query_and_one_batch_read(api: Api, account: Seed) -> None:
    for _ in range(3):
        sign_in(api, account.user)
    with count_dynamodb() as calls:
        assert len(sessions_of(api, account.user)["sessions"]) == 3
    assert [c for c in calls.calls if c != "GetItem"] == ["Query", "BatchGetItem"]  # GetItem: client names


@pytest.mark.parametrize(
    "cursor",
    ["x", "!!!!", base64.urlsafe_b64encode(b"12:notahexid").decode(), "A" * 81,
     base64.urlsafe_b64encode(b"-1:" + b"a" * 32).decode()],
)  # fmt: skip
def test_a_bad_cursor_is_a_clear_400(api: Api, account: Seed, cursor: str) -> None:
    result = api.call("GET", "/auth/sessions", claims=account.user, query={"cursor": cursor})
    if len(cursor) > 80:
        assert_error_in(result, "product", status=422, error="validation_error")
    else:
        assert_error_in(result, "product", status=400, error="invalid_request")
        assert result.json()["details"][0]["loc"] == ["query", "cursor"]


def test_a_cursor_cannot_reach_into_someone_elses_list(api: Api, account: Seed) -> None:
    """The cursor names a position; the index key is always the signed-in person's own."""
    theirs = grant_of(sign_in(api, account.multi_user, org="globex")["refresh_token"])
    item = raw_item(TABLE, f"GRANT#{theirs}", "GRANT")
    assert item is not None
    position = base64.urlsafe_b64encode(f"{int(item['session_at']['N']) + 1}:{theirs}".encode()).decode()
    page = sessions_of(api, account.user, position.rstrip("="))
    assert page["sessions"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/auth/sessions"),
        ("DELETE", "/auth/sessions/" + "a" * 32),
        ("POST", "/auth/sessions/revoke-all"),
    ],
)
def test_the_session_routes_need_a_signed_in_person(api: Api, account: Seed, method: str, path: str) -> None:
    assert_error_in(api.call(method, path), "product", status=401, error="unauthorized")
    bad = api.call(method, path, headers={"authorization": "Bearer not.a.token"})
    assert_error_in(bad, "product", status=401, error="unauthorized")


# ---------------------------------------------------------------- ending one, ending all


def test_a_person_ends_one_session_and_it_is_refused_everywhere_at_once(
    api: Api, account: Seed, captured_logs: LogCapture
) -> None:
    ending = sign_in(api, account.user)
    kept = sign_in(api, account.user)
    session = grant_of(ending["refresh_token"])
    result = api.call("DELETE", f"/auth/sessions/{session}", claims=account.user)
    assert result.status == 200 and result.json() == {"status": "revoked"}, result.text

    assert_error_in(refresh(api, ending["refresh_token"]), "product", status=401, error="invalid_grant")
    oauth = api.call(
        "POST",
        "/oauth/token",
        form={
            "grant_type": "refresh_token",
            "refresh_token": ending["refresh_token"],
            "client_id": "demo-cli",
        },
    )
    assert_error_in(oauth, "oauth", status=400, error="invalid_grant")
    legacy = api.call(
        "GET",
        "/oauth/token",
        query={
            "grant_type": "refresh_token",
            "refresh_token": ending["refresh_token"],
            "client_id": "demo-cli",
        },
    )
    assert legacy.status == 400 and legacy.json()["success"] is False, legacy.text
    assert introspect(api, account, ending["access_token"]) == {"active": False}
    assert introspect(api, account, ending["refresh_token"]) == {"active": False}
    assert refresh(api, kept["refresh_token"]).status == 200  # the other session lives on
    assert [s["id"] for s in sessions_of(api, account.user)["sessions"]] == [grant_of(kept["refresh_token"])]

    (line,) = audits(captured_logs, "session_revoked")
    assert line["by"] == "user" and line["grant_id"] == session and line["user_id"] == "user-1"
    item = raw_item(TABLE, f"GRANT#{session}", "GRANT")
    assert item is not None and item["revoke_reason"] == {"S": "user"}
    assert "session_user" not in item  # left the index


def test_ending_an_ended_session_again_is_the_same_answer(api: Api, account: Seed) -> None:
    """A retry whose answer was lost, or a second tab: the same 200, and no second audit."""
    session = grant_of(sign_in(api, account.user)["refresh_token"])
    with lose_answers("UpdateItem"):
        first = api.call("DELETE", f"/auth/sessions/{session}", claims=account.user)
    assert first.status == 200, first.text
    again = api.call("DELETE", f"/auth/sessions/{session}", claims=account.user)
    assert again.status == 200, again.text


@pytest.mark.parametrize("whose", ["someone_else", "unknown", "malformed", "pending"])
def test_someone_elses_or_an_unknown_session_is_not_found_and_nothing_changes(
    api: Api, account: Seed, whose: str
) -> None:
    theirs = sign_in(api, account.multi_user, org="globex")
    pending = api.device_code()
    target = {
        "someone_else": grant_of(theirs["refresh_token"]),
        "unknown": "0" * 32,
        "malformed": "not-a-session",
        "pending": pending["device_code"].split("_")[1],
    }[whose]
    before = raw_item(TABLE, f"GRANT#{target}", "GRANT")
    result = api.call("DELETE", f"/auth/sessions/{target}", claims=account.user)
    assert_error_in(result, "product", status=404, error="not_found")
    assert raw_item(TABLE, f"GRANT#{target}", "GRANT") == before
    assert refresh(api, theirs["refresh_token"]).status == 200


def test_sign_out_everywhere_ends_every_live_session_of_the_person_only(
    api: Api, account: Seed, captured_logs: LogCapture
) -> None:
    mine = [sign_in(api, account.user) for _ in range(3)]
    api.call("POST", "/auth/logout", body={"refresh_token": mine[0]["refresh_token"]})  # already ended
    theirs = sign_in(api, account.multi_user, org="acme")
    captured_logs.lines.clear()
    result = api.call("POST", "/auth/sessions/revoke-all", claims=account.user)
    assert result.status == 200 and result.json() == {"status": "revoked", "count": 2}, result.text
    for signed in mine:
        assert_error_in(refresh(api, signed["refresh_token"]), "product", status=401, error="invalid_grant")
    assert refresh(api, theirs["refresh_token"]).status == 200
    assert sessions_of(api, account.user)["sessions"] == []
    assert {r["by"] for r in audits(captured_logs, "session_revoked")} == {"user"}
    assert len(audits(captured_logs, "session_revoked")) == 2
    again = api.call("POST", "/auth/sessions/revoke-all", claims=account.user)
    assert again.json() == {"status": "revoked", "count": 0}


def test_the_hot_paths_keep_their_budget(api: Api, account: Seed) -> None:
    """Becoming a session (the indexes' keys) and being used (last_used_at, the idle deadline) are
    written by the exchange and the rotation themselves: one call each."""
    started = api.device_code()
    assert api.approve(started["user_code"], account.user).status == 200
    with count_dynamodb() as calls:
        signed = api.exchange(started["device_code"]).json()
    assert calls.calls == ["GetItem", "UpdateItem"] or calls.calls == ["UpdateItem"]
    with count_dynamodb() as calls:
        assert refresh(api, signed["refresh_token"]).status == 200
    assert [c for c in calls.calls if c != "GetItem"] == ["UpdateItem"]


# ---------------------------------------------------------------- the operator


def run_admin(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    assert admin.main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_the_operator_lists_and_ends_a_users_sessions(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str], captured_logs: LogCapture
) -> None:
    signed = [sign_in(api, account.user) for _ in range(2)]
    listed = run_admin(capsys, "sessions", "list", "--user", "user-1")
    assert {s["id"] for s in listed} == {grant_of(s["refresh_token"]) for s in signed}
    assert all("digest" not in key for s in listed for key in s)
    ended = run_admin(capsys, "sessions", "revoke", "--user", "user-1")
    assert ended["revoked"] == 2 and {s["id"] for s in ended["sessions"]} == {s["id"] for s in listed}
    for one in signed:
        assert_error_in(refresh(api, one["refresh_token"]), "product", status=401, error="invalid_grant")
    assert {r["by"] for r in audits(captured_logs, "session_revoked")} == {"admin"}


def test_offboarding_an_organization_ends_only_its_sessions(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    in_globex = sign_in(api, account.multi_user, org="globex")
    in_acme = sign_in(api, account.multi_user, org="acme")
    other = sign_in(api, account.user)
    ended = run_admin(capsys, "sessions", "revoke", "--org", "globex")
    assert [s["id"] for s in ended["sessions"]] == [grant_of(in_globex["refresh_token"])]
    assert_error_in(refresh(api, in_globex["refresh_token"]), "product", status=401, error="invalid_grant")
    assert refresh(api, in_acme["refresh_token"]).status == 200
    assert refresh(api, other["refresh_token"]).status == 200


def test_ending_a_clients_sessions(api: Api, account: Seed, capsys: pytest.CaptureFixture[str]) -> None:
    cli = sign_in(api, account.user)
    started = api.call(
        "POST",
        "/oauth/device/code",
        form={"client_id": "backend", "client_secret": account.confidential_secret},
    ).json()
    assert api.approve(started["user_code"], account.user).status == 200
    backend = api.call(
        "POST",
        "/oauth/token",
        form={"grant_type": DEVICE, "device_code": started["device_code"], "client_id": "backend",
              "client_secret": account.confidential_secret},
    ).json()  # fmt: skip
    ended = run_admin(capsys, "sessions", "revoke", "--client", "demo-cli")
    assert [s["id"] for s in ended["sessions"]] == [grant_of(cli["refresh_token"])]
    assert introspect(api, account, backend["access_token"])["active"] is True
    assert introspect(api, account, cli["access_token"]) == {"active": False}


# ---------------------------------------------------------------- the per-address limit


@pytest.fixture
def limited(monkeypatch: pytest.MonkeyPatch, account: Seed) -> None:
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_PER_IP", "3")
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_WINDOW_SECONDS", "600")
    runtime.reset()


def ask(api: Api, ip: str, client_id: str = "demo-cli") -> Any:
    return api.call("POST", "/oauth/device/code", form={"client_id": client_id}, source_ip=ip)


def grants_in_table() -> int:
    import boto3

    ddb = boto3.client("dynamodb", region_name="us-east-1")
    items = ddb.scan(TableName=TABLE, FilterExpression="begins_with(pk, :g)",
                     ExpressionAttributeValues={":g": {"S": "GRANT#"}})["Items"]  # fmt: skip
    return len(items)


def test_one_address_over_its_limit_gets_429_and_another_is_unaffected(
    api: Api, limited: None, clock: Manual
) -> None:
    clock.value = 1_800_000_000.0  # the start of a window
    for _ in range(3):
        assert ask(api, "203.0.113.9").status == 200
    before = grants_in_table()
    over = ask(api, "203.0.113.9")
    assert_error_in(over, "oauth", status=429, error="temporarily_unavailable")
    assert over.headers["retry-after"] == "600"
    assert grants_in_table() == before  # a refused request writes nothing
    assert ask(api, "203.0.113.10").status == 200  # the next address
    clock.advance(600)  # the next window
    assert ask(api, "203.0.113.9").status == 200


def test_a_busy_network_does_not_hold_up_another_clients_polling(
    api: Api, account: Seed, limited: None
) -> None:
    """The limit is on starting device requests only: polling and refreshing are not counted."""
    signed = sign_in(api, account.user, ip="203.0.113.9")
    for _ in range(2):
        assert ask(api, "203.0.113.9").status == 200
    assert_error_in(ask(api, "203.0.113.9"), "oauth", status=429, error="temporarily_unavailable")
    assert refresh(api, signed["refresh_token"]).status == 200


def test_an_ipv6_host_counts_as_its_slash_64(api: Api, limited: None) -> None:
    for suffix in ("1", "2", "ffff:1"):
        assert ask(api, f"2001:db8:0:1::{suffix}").status == 200
    assert_error_in(ask(api, "2001:db8:0:1::beef"), "oauth", status=429, error="temporarily_unavailable")
    assert ask(api, "2001:db8:0:2::1").status == 200  # another /64


def test_a_busy_address_is_spread_over_shards_and_still_limited(
    api: Api, account: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A NAT address's counter on 4 shards of 2 each: the ninth request must meet the limit (pigeonhole),
    no shard takes more than its share, and another address goes on."""
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_PER_IP", "8")
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_ADDRESS_SHARDS", "4")
    runtime.reset()
    answers = [ask(api, "203.0.113.50") for _ in range(9)]
    assert any(a.status == 429 for a in answers) and sum(a.status == 200 for a in answers) <= 8
    shards = scan_prefix("RATE#device#203.0.113.50#")
    assert 1 <= len(shards) <= 4 and all(int(i["requests"]["N"]) <= 2 for i in shards)
    assert ask(api, "203.0.113.51").status == 200


def test_a_lost_answer_retried_counts_once_and_makes_one_request(api: Api, limited: None) -> None:
    before = grants_in_table()
    with lose_answers("TransactWriteItems") as lost:
        result = ask(api, "203.0.113.20")
    assert lost.lost == 1 and result.status == 200, result.text
    assert grants_in_table() == before + 1
    counters = scan_prefix("RATE#device#203.0.113.20")
    assert [int(i["requests"]["N"]) for i in counters] == [1]


def test_a_transaction_conflict_on_a_busy_counter_writes_nothing_and_says_come_back(
    api: Api, limited: None
) -> None:
    """On DynamoDB, a burst on one counter can cancel a transaction because another was writing the
    counter at that moment (TransactionConflict; moto serialises, so it is injected here): the request
    is answered 503 temporarily_unavailable with Retry-After, and neither the request nor a count is
    written."""
    before = grants_in_table()
    with inject("conflict", "dynamodb", "TransactWriteItems"):
        busy = ask(api, "203.0.113.21")
    assert_error_in(busy, "oauth", status=503, error="temporarily_unavailable")
    assert busy.headers["retry-after"] == "1"
    assert grants_in_table() == before and scan_prefix("RATE#device#203.0.113.21") == []
    assert ask(api, "203.0.113.21").status == 200  # and the next one goes through


def scan_prefix(prefix: str) -> list[dict[str, Any]]:
    import boto3

    ddb = boto3.client("dynamodb", region_name="us-east-1")
    return ddb.scan(TableName=TABLE, FilterExpression="begins_with(pk, :p)",  # type: ignore[no-any-return]
                    ExpressionAttributeValues={":p": {"S": prefix}})["Items"]  # fmt: skip


def test_no_limit_when_set_to_zero(api: Api, account: Seed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_PER_IP", "0")
    runtime.reset()
    with count_dynamodb() as calls:
        assert ask(api, "203.0.113.30").status == 200
    assert scan_prefix("RATE#device#") == []
    assert "TransactWriteItems" in calls.calls


def test_one_client_over_its_limit_gets_429_and_another_is_unaffected(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    """Per client, on eight shards of two each here: 17 requests must meet the limit (pigeonhole), none
    beyond 16 gets through, and another client (and another address) goes on."""
    set_policy(capsys, "demo-cli", device_authorizations=16)
    answers = [
        ask(api, f"198.51.100.{i}") for i in range(17)
    ]  # 17 addresses: only the client's counter binds
    refused = [a for a in answers if a.status != 200]
    assert refused and sum(a.status == 200 for a in answers) <= 16
    for answer in refused:
        assert_error_in(answer, "oauth", status=429, error="temporarily_unavailable")
        assert (
            "for this client" in answer.json()["error_description"] and int(answer.headers["retry-after"]) > 0
        )
    shards = scan_prefix("RATE#client#demo-cli#")
    assert 1 <= len(shards) <= 8 and all(int(i["requests"]["N"]) <= 2 for i in shards)
    other = api.call(
        "POST",
        "/oauth/device/code",
        form={"client_id": "backend", "client_secret": account.confidential_secret},
    )
    assert other.status == 200, other.text


def test_a_client_limit_of_zero_means_none(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    set_policy(capsys, "demo-cli", device_authorizations=0)
    assert ask(api, "198.51.100.77").status == 200
    assert scan_prefix("RATE#client#demo-cli#") == []


# ---------------------------------------------------------------- per-client policy and the idle timeout


def set_policy(capsys: pytest.CaptureFixture[str], client_id: str, **options: int) -> dict[str, Any]:
    argv = ["clients", "update", client_id]
    for name, value in options.items():
        argv += [f"--{name.replace('_', '-')}", str(value)]
    return run_admin(capsys, *argv)  # type: ignore[no-any-return]


def test_per_client_lifetimes_are_visible_in_expires_in(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str], clock: Manual
) -> None:
    updated = set_policy(
        capsys, "demo-cli", access_token_ttl=600, refresh_token_ttl=7200, device_code_ttl=300, poll_interval=7
    )
    assert updated["access_token_ttl_seconds"] == 600 and "secret_digest" not in updated
    started = api.device_code()
    assert (started["expires_in"], started["interval"]) == (300, 7)
    assert api.approve(started["user_code"], account.user).status == 200
    signed = api.exchange(started["device_code"]).json()
    assert signed["expires_in"] == 600
    cookie = api.call(
        "POST",
        "/auth/refresh",
        cookies=[f"refresh_token={signed['refresh_token']}"],
        headers={"origin": ORIGIN},
    )
    assert cookie.status == 200 and cookie.json()["expires_in"] == 600
    assert "Max-Age=7200" in " ".join(cookie.cookies)
    # another client keeps the deployment's defaults
    started = api.call(
        "POST",
        "/oauth/device/code",
        form={"client_id": "backend", "client_secret": account.confidential_secret},
    ).json()
    assert (started["expires_in"], started["interval"]) == (900, 5)
    successor = cookie_token(cookie)
    clock.advance(7199)
    assert refresh(api, successor).status == 200  # the family's own lifetime: 7,200 s from sign-in
    clock.advance(1)
    assert_error_in(refresh(api, successor), "product", status=401, error="invalid_grant")


def test_a_policy_change_applies_to_new_sessions_only(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sign_in(api, account.user)
    set_policy(capsys, "demo-cli", access_token_ttl=120)
    after = sign_in(api, account.user)
    assert refresh(api, before["refresh_token"]).json()["expires_in"] == 3600
    assert refresh(api, after["refresh_token"]).json()["expires_in"] == 120
    run_admin(capsys, "clients", "update", "demo-cli", "--reset", "access-token-ttl")
    assert sign_in(api, account.user)["expires_in"] == 3600


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("access-token-ttl", "59"),
        ("rotation-grace", "14"),
        ("poll-interval", "0"),
        ("refresh-idle-timeout", "-1"),
    ],
)
def test_a_policy_outside_the_bounds_is_refused(api: Api, account: Seed, option: str, value: str) -> None:
    with pytest.raises(SystemExit, match=f"--{option} must be between"):
        admin.main(["clients", "update", "demo-cli", f"--{option}", value])


def test_updating_an_unknown_client_is_a_clear_error(api: Api) -> None:
    with pytest.raises(SystemExit, match="no client"):
        admin.main(["clients", "update", "nobody", "--access-token-ttl", "600"])


def cookie_token(result: Any) -> str:
    (cookie,) = result.cookies
    return str(cookie.split(";")[0].split("=", 1)[1])


def test_an_idle_session_leaves_the_list_and_the_cookie_follows_the_earlier_limit(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str], clock: Manual
) -> None:
    set_policy(capsys, "demo-cli", refresh_idle_timeout=3600)
    signed = sign_in(api, account.user)
    clock.advance(1800)
    used = api.call(
        "POST",
        "/auth/refresh",
        cookies=[f"refresh_token={signed['refresh_token']}"],
        headers={"origin": ORIGIN},
    )
    assert used.status == 200 and "Max-Age=3600" in used.cookies[0]  # idle, not the 30 days
    (listed,) = sessions_of(api, account.user)["sessions"]
    assert listed["expires_at"] == iso(int(clock.value) + 3600)
    clock.advance(3599)  # last used 3,599 s ago: alive
    assert len(sessions_of(api, account.user)["sessions"]) == 1
    clock.advance(1)
    assert sessions_of(api, account.user)["sessions"] == []
    assert_error_in(refresh(api, cookie_token(used)), "product", status=401, error="invalid_grant")


def test_an_idle_expired_family_is_refused_with_a_message_that_says_so(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str], clock: Manual
) -> None:
    set_policy(capsys, "demo-cli", refresh_idle_timeout=86400)
    signed = sign_in(api, account.user)
    clock.advance(86000)
    used = refresh(api, signed["refresh_token"])
    assert used.status == 200  # used in time: the deadline moves on from now
    clock.advance(86000)
    again = refresh(api, used.json()["refresh_token"])
    assert again.status == 200
    before = raw_item(TABLE, f"GRANT#{grant_of(signed['refresh_token'])}", "GRANT")
    clock.advance(86400)
    idle = refresh(api, again.json()["refresh_token"])
    assert_error_in(idle, "product", status=401, error="invalid_grant")
    assert "1 day without use" in idle.json()["message"]
    assert raw_item(TABLE, f"GRANT#{grant_of(signed['refresh_token'])}", "GRANT") == before  # nothing written
    assert introspect(api, account, again.json()["refresh_token"]) == {"active": False}
    assert introspect(api, account, again.json()["access_token"]) == {"active": False}


def test_the_operator_takes_a_person_out_of_an_organization(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    """admin members remove: the README's own `members add` example can be undone (issue #12 item 6)."""
    removed = run_admin(capsys, "members", "remove", "--user", "user-2", "--org", "globex")
    assert removed == {"user_id": "user-2", "org_id": "globex", "removed": True}
    assert [m["org_id"] for m in run_admin(capsys, "members", "list", "--user", "user-2")] == ["acme"]
    started = api.device_code()
    refused = api.approve(started["user_code"], account.multi_user, organization_id="globex")
    assert_error_in(refused, "product", status=403, error="access_denied")
    with pytest.raises(SystemExit, match="is not a member"):
        admin.main(["members", "remove", "--user", "user-2", "--org", "globex"])


# ---------------------------------------------------------------- found by the adversarial review


def test_sign_out_everywhere_ends_a_session_the_batch_read_could_not_read(api: Api, account: Seed) -> None:
    """DynamoDB may leave keys of a BatchGetItem unprocessed (throttling): the sweep still ends every
    session the index names (each write's condition holds it to its owner), never answering 200 with one
    left alive."""
    kept = sign_in(api, account.user)
    victim = grant_of(kept["refresh_token"])
    sign_in(api, account.user)

    def unprocessed(parsed: dict[str, Any], **_: Any) -> None:
        items = parsed.get("Responses", {}).get(TABLE, [])
        parsed.setdefault("Responses", {})[TABLE] = [i for i in items if i["pk"]["S"] != f"GRANT#{victim}"]
        parsed["UnprocessedKeys"] = {
            TABLE: {"Keys": [{"pk": {"S": f"GRANT#{victim}"}, "sk": {"S": "GRANT"}}], "ConsistentRead": True}
        }

    events = runtime.store().client.meta.events
    events.register("after-call.dynamodb.BatchGetItem", unprocessed)
    try:
        result = api.call("POST", "/auth/sessions/revoke-all", headers=signed_in_now(account.user))
    finally:
        events.unregister("after-call.dynamodb.BatchGetItem", unprocessed)
    assert result.status == 200 and result.json()["count"] == 2, result.text
    assert_error_in(refresh(api, kept["refresh_token"]), "product", status=401, error="invalid_grant")


def test_a_revocation_of_the_sweep_whose_answer_was_lost_is_counted_and_audited(
    api: Api, account: Seed, captured_logs: LogCapture
) -> None:
    sign_in(api, account.user)
    sign_in(api, account.user)
    captured_logs.lines.clear()
    with lose_answers("UpdateItem", 1) as lost:
        result = api.call("POST", "/auth/sessions/revoke-all", headers=signed_in_now(account.user))
    assert lost.lost == 1 and result.json() == {"status": "revoked", "count": 2}, result.text
    assert len(audits(captured_logs, "session_revoked")) == 2


def test_ending_one_session_whose_answer_was_lost_is_audited_once(
    api: Api, account: Seed, captured_logs: LogCapture
) -> None:
    session = grant_of(sign_in(api, account.user)["refresh_token"])
    captured_logs.lines.clear()
    with lose_answers("UpdateItem", 1):
        assert api.call("DELETE", f"/auth/sessions/{session}", claims=account.user).status == 200
    assert len(audits(captured_logs, "session_revoked")) == 1


def test_a_re_sent_exchange_of_a_family_that_has_ended_gets_nothing(
    api: Api, account: Seed, clock: Manual
) -> None:
    """An idle deadline that has passed ends the family for a re-sent exchange too (set below the admin
    command's bound, straight in the table, to reach inside the grace)."""
    runtime.store().update_client("demo-cli", {"refresh_idle_timeout_seconds": 5})
    started = api.device_code()
    assert api.approve(started["user_code"], account.user).status == 200
    assert api.exchange(started["device_code"]).status == 200
    clock.advance(20)  # inside the grace (30 s), past the idle deadline
    assert_error_in(api.exchange(started["device_code"]), "product", status=401, error="invalid_grant")


@pytest.mark.parametrize("value", ["1", "299"])
def test_an_idle_timeout_shorter_than_any_grace_is_refused(api: Api, value: str) -> None:
    from authcore import settings

    with pytest.raises(SystemExit, match="at least 300 seconds"):
        admin.main(["clients", "update", "demo-cli", "--refresh-idle-timeout", value])
    with pytest.raises(settings.ConfigurationError, match="REFRESH_IDLE_TIMEOUT_SECONDS"):
        settings.from_environ(
            {"TABLE_NAME": "tokens", "KEYS_SECRET_ID": "k", "REFRESH_IDLE_TIMEOUT_SECONDS": value}
        )


def test_sign_out_ignores_set_cookie_and_always_signs_out(api: Api, account: Seed) -> None:
    signed = sign_in(api, account.user)
    result = api.call(
        "POST", "/auth/logout", body={"refresh_token": signed["refresh_token"], "set_cookie": True}
    )
    assert result.status == 200, result.text
    assert_error_in(refresh(api, signed["refresh_token"]), "product", status=401, error="invalid_grant")
