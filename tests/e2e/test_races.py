"""Exactly-once and idempotency under real concurrency.

moto, in-process or threaded, is not atomic: two conditional updates racing on one item can both
succeed. These tests therefore run every handler in Lambda-like worker processes (local.workers)
against a moto server that handles one request at a time (local.moto_server), as DynamoDB applies
each write to an item atomically. Each test is paired with a self-check that installs a deliberately
broken storage variant (tests/support/broken.py) and shows the same harness catching it.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from local.lambda_host import http_event
from local.moto_server import MotoServer
from local.workers import Environments
from tests.conftest import ENV, ROUTES
from tests.support import aws

pytestmark = pytest.mark.slow
WORKERS = 8


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with MotoServer() as url:
        yield url


class Stack:
    """A fresh table and key set on the shared moto server, and a pool of environments using them."""

    def __init__(self, url: str, setup: str | None = None) -> None:
        self.table = f"race-{uuid.uuid4().hex[:8]}"
        self.secret = f"race/{self.table}"
        env = {**ENV, "AWS_ENDPOINT_URL": url, "TABLE_NAME": self.table, "KEYS_SECRET_ID": self.secret}
        env["PATH"] = "/usr/bin:/bin"
        self.url = url
        import os

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
        functions = sorted({(f"functions/{f}", "app.lambda_handler") for f in ROUTES.values()})
        self.pool = Environments(env, size=WORKERS, setup=setup, preload=functions)

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        event = http_event(method, path, **kwargs)
        out = self.pool.invoke(f"functions/{ROUTES[(method, path)]}", "app.lambda_handler", event)
        return int(out["statusCode"]), json.loads(out["body"])

    def approved_device_code(self) -> str:
        status, started = self.call("POST", "/oauth/device/code", form={"client_id": "demo-cli"})
        assert status == 200, started
        status, body = self.call(
            "POST",
            "/oauth/device/verify",
            body={"user_code": started["user_code"], "decision": "approve"},
            claims=self.seed.user,
        )
        assert status == 200, body
        return str(started["device_code"])

    def close(self) -> None:
        self.pool.close()


def race_exchanges(stack: Stack, device_code: str, n: int) -> Counter[int]:
    def one(_: int) -> int:
        status, _body = stack.call(
            "POST", "/auth/device/exchange", body={"device_code": device_code, "client_id": "demo-cli"}
        )
        return status

    with ThreadPoolExecutor(max_workers=n) as pool:
        return Counter(pool.map(one, range(n)))


def race_refreshes(stack: Stack, token: str, n: int) -> list[tuple[int, dict[str, Any]]]:
    def one(_: int) -> tuple[int, dict[str, Any]]:
        return stack.call("POST", "/auth/refresh", body={"refresh_token": token})

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def test_a_device_code_yields_tokens_exactly_once(moto_url: str) -> None:
    """30 concurrent exchanges of one approved code, 3 rounds: exactly one 200, the rest 401
    invalid_grant. test_the_exchange_race_catches_a_non_conditional_write runs the same harness
    against a read-then-write variant and sees several successes, so this test can fail."""
    stack = Stack(moto_url)
    try:
        for _ in range(3):
            outcome = race_exchanges(stack, stack.approved_device_code(), 30)
            assert outcome == Counter({200: 1, 401: 29}), outcome
    finally:
        stack.close()


def test_the_exchange_race_catches_a_non_conditional_write(moto_url: str) -> None:
    stack = Stack(moto_url, setup="tests.support.broken:non_conditional_redeem")
    try:
        outcome = race_exchanges(stack, stack.approved_device_code(), 30)
        assert outcome[200] > 1, f"the broken variant should hand out tokens more than once: {outcome}"
    finally:
        stack.close()


def test_concurrent_refreshes_in_grace_share_one_successor(moto_url: str) -> None:
    """20 concurrent refreshes of one token: all succeed, exactly one distinct successor, and that
    successor works afterwards. With a non-idempotent rotation (random successors) the same harness
    fails: see test_the_refresh_race_catches_a_non_idempotent_rotation."""
    stack = Stack(moto_url)
    try:
        code = stack.approved_device_code()
        status, tokens = stack.call(
            "POST", "/auth/device/exchange", body={"device_code": code, "client_id": "demo-cli"}
        )
        assert status == 200
        results = race_refreshes(stack, tokens["refresh_token"], 20)
        assert [s for s, _ in results] == [200] * 20, results
        successors = {body["refresh_token"] for _, body in results}
        assert len(successors) == 1
        (successor,) = successors
        assert successor != tokens["refresh_token"]
        status, after = stack.call("POST", "/auth/refresh", body={"refresh_token": successor})
        assert status == 200, after
    finally:
        stack.close()


def test_the_refresh_race_catches_a_non_idempotent_rotation(moto_url: str) -> None:
    stack = Stack(moto_url, setup="tests.support.broken:random_successor")
    try:
        code = stack.approved_device_code()
        status, tokens = stack.call(
            "POST", "/auth/device/exchange", body={"device_code": code, "client_id": "demo-cli"}
        )
        assert status == 200
        results = race_refreshes(stack, tokens["refresh_token"], 20)
        statuses = [s for s, _ in results]
        successors = {body.get("refresh_token") for s, body in results if s == 200}
        assert statuses != [200] * 20 or len(successors) > 1, "the broken rotation went unnoticed"
    finally:
        stack.close()
