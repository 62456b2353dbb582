"""The reference CLI (`python -m authcli`) against the local stack, as a person would use it: log in
with the device flow (the approval is the verification API call the web page makes), then whoami, token
(a JWT that verifies with the service's JWKS, refreshed and rotated when near expiry), and logout (which
revokes on the server). Each command is a real subprocess with its own config home."""

from __future__ import annotations

import json
import os
import queue
import re
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from local.stack import StackInfo
from tests.support import jwt_check

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
USER_CODE = re.compile(r"\b([BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4})\b")


def environment(stack: StackInfo, config_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCLI_") and k != "PYTHONPATH"}
    env.update(
        XDG_CONFIG_HOME=str(config_home),
        # Explicit, so that a .local/serve.json of some other `make serve` cannot interfere.
        AUTHCLI_SERVER=stack.api_url,
        AUTHCLI_CLIENT_ID=stack.clients.public.client_id,
    )
    return env


def authcli(stack: StackInfo, config_home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "authcli", *args],
        cwd=ROOT,
        env=environment(stack, config_home),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class Login:
    """`authcli login --no-browser` in the background; its output read as it comes."""

    def __init__(self, stack: StackInfo, config_home: Path) -> None:
        self.stderr_file = config_home.parent / f"login-{time.monotonic_ns()}.stderr"
        with self.stderr_file.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "authcli", "login", "--no-browser"],
                cwd=ROOT,
                env=environment(stack, config_home),
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.lines: queue.Queue[str] = queue.Queue()
        self.out: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def user_code(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, f"login ended early: {self.finish()}"
                continue
            self.out.append(line)
            if "one-time code" in line and (match := USER_CODE.search(line)):
                return match.group(1)
        raise AssertionError(f"no user code within {timeout} s: {''.join(self.out)}")

    def finish(self, timeout: float = 60) -> tuple[int, str, str]:
        code = self.proc.wait(timeout=timeout)
        self.reader.join(timeout=timeout)  # it ends at the pipe's end of file: every line is queued
        assert not self.reader.is_alive(), "the login's stdout did not close"
        while not self.lines.empty():
            self.out.append(self.lines.get())
        return code, "".join(self.out), self.stderr_file.read_text()


def decide(stack: StackInfo, id_token: str, user_code: str, decision: str) -> None:
    response = requests.post(
        f"{stack.api_url}/oauth/device/verify",
        json={"user_code": user_code, "decision": decision},
        headers={"Authorization": f"Bearer {id_token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "approved" if decision == "approve" else "denied"}


def verified_claims(stack: StackInfo, token: str) -> dict[str, Any]:
    return jwt_check.verify_over_http(token, stack.api_url)


def test_login_whoami_token_refresh_logout(stack: StackInfo, id_token: str, tmp_path: Path) -> None:
    config_home = tmp_path / "config"
    login = Login(stack, config_home)
    decide(stack, id_token, login.user_code(), "approve")
    code, out, err = login.finish()

    assert code == 0, err
    assert f"Logged in as {stack.demo.username} ({stack.demo.organization_name})" in out
    folder = config_home / "token-service"
    file = folder / "credentials.json"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    saved = json.loads(file.read_text())
    assert saved["server"] == stack.api_url
    assert saved["user"]["id"] == stack.demo.sub
    assert saved["organization"]["id"] == stack.demo.organization_id

    whoami = authcli(stack, config_home, "whoami")
    assert whoami.returncode == 0, whoami.stderr
    assert stack.demo.username in whoami.stdout and stack.demo.name in whoami.stdout
    assert f"Organization: {stack.demo.organization_name} ({stack.demo.organization_id})" in whoami.stdout

    token = authcli(stack, config_home, "token")
    assert token.returncode == 0, token.stderr
    assert token.stdout.count("\n") == 1 and token.stderr == ""
    claims = verified_claims(stack, token.stdout.strip())
    assert claims["sub"] == stack.demo.sub
    assert claims["org_id"] == stack.demo.organization_id
    assert claims["client_id"] == stack.clients.public.client_id
    assert token.stdout.strip() == saved["access_token"]  # still fresh: no refresh

    # Near expiry, `token` refreshes; the rotated refresh token replaces the old one on disk.
    file.write_text(json.dumps({**saved, "expires_at": int(time.time()) + 30}))
    refreshed = authcli(stack, config_home, "token")
    assert refreshed.returncode == 0, refreshed.stderr
    renewed = json.loads(file.read_text())
    assert refreshed.stdout.strip() == renewed["access_token"] != saved["access_token"]
    assert renewed["refresh_token"] != saved["refresh_token"]
    assert renewed["expires_at"] > time.time() + 600
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert verified_claims(stack, renewed["access_token"])["sub"] == stack.demo.sub

    logout = authcli(stack, config_home, "logout")
    assert logout.returncode == 0, logout.stderr
    assert "revoked" in logout.stdout and logout.stderr == ""
    assert not file.exists()
    after = requests.post(
        f"{stack.api_url}/auth/refresh", json={"refresh_token": renewed["refresh_token"]}, timeout=10
    )
    assert after.status_code == 401, after.text
    assert after.json()["type"] == "invalid_grant"

    gone = authcli(stack, config_home, "whoami")
    assert gone.returncode == 4
    assert gone.stderr.strip() == "Not logged in. Run `python -m authcli login` first."


def test_denied_login(stack: StackInfo, id_token: str, tmp_path: Path) -> None:
    config_home = tmp_path / "config"
    login = Login(stack, config_home)
    decide(stack, id_token, login.user_code(), "deny")
    code, _, err = login.finish()

    assert code == 1
    assert err.startswith("Login denied:"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (config_home / "token-service" / "credentials.json").exists()
