"""One family per device code and idempotent rotation under real concurrency, over HTTP, through the
whole local stack.

tests/e2e/test_races.py runs the same races on the functions' execution environments directly; these
go through everything a client reaches: the HTTP API (a thread per connection), the gateway, the
execution environments (4 processes) and the AWS endpoint (moto, one request at a time, as DynamoDB
applies each write to an item atomically).

Every racer is a thread of its own with a kept-alive connection (opened in a warm-up before the races),
and the racers of a round are released together by a barrier, so that the requests of a round really
are in flight at once. All counts and waits are bounded.

The negative control runs the same harness against a stack with a deliberately broken redemption
(tests/support/broken.py), which forces its bad interleaving with a barrier shared by the execution
environments (tests/support/barrier.py), never a sleep: it fails the same way every time.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from local.stack import StackInfo
from tests.e2e.flows import TIMEOUT, approved_device_code, verify_access_token
from tests.support import broken
from tests.support.barrier import BarrierServer

pytestmark = pytest.mark.slow

EXCHANGE_ROUNDS = 20
EXCHANGE_RACERS = 50
REFRESH_ROUNDS = 3
REFRESH_RACERS = 20
BARRIER_TIMEOUT = 30  # seconds for every racer of a round to be ready
BROKEN_CONCURRENCY = 4  # execution environments of the negative control's stack


class Racers:
    """`size` threads, each with its own HTTP session (kept-alive connection). `race(n, call)` runs
    `call(session)` in n of them, released together, and returns the results in order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="racer")

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def race(self, n: int, call: Callable[[requests.Session], Any]) -> list[Any]:
        assert n <= self.size
        barrier = threading.Barrier(n, timeout=BARRIER_TIMEOUT)

        def one(_: int) -> Any:
            session = self._session()
            barrier.wait()
            return call(session)

        return list(self._pool.map(one, range(n), timeout=BARRIER_TIMEOUT + 2 * TIMEOUT))

    def warm(self, call: Callable[[requests.Session], Any]) -> list[Any]:
        """Every thread opens its connection with `call`, a few at a time: the local HTTP API listens
        with a backlog of 5, and a burst of new connections there waits for SYN retransmits (1 s, 3 s,
        ...). Then a barrier: each of the `size` threads has run exactly one call."""
        opening = threading.Semaphore(4)
        barrier = threading.Barrier(self.size, timeout=BARRIER_TIMEOUT)

        def one(_: int) -> Any:
            with opening:
                result = call(self._session())
            barrier.wait()
            return result

        return list(self._pool.map(one, range(self.size), timeout=BARRIER_TIMEOUT + 2 * TIMEOUT))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        for session in self._sessions:
            session.close()


