"""Exactly-once, idempotency and limits under real concurrency.

moto, in-process or threaded, is not atomic: two conditional updates racing on one item can both
succeed. These tests therefore run every handler in Lambda-like worker processes (local.workers)
against a moto server that handles one request at a time (local.moto_server), as DynamoDB applies
each write to an item atomically.

Each race has a negative control: the same harness against a deliberately broken variant installed in
the workers (tests/support/broken.py), which forces the bad interleaving with a barrier shared by the
worker processes (tests/support/barrier.py), never a sleep. A control asserts that the race's own check
fails on what the broken variant answers, and that the barrier released every racer it expected, so it
fails the same way every time.
"""

from __future__ import annotations

import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from authcore import tokens
from authcore.settings import Settings
from authcore.store import Store
from local import admin
from local.lambda_host import http_event
from local.moto_server import MotoServer
from local.workers import Environments, write_clock_offset
from tests.conftest import ENV, ROUTES
from tests.support import aws, broken
from tests.support.barrier import BarrierServer
from tests.support.forge import grant_of

pytestmark = pytest.mark.slow
WORKERS = 8  # execution environments: at most this many requests are in flight at once
EXCHANGERS = 30  # concurrent exchanges of one device code
REFRESHERS = 20  # concurrent refreshes of one token
WRONG_CODES = 50  # concurrent look-ups of wrong user codes by one user
REFUSED = 15  # refreshes asking a wider scope, racing one plain refresh
PER_ADDRESS = 10  # device authorization requests per source address per window, in its race
FROM_ONE_ADDRESS = 40  # concurrent device authorization requests from one address
FROM_ANOTHER = 8  # ... racing these, from another address (under its limit)
LIMIT = Settings.model_fields["verify_attempts_limit"].default  # wrong codes per user per window
ROUNDS = 3
TOKEN_ENDPOINT = "/oauth/token"
VERIFY = "/oauth/device/verify"


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with MotoServer() as url:
        yield url


@pytest.fixture(scope="module")
def stack(moto_url: str) -> Iterator[Stack]:
    """The correct code, shared by the races (each starts its own device flows, families and users);
    every negative control starts a stack of its own with its broken variant."""
    with Stack(moto_url) as shared:
        yield shared


