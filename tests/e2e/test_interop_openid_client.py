"""Interoperability: openid-client (npm, v6) against the local stack, through
tests/e2e/interop_node/device_flow.mjs.

The script does RFC 8414 discovery (algorithm 'oauth2': /.well-known/oauth-authorization-server, the
issuer must equal the URL it was given), the RFC 8628 device flow with `initiateDeviceAuthorization`
and `pollDeviceAuthorizationGrant`, two `refreshTokenGrant` rotations, and a replay of the first
refresh token. It reports each poll as a line on stdout; this test plays the person and approves the
user code on the verify API. With --provoke-slow-down one extra poll goes just before openid-client's
first one, so that openid-client receives slow_down and must wait the longer interval.

Node packages: tests/e2e/interop_node/package-lock.json; `make node-deps` (mk/node.mk) runs `npm ci`,
and this test runs it too when node_modules is missing (that needs the npm registry; nothing is
fetched when node_modules is there). No `node` on PATH: the test skips, saying so.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack import StackInfo
from tests.e2e.flows import approve, verify_access_token

pytestmark = pytest.mark.slow

PACKAGE = Path(__file__).resolve().parent / "interop_node"
SCRIPT = PACKAGE / "device_flow.mjs"
TIME_LIMIT = 90  # seconds for the whole script; it needs ~16 s (one slowed-down poll interval: 10 s)
SLOW_DOWN_STEP = 5


@pytest.fixture(scope="module")
def node() -> str:
    found = shutil.which("node")
    if found is None:
        pytest.skip("node is not on PATH (Node.js 20 or later runs the openid-client interop test)")
    if not (PACKAGE / "node_modules" / "openid-client" / "package.json").is_file():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("tests/e2e/interop_node/node_modules is missing and npm is not on PATH")
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=PACKAGE,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    return found


class Script:
    """The node script as a child process; its stdout lines, parsed, through a queue with deadlines."""

    def __init__(self, node: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [node, str(SCRIPT), *args],
            cwd=PACKAGE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.deadline = time.monotonic() + TIME_LIMIT
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def events(self) -> Iterator[dict[str, Any]]:
        while True:
            remaining = self.deadline - time.monotonic()
            assert remaining > 0, f"the script gave no result within {TIME_LIMIT} s"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                status = self.process.wait(timeout=10)
                raise AssertionError(f"the script ended (status {status}):\n{''.join(self.stderr)}")
            if line.strip():
                yield json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)


def run_device_flow(node: str, stack: StackInfo, id_token: str, provoke_slow_down: bool) -> dict[str, Any]:
    """Runs the script; approves its user code after the first slow_down (or, without provoking one,
    after the first poll); returns its result and the events it printed."""
    args = [stack.api_url, stack.clients.public.client_id]
    if provoke_slow_down:
        args.append("--provoke-slow-down")
    script = Script(node, *args)
    try:
        user_code = None
        approved = False
        seen: list[dict[str, Any]] = []
        for event in script.events():
            seen.append(event)
            if event["event"] == "user_code":
                user_code = event["user_code"]
            elif event["event"] == "poll" and not approved:
                assert event["error"] in ("authorization_pending", "slow_down"), seen
                if event["error"] == "slow_down" or not provoke_slow_down:
                    assert user_code is not None
                    approve(stack.api_url, id_token, user_code)
                    approved = True
            elif event["event"] == "result":
                assert script.process.wait(timeout=10) == 0, "".join(script.stderr)
                return {**event, "events": seen}
        raise AssertionError("unreachable: events() ends only by raising")
    finally:
        script.close()


def test_openid_client_device_flow_slow_down_refresh_and_replay(
    node: str, stack: StackInfo, id_token: str
) -> None:
    result = run_device_flow(node, stack, id_token, provoke_slow_down=True)

    # Discovery: openid-client accepted the metadata (its issuer check is strict).
    assert result["issuer"] == stack.api_url
    assert result["token_endpoint"] == f"{stack.api_url}/oauth/token"

    # Polling: the extra poll is accepted (pending); openid-client's own, an instant later, gets
    # slow_down with the grown interval; openid-client then waits at least that long, and its next
    # poll gets the tokens (approved meanwhile), with no second slow_down.
    polls = result["polls"]
    interval = result["device"]["interval"]
    assert [(p["by"], p["error"]) for p in polls] == [
        ("extra", "authorization_pending"),
        ("openid-client", "slow_down"),
        ("openid-client", None),
    ], polls
    slowed, granted = polls[1], polls[2]
    assert slowed["status"] == 400
    assert slowed["interval"] == interval + SLOW_DOWN_STEP
    assert slowed["retry_after"] == str(interval + SLOW_DOWN_STEP)
    assert granted["status"] == 200
    assert granted["t"] - slowed["t"] >= interval + SLOW_DOWN_STEP - 0.5, polls

    # Tokens: openid-client's own response checks passed; the access tokens verify with the JWKS.
    tokens = result["tokens"]
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["scope"] == "read write"
    assert 0 < tokens["expires_in"] <= 3600
    claims = verify_access_token(stack.api_url, tokens["access_token"], result["jwks_uri"])
    assert claims["sub"] == stack.demo.sub
    assert claims["client_id"] == stack.clients.public.client_id
    assert claims["org_id"] == stack.demo.organization_id
    refresh_tokens = [tokens["refresh_token"], *(r["refresh_token"] for r in result["refreshes"])]
    assert len(set(refresh_tokens)) == 3  # every refresh rotated
    for refreshed in result["refreshes"]:
        assert verify_access_token(stack.api_url, refreshed["access_token"])["sid"] == claims["sid"]

    # Replay of the first refresh token (two rotations old, so beyond any grace): invalid_grant; and
    # the family is revoked, so the newest refresh token is refused too.
    for refused in (result["replay"], result["after_replay"]):
        assert refused["name"] == "ResponseBodyError", refused
        assert refused["error"] == "invalid_grant", refused
        assert refused["status"] == 400, refused


def test_openid_client_plain_device_flow(node: str, stack: StackInfo, id_token: str) -> None:
    """Without provocation openid-client never polls too fast: pending, then the tokens."""
    result = run_device_flow(node, stack, id_token, provoke_slow_down=False)
    polls = result["polls"]
    assert [(p["by"], p["error"]) for p in polls] == [
        ("openid-client", "authorization_pending"),
        ("openid-client", None),
    ], polls
    assert polls[1]["t"] - polls[0]["t"] >= result["device"]["interval"] - 0.5
    assert verify_access_token(stack.api_url, result["tokens"]["access_token"])["scope"] == "read write"
    assert result["replay"]["error"] == "invalid_grant"