@pytest.fixture(scope="module")
def racers(stack: StackInfo) -> Iterator[Racers]:
    racers = Racers(EXCHANGE_RACERS)
    # Warm-up: every racer opens its connection now, not in the middle of a race.
    statuses = racers.race(
        EXCHANGE_RACERS,
        lambda s: (
            s.get(f"{stack.api_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT).status_code
        ),
    )
    assert statuses == [200] * EXCHANGE_RACERS
    try:
        yield racers
    finally:
        racers.close()


def exchange(stack: StackInfo, device_code: str) -> Callable[[requests.Session], tuple[int, dict[str, Any]]]:
    def call(session: requests.Session) -> tuple[int, dict[str, Any]]:
        response = session.post(
            f"{stack.api_url}/auth/device/exchange",
            json={"device_code": device_code, "client_id": stack.clients.public.client_id},
            timeout=TIMEOUT,
        )
        return response.status_code, response.json()

    return call


def refresh(stack: StackInfo, token: str) -> Callable[[requests.Session], tuple[int, dict[str, Any]]]:
    def call(session: requests.Session) -> tuple[int, dict[str, Any]]:
        response = session.post(
            f"{stack.api_url}/auth/refresh", json={"refresh_token": token}, timeout=TIMEOUT
        )
        return response.status_code, response.json()

    return call


def check_one_family(results: list[tuple[int, dict[str, Any]]]) -> dict[str, Any]:
    """Concurrent exchanges of one approved code within the grace: every one answered with tokens, all
    of one family (the same refresh token). Returns one of the answers."""
    outcome = Counter((status, body.get("type", "tokens")) for status, body in results)
    assert outcome == Counter({(200, "tokens"): len(results)}), outcome
    refresh_tokens = {body["refresh_token"] for _, body in results}
    assert len(refresh_tokens) == 1, f"one device code started {len(refresh_tokens)} families"
    return results[0][1]


def test_concurrent_exchanges_of_one_code_share_one_family_over_http(
    stack: StackInfo, racers: Racers, id_token: str
) -> None:
    """Rounds, each on a new approved code: 50 concurrent exchanges all get tokens, with the same
    refresh token (redemption is idempotent within the rotation grace: one code, one family). The
    family rotates once; then 50 more concurrent exchanges are all refused (401 invalid_grant), and the
    rotated token still works: the family was not reset. The stack runs with the template's grace
    (10 s): a round's first 50 exchanges end well inside it."""
    started = time.monotonic()
    for round_number in range(EXCHANGE_ROUNDS):
        code = approved_device_code(stack.api_url, stack.clients.public.client_id, id_token)
        winner = check_one_family(racers.race(EXCHANGE_RACERS, exchange(stack, code)))
        assert winner["user"]["id"] == stack.demo.sub
        verify_access_token(stack.api_url, winner["access_token"])
        status, rotated = refresh(stack, winner["refresh_token"])(requests.Session())
        assert status == 200, (round_number, rotated)
        later = racers.race(EXCHANGE_RACERS, exchange(stack, code))
        outcome = Counter((status, body.get("type")) for status, body in later)
        assert outcome == Counter({(401, "invalid_grant"): EXCHANGE_RACERS}), (round_number, outcome)
        status, after = refresh(stack, rotated["refresh_token"])(requests.Session())
        assert status == 200, (round_number, after)
    print(f"\n{EXCHANGE_ROUNDS} rounds x 2 x {EXCHANGE_RACERS} exchanges: {time.monotonic() - started:.1f} s")


def test_concurrent_refreshes_share_one_successor_over_http(
    stack: StackInfo, racers: Racers, id_token: str
) -> None:
    """20 concurrent refreshes of one token: all 200, all with the same new refresh token; that
    successor works afterwards (here: it is the one raced in the next round, 3 rounds along one family,
    then refreshed once more on its own)."""
    code = approved_device_code(stack.api_url, stack.clients.public.client_id, id_token)
    status, tokens = exchange(stack, code)(requests.Session())
    assert status == 200, tokens
    token = tokens["refresh_token"]
    seen = {token}
    for round_number in range(REFRESH_ROUNDS):
        results = racers.race(REFRESH_RACERS, refresh(stack, token))
        assert [s for s, _ in results] == [200] * REFRESH_RACERS, (round_number, results)
        successors = {body["refresh_token"] for _, body in results}
        assert len(successors) == 1, (round_number, len(successors))
        (successor,) = successors
        assert successor not in seen
        seen.add(successor)
        access = verify_access_token(stack.api_url, results[0][1]["access_token"])
        assert access["sub"] == stack.demo.sub
        token = successor

    status, after = refresh(stack, token)(requests.Session())
    assert status == 200, after
    assert after["refresh_token"] not in seen


def test_the_http_race_catches_a_check_then_act_redemption() -> None:
    """Negative control: the same harness against a stack whose redemption reads the grant, lets every
    racer of a round read it too (a barrier shared by the execution environments), checks in Python,
    then writes without a condition and starts a random family (tests/support/broken.py). The check
    above fails, every time in the same way: the first round (one racer per execution environment) all
    get tokens, each of its own family; every later racer finds the code used."""
    from local.stack import LocalStack
    from tests.e2e.conftest import cognito_id_token

    with (
        BarrierServer(parties=BROKEN_CONCURRENCY, arrivals=EXCHANGE_RACERS) as barrier,
        LocalStack(
            concurrency=BROKEN_CONCURRENCY, setup=broken.setup("check_then_act_redeem", barrier)
        ) as stack,
    ):
        token = cognito_id_token(stack, stack.demo.username, stack.demo.password)
        racers = Racers(EXCHANGE_RACERS)
        try:
            racers.warm(
                lambda s: s.get(f"{stack.api_url}/.well-known/jwks.json", timeout=TIMEOUT).status_code
            )
            code = approved_device_code(stack.api_url, stack.clients.public.client_id, token)
            results = racers.race(EXCHANGE_RACERS, exchange(stack, code))
        finally:
            racers.close()
        barrier.check()
    with pytest.raises(AssertionError):
        check_one_family(results)
    outcome = Counter((status, body.get("type", "tokens")) for status, body in results)
    assert outcome == Counter(
        {(200, "tokens"): BROKEN_CONCURRENCY, (401, "invalid_grant"): EXCHANGE_RACERS - BROKEN_CONCURRENCY}
    ), outcome
    families = {body["refresh_token"] for status, body in results if status == 200}
    assert len(families) == BROKEN_CONCURRENCY