class Stack:
    """A fresh table and key set on the shared moto server, and a pool of environments using them.

    Races are about interleavings, not about time: the rotation grace (ROTATION_GRACE_SECONDS) is long,
    so a race on a loaded machine still ends inside it, and the wrong-code window is one for the whole
    run (VERIFY_ATTEMPTS_WINDOW_SECONDS), so a race never straddles two windows. Both are decided by
    the wall clock here (worker processes); their bounds are tested with a moved clock elsewhere."""

    def __init__(
        self,
        url: str,
        setup: str | None = None,
        size: int = WORKERS,
        env: dict[str, str] | None = None,
        clock_file: Path | None = None,
    ) -> None:
        """``env``: settings of this stack's own (a limit to race); ``clock_file``: its functions read
        their time through it (local.workers.FileClock), so a test can hold a race inside one window."""
        self.table = f"race-{uuid.uuid4().hex[:8]}"
        self.secret = f"race/{self.table}"
        overrides = env or {}
        env = {**ENV, "AWS_ENDPOINT_URL": url, "TABLE_NAME": self.table, "KEYS_SECRET_ID": self.secret}
        env |= {"ROTATION_GRACE_SECONDS": "300", "VERIFY_ATTEMPTS_WINDOW_SECONDS": str(10**10)}
        env |= overrides
        env["PATH"] = "/usr/bin:/bin"
        self.url = url
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update({k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"})
        try:
            aws.create_table(self.table, endpoint_url=url)
            aws.create_keys(self.secret, endpoint_url=url)
            self.seed = aws.seed(self.table, self.secret, endpoint_url=url)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        self.ddb = boto3.client("dynamodb", region_name=aws.REGION, endpoint_url=url)
        functions = sorted({(f"functions/{f}", "app.lambda_handler") for f in ROUTES.values()})
        self.pool = Environments(env, size=size, setup=setup, preload=functions, clock_file=clock_file)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.close()

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        event = http_event(method, path, **kwargs)
        out = self.pool.invoke(f"functions/{ROUTES[(method, path)]}", "app.lambda_handler", event)
        return int(out["statusCode"]), json.loads(out["body"])

    def start_device_flow(self, scope: str | None = None) -> dict[str, Any]:
        form = {"client_id": "demo-cli"} | ({"scope": scope} if scope else {})
        status, started = self.call("POST", "/oauth/device/code", form=form)
        assert status == 200, started
        return started

    def approved_device_code(self, scope: str | None = None) -> str:
        started = self.start_device_flow(scope)
        status, body = self.call(
            "POST",
            VERIFY,
            body={"user_code": started["user_code"], "decision": "approve"},
            claims=self.seed.user,
        )
        assert status == 200, body
        return str(started["device_code"])

    def exchange(self, device_code: str) -> tuple[int, dict[str, Any]]:
        return self.call(
            "POST", "/auth/device/exchange", body={"device_code": device_code, "client_id": "demo-cli"}
        )

    def refresh(self, token: str, scope: str | None = None) -> tuple[int, dict[str, Any]]:
        """On the token endpoint (RFC 6749 §6), optionally asking for a scope."""
        form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "demo-cli"}
        return self.call("POST", TOKEN_ENDPOINT, form=form | ({"scope": scope} if scope else {}))

    def first_refresh_token(self, scope: str | None = None) -> str:
        status, tokens_ = self.exchange(self.approved_device_code(scope))
        assert status == 200, tokens_
        return str(tokens_["refresh_token"])

    def new_member(self) -> dict[str, str]:
        """The claims of a new user, a member of an organization, with a wrong-code counter of its own."""
        sub = f"racer-{uuid.uuid4().hex[:8]}"
        admin.add_member(Store(self.ddb, self.table), sub, self.seed.org_id, "member")
        return {"sub": sub, "email": f"{sub}@example.com", "email_verified": "true", "name": sub}

    def grant_item(self, grant_id: str) -> dict[str, Any]:
        """The grant as DynamoDB holds it (read on the AWS endpoint, not through our code)."""
        item = self.ddb.get_item(
            TableName=self.table,
            Key={"pk": {"S": f"GRANT#{grant_id}"}, "sk": {"S": "GRANT"}},
            ConsistentRead=True,
        ).get("Item")
        assert item is not None, grant_id
        return dict(item)

    def wrong_code_count(self, sub: str) -> int:
        """Wrong user codes counted for a user, over every window (read on the AWS endpoint)."""
        items = self.ddb.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"RATE#verify#{sub}"}},
            ConsistentRead=True,
        )["Items"]
        return sum(len(item.get("attempt_ids", {}).get("SS", [])) for item in items)


def race[T](calls: Sequence[Callable[[], T]]) -> list[T]:
    """Every call at once (each on a thread of its own; the workers take them as they come)."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


# ---------------------------------------------------------------- device-code exchange


def race_exchanges(stack: Stack, device_code: str, n: int) -> list[tuple[int, dict[str, Any]]]:
    return race([lambda: stack.exchange(device_code)] * n)


def check_one_family(results: list[tuple[int, dict[str, Any]]]) -> str:
    """Concurrent exchanges of one approved code within the grace: every one answered with tokens,
    all of one family (the same refresh token). Returns that refresh token."""
    statuses = Counter(status for status, _ in results)
    assert statuses == Counter({200: len(results)}), statuses
    refresh_tokens = {body["refresh_token"] for _, body in results}
    assert len(refresh_tokens) == 1, f"one device code started {len(refresh_tokens)} families"
    assert {body["user"]["id"] for _, body in results} == {"user-1"}
    return str(refresh_tokens.pop())


def test_concurrent_exchanges_of_one_code_share_one_family(stack: Stack) -> None:
    """3 rounds, each on a new approved code: 30 concurrent exchanges all get tokens, and the same
    refresh token (redemption is idempotent: one code, one family). The family rotates once; then 30
    more concurrent exchanges are all refused (invalid_grant), and the rotated token still works: the
    family was not reset. test_the_exchange_race_catches_a_check_then_act_redemption runs the same
    harness against a redemption that checks, then writes, and sees several families."""
    for round_number in range(ROUNDS):
        code = stack.approved_device_code()
        first = check_one_family(race_exchanges(stack, code, EXCHANGERS))
        status, rotated = stack.refresh(first)
        assert status == 200, rotated
        later = race_exchanges(stack, code, EXCHANGERS)
        outcome = Counter((status, body.get("type")) for status, body in later)
        assert outcome == Counter({(401, "invalid_grant"): EXCHANGERS}), (round_number, outcome)
        status, after = stack.refresh(rotated["refresh_token"])
        assert status == 200, (round_number, after)
        item = stack.grant_item(grant_of(first))
        assert int(item["rt_generation"]["N"]) == 3 and "revoked_at" not in item, item


def test_the_exchange_race_catches_a_check_then_act_redemption(moto_url: str) -> None:
    """Negative control: every racer of a round reads the approved grant before any writes (barrier),
    each writes without a condition and starts a random family. The check above fails, every time in
    the same way: the first round (one racer per worker) all get tokens, each of its own family."""
    with (
        BarrierServer(parties=WORKERS, arrivals=EXCHANGERS) as barrier,
        Stack(moto_url, setup=broken.setup("check_then_act_redeem", barrier)) as stack,
    ):
        results = race_exchanges(stack, stack.approved_device_code(), EXCHANGERS)
        barrier.check()
        with pytest.raises(AssertionError):
            check_one_family(results)
        assert Counter(status for status, _ in results) == Counter({200: WORKERS, 401: EXCHANGERS - WORKERS})
        assert len({body["refresh_token"] for status, body in results if status == 200}) == WORKERS


# ---------------------------------------------------------------- refresh rotation


def race_refreshes(stack: Stack, token: str, n: int) -> list[tuple[int, dict[str, Any]]]:
    return race([lambda: stack.refresh(token)] * n)


def check_one_successor(token: str, results: list[tuple[int, dict[str, Any]]]) -> str:
    """Concurrent refreshes of one token: all answered, all with the same successor. Returns it."""
    assert Counter(status for status, _ in results) == Counter({200: len(results)}), results
    successors = {body["refresh_token"] for _, body in results}
    assert len(successors) == 1, f"{len(successors)} successors of one refresh token"
    (successor,) = successors
    assert successor != token
    return str(successor)


def test_concurrent_refreshes_in_grace_share_one_successor(stack: Stack) -> None:
    """20 concurrent refreshes of one token: all succeed, with exactly one distinct successor, which works
    afterwards. test_the_refresh_race_catches_a_non_idempotent_rotation: the same harness against
    random successors fails."""
    token = stack.first_refresh_token()
    successor = check_one_successor(token, race_refreshes(stack, token, REFRESHERS))
    status, after = stack.refresh(successor)
    assert status == 200, after


def test_the_refresh_race_catches_a_non_idempotent_rotation(moto_url: str) -> None:
    """Negative control: random successors, every racer of a round holding its own before any writes
    (barrier). One rotation wins; every other racer presents a token that is now previous with a
    successor that is not the current one: reuse, the family ends. Exactly one racer gets tokens."""
    with (
        BarrierServer(parties=WORKERS, arrivals=REFRESHERS) as barrier,
        Stack(moto_url, setup=broken.setup("random_successor", barrier)) as stack,
    ):
        token = stack.first_refresh_token()
        results = race_refreshes(stack, token, REFRESHERS)
        barrier.check()
        with pytest.raises(AssertionError):
            check_one_successor(token, results)
        assert Counter(status for status, _ in results) == Counter({200: 1, 400: REFRESHERS - 1})
        assert "revoked_at" in stack.grant_item(grant_of(token))


# ---------------------------------------------------------------- the wrong-code limit (finding 5)


def wrong_codes(n: int, right: str) -> list[str]:
    codes: set[str] = set()
    while len(codes) < n:
        code = tokens.new_user_code()
        if code != tokens.normalize_user_code(right):
            codes.add(tokens.display_user_code(code))
    return sorted(codes)


def race_wrong_codes(stack: Stack, user: dict[str, str], codes: list[str]) -> Counter[int]:
    def look_up(code: str) -> Callable[[], int]:
        return lambda: stack.call("GET", VERIFY, query={"user_code": code}, claims=user)[0]

    return Counter(race([look_up(code) for code in codes]))


def check_wrong_code_limit(outcome: Counter[int], n: int) -> None:
    """Exactly LIMIT wrong codes are looked up (404); every other one is refused (429)."""
    assert outcome == Counter({404: LIMIT, 429: n - LIMIT}), outcome


def test_concurrent_wrong_codes_cannot_outrun_the_limit(stack: Stack) -> None:
    """50 concurrent look-ups of wrong user codes by one user: exactly 10 answered 404, 40 answered 429,
    and the counter says 10. Then the right code, by the same user: 429 too (no guessing oracle), while
    another user still sees it. test_the_limit_race_catches_a_check_then_increment: a counter read, then
    incremented without a condition, lets more than 10 through."""
    user = stack.new_member()
    started = stack.start_device_flow()
    outcome = race_wrong_codes(stack, user, wrong_codes(WRONG_CODES, started["user_code"]))
    check_wrong_code_limit(outcome, WRONG_CODES)
    assert stack.wrong_code_count(user["sub"]) == LIMIT
    status, body = stack.call("GET", VERIFY, query={"user_code": started["user_code"]}, claims=user)
    assert (status, body.get("type")) == (429, "rate_limited"), body
    status, body = stack.call(
        "GET", VERIFY, query={"user_code": started["user_code"]}, claims=stack.seed.user
    )
    assert (status, body.get("status")) == (200, "pending"), body
    assert stack.wrong_code_count(user["sub"]) == LIMIT


def test_the_limit_race_catches_a_check_then_increment(moto_url: str) -> None:
    """Negative control: every racer of a round reads the counter before any increments (barrier). The
    first two rounds (one racer per worker each) all read less than 10 and all pass: at least 16 wrong
    codes are looked up, every time."""
    with (
        BarrierServer(parties=WORKERS, arrivals=WRONG_CODES) as barrier,
        Stack(moto_url, setup=broken.setup("check_then_increment_verify", barrier)) as stack,
    ):
        user = stack.new_member()
        outcome = race_wrong_codes(stack, user, wrong_codes(WRONG_CODES, "BBBB-BBBB"))
        barrier.check()
        with pytest.raises(AssertionError):
            check_wrong_code_limit(outcome, WRONG_CODES)
        assert outcome[404] >= 2 * WORKERS and outcome[404] + outcome[429] == WRONG_CODES, outcome


# ---------------------------------------------------------------- a refused refresh racing a plain one (finding 2)


def race_refused_refreshes(
    stack: Stack, token: str, refused: int
) -> tuple[tuple[int, dict[str, Any]], list[tuple[int, dict[str, Any]]]]:
    """One plain refresh of `token` against `refused` refreshes of it asking a scope wider than granted
    (the grant has read; demo-cli may have read and write, so the refusal is the write's condition's,
    not a check before it). The plain one's result, and the refused ones'."""
    plain: list[Callable[[], tuple[int, dict[str, Any]]]] = [lambda: stack.refresh(token)]
    wider: list[Callable[[], tuple[int, dict[str, Any]]]] = [
        lambda: stack.refresh(token, scope="read write")
    ] * refused
    results = race(plain + wider)
    return results[0], results[1:]


def check_refused_changed_nothing(
    stack: Stack, token: str, plain: tuple[int, dict[str, Any]], refused: list[tuple[int, dict[str, Any]]]
) -> str:
    """Every wider refresh refused (invalid_scope), the plain one answered with a successor, and that
    successor works afterwards; no reuse was recorded (the family is live). Returns the successor's
    successor."""
    assert Counter((s, b.get("error")) for s, b in refused) == Counter({(400, "invalid_scope"): len(refused)})
    status, body = plain
    assert status == 200, body
    successor = body["refresh_token"]
    assert successor != token
    status, after = stack.refresh(successor)
    assert status == 200, f"the successor handed out in the race does not work: {after}"
    item = stack.grant_item(grant_of(token))
    assert "revoked_at" not in item and "revoke_reason" not in item, item
    return str(after["refresh_token"])


def test_a_refused_refresh_does_not_undo_a_concurrent_one(stack: Stack) -> None:
    """3 rounds along one family: 15 refreshes of a token asking for `write` (never granted) race one
    plain refresh of it. The refused ones change nothing, so the plain one's successor keeps working and
    the family is never taken for reuse. test_the_refused_refresh_race_catches_a_rotate_then_undo: the
    same harness against the shape before cb57551 (rotate, then undo when refusing) fails."""
    token = stack.first_refresh_token(scope="read")
    for _ in range(ROUNDS):
        plain, refused = race_refused_refreshes(stack, token, REFUSED)
        token = check_refused_changed_nothing(stack, token, plain, refused)


def test_the_refused_refresh_race_catches_a_rotate_then_undo(moto_url: str) -> None:
    """Negative control: the refused refresh rotates T -> S without checking the scope; the plain refresh
    of T runs whole while it holds (barrier: T is previous within the grace, so it is answered S); then
    the refused one undoes its rotation. S, handed out, no longer works."""
    with (
        BarrierServer(parties=2, arrivals=4, then="pass") as barrier,
        Stack(moto_url, setup=broken.setup("rotate_then_undo", barrier), size=2) as stack,
    ):
        token = stack.first_refresh_token(scope="read")
        plain, refused = race_refused_refreshes(stack, token, 1)
        barrier.check()
        with pytest.raises(AssertionError, match="the successor handed out in the race does not work"):
            check_refused_changed_nothing(stack, token, plain, refused)


# ---------------------------------------------------------------- the per-address limit (issue #10)

BUSY, QUIET = "203.0.113.77", "198.51.100.23"
DEVICE_WINDOW = 600


def limited_stack(url: str, tmp_path: Path, setup: str | None = None) -> Stack:
    """A stack whose device authorization requests are limited per source address (PER_ADDRESS per
    window, no shards) and whose functions' clock stands just after a window starts: a race always
    ends inside one window, whatever the wall clock says."""
    clock = tmp_path / "clock"
    now = time.time()
    write_clock_offset(clock, now - now % DEVICE_WINDOW + DEVICE_WINDOW + 1 - now)
    env = {
        "DEVICE_AUTHORIZATIONS_PER_IP": str(PER_ADDRESS),
        "DEVICE_AUTHORIZATIONS_WINDOW_SECONDS": str(DEVICE_WINDOW),
        "DEVICE_AUTHORIZATIONS_ADDRESS_SHARDS": "1",
    }
    return Stack(url, setup=setup, env=env, clock_file=clock)


def race_device_requests(stack: Stack, addresses: list[str]) -> list[tuple[str, int, dict[str, Any]]]:
    """A device authorization request from each address, all at once: (address, status, body)."""

    def ask(address: str) -> Callable[[], tuple[str, int, dict[str, Any]]]:
        def call() -> tuple[str, int, dict[str, Any]]:
            status, body = stack.call(
                "POST", "/oauth/device/code", form={"client_id": "demo-cli"}, source_ip=address
            )
            return address, status, body

        return call

    return race([ask(address) for address in addresses])


def check_address_limit(results: list[tuple[str, int, dict[str, Any]]]) -> None:
    """From the busy address, exactly PER_ADDRESS requests answered with a device code and every other
    one refused (429, temporarily_unavailable); from the quiet one, every request answered."""
    busy = Counter((status, body.get("error")) for address, status, body in results if address == BUSY)
    refused = FROM_ONE_ADDRESS - PER_ADDRESS
    assert busy == Counter({(200, None): PER_ADDRESS, (429, "temporarily_unavailable"): refused}), busy
    quiet = Counter(status for address, status, _ in results if address == QUIET)
    assert quiet == Counter({200: FROM_ANOTHER}), quiet


def device_requests_in_table(stack: Stack, address: str) -> tuple[int, int]:
    """(the address's counter over every window, the device requests it started), read on the AWS
    endpoint: a refused request must have written neither."""
    pages = stack.ddb.get_paginator("scan").paginate(TableName=stack.table, ConsistentRead=True)
    counted = started = 0
    for page in pages:
        for item in page["Items"]:
            pk = item["pk"]["S"]
            if pk == f"RATE#device#{address}":
                counted += int(item["requests"]["N"])
            elif pk.startswith("GRANT#") and item.get("device_ip", {}).get("S") == address:
                started += 1
    return counted, started


def test_concurrent_device_requests_cannot_outrun_the_address_limit(moto_url: str, tmp_path: Path) -> None:
    """40 concurrent device authorization requests from one address, racing 8 from another, with a
    limit of 10 per address: exactly 10 of the 40 get a device code, the 30 others 429, and the counter
    and the table hold 10 (a refused request wrote nothing); the other address is not held up.
    test_the_address_limit_race_catches_a_check_then_count: a counter read, then counted without a
    condition, lets more than 10 through. (The exact 30 refusals are moto's, which serialises requests;
    DynamoDB may also cancel some of the transactions for a conflict on the counter, answered 503 with
    Retry-After: test_sessions. The bound, never more than 10, is the same.)"""
    with limited_stack(moto_url, tmp_path) as stack:
        addresses = [BUSY] * FROM_ONE_ADDRESS + [QUIET] * FROM_ANOTHER
        random.Random(7).shuffle(addresses)
        check_address_limit(race_device_requests(stack, addresses))
        assert device_requests_in_table(stack, BUSY) == (PER_ADDRESS, PER_ADDRESS)
        assert device_requests_in_table(stack, QUIET) == (FROM_ANOTHER, FROM_ANOTHER)


def test_the_address_limit_race_catches_a_check_then_count(moto_url: str, tmp_path: Path) -> None:
    """Negative control: every racer of a round reads the address's counter before any counts (barrier),
    then counts without the limit in the write's condition. The first two rounds (one racer per worker
    each) all read fewer than 10 and all pass: at least 16 requests from the one address get a device
    code, every time."""
    with (
        BarrierServer(parties=WORKERS, arrivals=FROM_ONE_ADDRESS) as barrier,
        limited_stack(moto_url, tmp_path, setup=broken.setup("check_then_count_device", barrier)) as stack,
    ):
        results = race_device_requests(stack, [BUSY] * FROM_ONE_ADDRESS)
        barrier.check()
        passed = sum(status == 200 for _, status, _ in results)
        assert passed >= 2 * WORKERS > PER_ADDRESS, passed
        with pytest.raises(AssertionError):
            check_address_limit(results + [(QUIET, 200, {})] * FROM_ANOTHER)
        counted, started = device_requests_in_table(stack, BUSY)
        assert counted == started == passed
