"""The reference CLI (authcli) against a scripted HTTP server of its own: each test says what the
server answers, runs a command, and checks what the user sees, what went over the wire and when, and
what was left on disk.

Nothing here waits for real: the CLI gets a clock of the test's (`FakeTime`), whose `sleep` records the
wait and moves the clock. The server stamps each request with that clock, so "when" is exact."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from authcli import __version__, credentials
from authcli.cli import main
from authcli.console import TICK, Clock
from authcli.credentials import Credentials, Organization, User

ROOT = Path(__file__).resolve().parents[2]
CLIENT = "demo-cli"
USER = {"id": "u-1", "email": "ada@example.test", "name": "Ada Lovelace"}
ORG = {"id": "org-1", "name": "Analytical Engines", "role": "admin"}


# ------------------------------------------------------------------------------------------- fake server


class FakeTime:
    """The CLI's clock in these tests: `sleep` records how long the CLI asked to wait and moves the
    clock by that much, at once."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start
        self.start = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> Clock:
        return Clock(monotonic=self.monotonic, sleep=self.sleep)


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # the CLI's (fake) clock on arrival

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # dict -> JSON; str -> sent as is
    headers: tuple[tuple[str, str], ...] = ()
    gate: threading.Event | None = None  # answer only once the test sets it


def problem(status: int, type_: str, message: str = "", **headers: str) -> Answer:
    body = {
        "status": status,
        "message": message or type_,
        "type": type_,
        "details": [],
        "request_id": "req-1",
    }
    return Answer(status, body, tuple((k.replace("_", "-"), v) for k, v in headers.items()))


class FakeServer:
    """Answers each route from a script: answers are used in order and the last one repeats."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.arrived = threading.Condition()
        self.scripts: dict[tuple[str, str], list[Answer]] = {}
        self.time = FakeTime()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake.handle(self)

            def do_POST(self) -> None:
                fake.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.script("GET", "/.well-known/oauth-authorization-server", Answer(200, self.metadata()))

    def metadata(self) -> dict[str, str]:
        u = self.url
        return {
            "issuer": u,
            "device_authorization_endpoint": f"{u}/oauth/device/code",
            "token_endpoint": f"{u}/oauth/token",
            "device_exchange_endpoint": f"{u}/auth/device/exchange",
            "refresh_endpoint": f"{u}/auth/refresh",
            "logout_endpoint": f"{u}/auth/logout",
        }

    def script(self, method: str, path: str, *answers: Answer) -> None:
        self.scripts[(method, path)] = list(answers)

    def handle(self, req: BaseHTTPRequestHandler) -> None:
        at = self.time.monotonic()
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        with self.arrived:
            self.hits.append(Hit(req.command, req.path, dict(req.headers.items()), body, at))
            self.arrived.notify_all()
        queue = self.scripts.get((req.command, req.path))
        answer = (queue.pop(0) if len(queue) > 1 else queue[0]) if queue else problem(404, "not_found")
        if answer.gate is not None:
            assert answer.gate.wait(timeout=30), "the test never released this answer"
        raw = answer.body.encode() if isinstance(answer.body, str) else json.dumps(answer.body).encode()
        req.send_response(answer.status)
        req.send_header("Content-Type", "text/html" if isinstance(answer.body, str) else "application/json")
        req.send_header("Content-Length", str(len(raw)))
        for name, value in answer.headers:
            req.send_header(name, value)
        req.end_headers()
        req.wfile.write(raw)

    def to(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30) -> None:
        """Until `count` requests to `path` have arrived (bounded)."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.to(path)) >= count, timeout), self.hits

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop answering: the port then refuses connections."""
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()


def device_code(expires_in: int = 60, interval: int = 1) -> Answer:
    return Answer(
        200,
        {
            "device_code": "dc_grant_secret",
            "user_code": "WDJB-MJHT",
            "verification_uri": "http://127.0.0.1:9/device",
            "verification_uri_complete": "http://127.0.0.1:9/device?user_code=WDJB-MJHT",
            "expires_in": expires_in,
            "interval": interval,
        },
    )


def tokens(access: str = "at-1", refresh: str = "rt-1", expires_in: int = 3600) -> Answer:
    return Answer(
        200,
        {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "refresh_token": refresh,
            "scope": "openid profile",
            "user": USER,
            "organization": ORG,
        },
    )


PENDING = problem(400, "authorization_pending", "The user has not decided yet.")


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as fake:
        yield fake


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config home that does not exist yet; the CLI must create it privately."""
    for name in ("AUTHCLI_SERVER", "AUTHCLI_CLIENT_ID", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "xdg" / "token-service"


@dataclass
class Run:
    code: int
    out: str
    err: str


class Terminal(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def run(*argv: str, out: io.StringIO | None = None, clock: FakeTime | None = None) -> Run:
    stdout, stderr = out or io.StringIO(), io.StringIO()
    code = main(list(argv), out=stdout, err=stderr, clock=clock.clock() if clock else None)
    return Run(code, stdout.getvalue(), stderr.getvalue())


def login(server: FakeServer, *extra: str, out: io.StringIO | None = None) -> Run:
    """`login` against the fake server, on the server's fake clock."""
    return run(
        "login", "--server", server.url, "--client-id", CLIENT, "--no-browser", *extra, out=out,
        clock=server.time,
    )  # fmt: skip


def store(server: FakeServer, expires_in: float = 3600, refresh: str = "rt-old") -> Path:
    return credentials.save(
        Credentials(
            server=server.url,
            client_id=CLIENT,
            access_token="at-old",
            expires_at=int(time.time() + expires_in),
            refresh_token=refresh,
            scope="openid",
            user=User(**USER),
            organization=Organization(**ORG),
        )
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_one_line(text: str) -> None:
    assert "Traceback" not in text
    assert len(text.strip().splitlines()) == 1, text


# ------------------------------------------------------------------------------------------- login


def test_login_waits_for_approval_and_saves_private_credentials(server: FakeServer, config: Path) -> None:
    server.script("POST", "/oauth/device/code", device_code())
    server.script("POST", "/auth/device/exchange", PENDING, tokens())
    old_umask = os.umask(0)  # modes must come from the code, not from a kind umask
    try:
        result = login(server, "--scope", "openid profile")
    finally:
        os.umask(old_umask)

    assert result.code == 0, result.err
    assert "WDJB-MJHT" in result.out
    assert "http://127.0.0.1:9/device?user_code=WDJB-MJHT" in result.out
    assert "Logged in as ada@example.test (Analytical Engines)" in result.out
    assert "\r" not in result.out and "\x1b" not in result.out  # not a terminal: no animation, no colour

    started = server.to("/oauth/device/code")[0]
    assert started.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert started.body == b"client_id=demo-cli&scope=openid+profile"
    polls = server.to("/auth/device/exchange")
    assert len(polls) == 2
    assert polls[0].json() == {"device_code": "dc_grant_secret", "client_id": CLIENT}
    # the announced interval (1 s) before the first poll and between the two, no more, no less
    assert [p.at - server.time.start for p in polls] == [1.0, 2.0]
    assert server.time.sleeps == [1.0, 1.0]
    for hit in server.hits:
        assert hit.headers["X-Client-Version"] == __version__
        assert hit.headers["User-Agent"].startswith(f"authcli/{__version__} ")

    file = config / "credentials.json"
    assert mode(config) == 0o700
    assert mode(file) == 0o600
    saved = json.loads(file.read_text())
    assert saved["server"] == server.url
    assert saved["client_id"] == CLIENT
    assert saved["access_token"] == "at-1"
    assert saved["refresh_token"] == "rt-1"
    assert saved["scope"] == "openid profile"
    assert saved["user"] == USER
    assert saved["organization"] == ORG
    assert abs(saved["expires_at"] - (time.time() + 3600)) < 10


def test_slow_down_makes_the_cli_poll_less_often(server: FakeServer, config: Path) -> None:
    """The product API says the new interval in Retry-After: the CLI waits that long from then on."""
    server.script("POST", "/oauth/device/code", device_code(interval=1))
    server.script(
        "POST",
        "/auth/device/exchange",
        problem(429, "slow_down", "Polling too fast.", Retry_After="7"),
        PENDING,
        tokens(),
    )
    result = login(server)

    assert result.code == 0, result.err
    assert server.time.sleeps == [1.0, 7.0, 7.0]  # the announced interval, then the new one, kept
    assert [p.at - server.time.start for p in server.to("/auth/device/exchange")] == [1.0, 8.0, 15.0]


@pytest.mark.parametrize(
    "answer",
    [
        problem(429, "slow_down", "Polling too fast."),  # says no interval
        problem(429, "slow_down", "Polling too fast.", Retry_After="1"),  # says no longer one
        Answer(400, {"error": "slow_down", "error_description": "Polling too fast."}),  # OAuth dialect
    ],
    ids=["no-retry-after", "retry-after-not-longer", "oauth-without-interval"],
)
def test_slow_down_without_a_longer_interval_adds_five_seconds(
    server: FakeServer, config: Path, answer: Answer
) -> None:
    """RFC 8628 §3.5: on slow_down, the interval grows by 5 s, for this and every later poll."""
    server.script("POST", "/oauth/device/code", device_code(interval=2))
    server.script("POST", "/auth/device/exchange", answer, answer, PENDING, tokens())
    result = login(server)

    assert result.code == 0, result.err
    assert server.time.sleeps == [2.0, 7.0, 12.0, 12.0]


def test_slow_down_in_the_oauth_dialect_takes_the_interval_from_the_body(
    server: FakeServer, config: Path
) -> None:
    server.script("POST", "/oauth/device/code", device_code(interval=1))
    server.script(
        "POST",
        "/auth/device/exchange",
        Answer(400, {"error": "slow_down", "error_description": "Too fast.", "interval": 9}),
        tokens(),
    )
    result = login(server)

    assert result.code == 0, result.err
    assert server.time.sleeps == [1.0, 9.0]


def test_transient_server_failure_while_polling_is_retried(server: FakeServer, config: Path) -> None:
    server.script("POST", "/oauth/device/code", device_code())
    server.script("POST", "/auth/device/exchange", problem(502, "bad_gateway", "DynamoDB failed."), tokens())
    result = login(server)

    assert result.code == 0, result.err
    assert "DynamoDB failed" in result.err and "Trying again in 1 s" in result.err
    assert len(server.to("/auth/device/exchange")) == 2
    assert server.time.sleeps == [1.0, 1.0]


def test_transient_failures_back_off_and_then_give_up(server: FakeServer, config: Path) -> None:
    """Each consecutive failure waits longer (the interval, or Retry-After when longer, times the number
    of failures); after MAX_TRANSIENT of them the login ends."""
    server.script("POST", "/oauth/device/code", device_code(interval=2))
    server.script(
        "POST", "/auth/device/exchange", problem(503, "temporarily_unavailable", "Busy.", Retry_After="3")
    )
    result = login(server)

    assert result.code == 1
    assert "The server refused the login: Busy." in result.err
    assert server.time.sleeps == [2.0, 3.0, 6.0, 9.0]
    assert len(server.to("/auth/device/exchange")) == 4


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            problem(403, "access_denied", "The user denied the request."),
            "Login denied: The user denied the request.",
        ),
        (
            problem(400, "expired_token", "The device code has expired."),
            "The code expired before the login was approved",
        ),
        (problem(401, "invalid_grant", "Unknown device code."), "no longer accepts this login"),
        (
            problem(426, "upgrade_required", "9.0.0 or later is required."),
            f"This authcli ({__version__}) is too old",
        ),
    ],
    ids=["denied", "expired", "invalid_grant", "upgrade"],
)
def test_login_failures_say_one_thing_and_save_nothing(
    server: FakeServer, config: Path, answer: Answer, message: str
) -> None:
    server.script("POST", "/oauth/device/code", device_code())
    server.script("POST", "/auth/device/exchange", answer)
    result = login(server)

    assert result.code == 1
    assert message in result.err
    assert "Traceback" not in result.err
    assert not (config / "credentials.json").exists()


def test_code_that_runs_out_locally_ends_without_another_poll(server: FakeServer, config: Path) -> None:
    server.script("POST", "/oauth/device/code", device_code(expires_in=1, interval=5))
    server.script("POST", "/auth/device/exchange", PENDING)
    result = login(server)

    assert result.code == 1
    assert_one_line(result.err)
    assert "The code expired before the login was approved" in result.err
    assert server.to("/auth/device/exchange") == []
    assert server.time.sleeps == [1.0]  # until the code ran out, not the whole interval


def test_terminal_gets_a_countdown_spinner_and_highlighted_code(
    server: FakeServer, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    server.script("POST", "/oauth/device/code", device_code(expires_in=300))
    server.script("POST", "/auth/device/exchange", tokens())
    result = login(server, out=Terminal())

    assert result.code == 0, result.err
    assert "\x1b[1;33mWDJB-MJHT\x1b[0m" in result.out
    frames = [line for line in result.out.split("\r") if "Waiting for approval" in line]
    # one frame per tick: the 1 s interval is waited in ticks, redrawing each time
    assert server.time.sleeps == pytest.approx([TICK] * 10)
    assert len(frames) == 10
    assert any(f.startswith("\x1b[K⠙ ") for f in frames)
    assert "code expires in 5:00" in result.out
    assert result.out.endswith("\n")


def test_defaults_come_from_serve_json(server: FakeServer, config: Path) -> None:
    local = Path(".local")
    local.mkdir()
    (local / "serve.json").write_text(
        json.dumps({"api_url": server.url + "/", "clients": {"public": {"client_id": "local-cli"}}})
    )
    server.script("POST", "/oauth/device/code", device_code())
    server.script("POST", "/auth/device/exchange", tokens())
    result = run("login", "--no-browser", clock=server.time)

    assert result.code == 0, result.err
    assert "the local stack" in result.out
    assert server.to("/oauth/device/code")[0].body == b"client_id=local-cli"
    assert json.loads((config / "credentials.json").read_text())["server"] == server.url


def test_server_down(config: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run("login", "--server", f"http://127.0.0.1:{port}", "--client-id", CLIENT)

    assert result.code == 1
    assert_one_line(result.err)
    assert f"Cannot reach the server at http://127.0.0.1:{port}: connection refused" in result.err


def test_a_server_that_does_not_answer_json(server: FakeServer, config: Path) -> None:
    server.script("GET", "/.well-known/oauth-authorization-server", Answer(502, "<html>Bad Gateway</html>"))
    result = login(server)

    assert result.code == 1
    assert_one_line(result.err)
    assert "answered HTTP 502 with something other than a JSON object" in result.err


def test_metadata_must_name_the_server_it_came_from(server: FakeServer, config: Path) -> None:
    meta = {**server.metadata(), "issuer": "https://auth.example.test"}
    server.script("GET", "/.well-known/oauth-authorization-server", Answer(200, meta))
    result = login(server)

    assert result.code == 1
    assert "use --server https://auth.example.test" in result.err
    assert len(server.hits) == 1


def test_credentials_never_go_to_a_remote_server_over_plain_http(config: Path) -> None:
    result = run("login", "--server", "http://auth.example.test", "--client-id", CLIENT)

    assert result.code == 1
    assert "Refusing to send credentials to http://auth.example.test" in result.err


def test_unknown_client(server: FakeServer, config: Path) -> None:
    server.script(
        "POST",
        "/oauth/device/code",
        Answer(401, {"error": "invalid_client", "error_description": "Unknown client."}),
    )
    result = login(server)

    assert result.code == 1
    assert "does not know the client id 'demo-cli': Unknown client. (HTTP 401 invalid_client)" in result.err


def test_login_says_what_the_page_will_show_about_this_device(server: FakeServer, config: Path) -> None:
    """RFC 8628 §5.4: the person compares the page's "client, version, user agent" with what the CLI says
    beside the code, and approves only a request they started."""
    from authcli import __version__
    from authcli.api import USER_AGENT

    server.script("POST", "/oauth/device/code", device_code())
    server.script("POST", "/auth/device/exchange", tokens())
    result = login(server)
    assert result.code == 0, result.err
    assert f"The page will show:  client demo-cli, version {__version__}" in result.out
    assert USER_AGENT in result.out
    started = server.to("/oauth/device/code")[0]
    assert started.headers["X-Client-Version"] == __version__ and started.headers["User-Agent"] == USER_AGENT


def test_too_many_sign_ins_from_one_network_says_when_to_try_again(server: FakeServer, config: Path) -> None:
    server.script(
        "POST",
        "/oauth/device/code",
        Answer(
            429,
            {"error": "temporarily_unavailable", "error_description": "Too many requests."},
            headers=(("Retry-After", "420"),),
        ),
    )
    result = login(server)
    assert result.code == 1
    assert "Too many sign-ins were started from this network; try again in 420 seconds." in result.err


def test_ctrl_c_during_login_exits_130_cleanly(server: FakeServer, tmp_path: Path) -> None:
    server.script("POST", "/oauth/device/code", device_code(interval=1))
    server.script("POST", "/auth/device/exchange", PENDING)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHCLI_")}
    env["XDG_CONFIG_HOME"] = str(tmp_path)
    env.pop("PYTHONPATH", None)  # plain `python -m authcli` from the repository root
    proc = subprocess.Popen(
        [sys.executable, "-m", "authcli", "login", "--server", server.url, "--client-id", CLIENT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if "Waiting for approval" in line:
            break
    # It is polling now: Python's SIGINT handler is in place long since, so Ctrl-C is a KeyboardInterrupt
    # wherever it lands (waiting, or in a request).
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)

    assert proc.returncode == 130
    assert err.strip() == "Cancelled."
    assert not (tmp_path / "token-service" / "credentials.json").exists()


# ------------------------------------------------------------------------------------------- token


def test_token_prints_the_stored_token_without_asking_the_server(server: FakeServer, config: Path) -> None:
    store(server, expires_in=600)
    result = run("token")

    assert result == Run(0, "at-old\n", "")
    assert server.hits == []


def test_token_refreshes_near_expiry_and_rewrites_the_file_atomically(
    server: FakeServer, config: Path
) -> None:
    file = store(server, expires_in=30)
    before = file.stat().st_ino
    server.script("POST", "/auth/refresh", tokens(access="at-new", refresh="rt-new"))
    result = run("token")

    assert result == Run(0, "at-new\n", "")
    (hit,) = server.to("/auth/refresh")
    assert hit.json() == {"refresh_token": "rt-old"}
    assert hit.headers["X-Client-Version"] == __version__
    saved = json.loads(file.read_text())
    assert (saved["access_token"], saved["refresh_token"]) == ("at-new", "rt-new")
    assert file.stat().st_ino != before  # replaced, not rewritten in place
    assert mode(file) == 0o600
    assert sorted(p.name for p in config.iterdir()) == ["credentials.json", "credentials.lock"]


class BrokenStdout(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError


def test_rotated_refresh_token_is_stored_before_the_access_token_is_printed(
    server: FakeServer, config: Path
) -> None:
    file = store(server, expires_in=0)
    server.script("POST", "/auth/refresh", tokens(access="at-new", refresh="rt-new"))
    result = run("token", out=BrokenStdout())

    assert result.code == 1
    assert json.loads(file.read_text())["refresh_token"] == "rt-new"


def blocked_in(thread: threading.Thread, function: str) -> bool:
    """The thread is, right now, inside `function` of authcli.credentials (for `locked`: waiting for
    the lock, as nothing else happens in its frame)."""
    frame = sys._current_frames().get(thread.ident or -1)
    return (
        frame is not None
        and frame.f_code.co_name == function
        and frame.f_code.co_filename == credentials.__file__
    )


def test_concurrent_token_commands_refresh_once(server: FakeServer, config: Path) -> None:
    """Three `token` commands see an expired token at once. The interleaving is forced: the first one's
    refresh is held by the server until the other two are waiting for the lock (or, were there no lock,
    have sent refreshes of their own); only then does it answer."""
    store(server, expires_in=0)
    release = threading.Event()
    server.script("POST", "/auth/refresh", replace(tokens(access="at-new"), gate=release))
    results: list[Run] = []
    threads = [threading.Thread(target=lambda: results.append(run("token"))) for _ in range(3)]
    threads[0].start()
    server.wait_for("/auth/refresh", 1)  # the first holds the lock, its refresh in flight
    for t in threads[1:]:
        t.start()
    deadline = time.monotonic() + 30
    while not all(blocked_in(t, "locked") for t in threads[1:]) and len(server.to("/auth/refresh")) < 3:
        assert time.monotonic() < deadline, "the other commands neither waited for the lock nor refreshed"
        threading.Event().wait(0.005)  # a bounded poll of the threads' state, not a timing
    release.set()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()

    assert [r.out for r in results] == ["at-new\n"] * 3
    assert len(server.to("/auth/refresh")) == 1


def test_refresh_rejected_means_log_in_again(server: FakeServer, config: Path) -> None:
    store(server, expires_in=0)
    server.script("POST", "/auth/refresh", problem(401, "invalid_grant", "Refresh token reused."))
    result = run("token")

    assert result.code == 4
    assert result.out == ""
    assert_one_line(result.err)
    assert "has ended" in result.err and "python -m authcli login" in result.err


def test_refresh_upgrade_required(server: FakeServer, config: Path) -> None:
    store(server, expires_in=0)
    server.script(
        "POST", "/auth/refresh", problem(426, "upgrade_required", "Version 2.0.0 or later is required.")
    )
    result = run("token")

    assert result.code == 1
    assert result.err.strip() == (
        f"This authcli ({__version__}) is too old for the server: Version 2.0.0 or later is required. Please upgrade."
    )


def test_token_with_server_down(config: Path, server: FakeServer) -> None:
    store(server, expires_in=30)
    server.stop()  # the server goes away

    still_valid = run("token")
    assert still_valid.code == 0 and still_valid.out == "at-old\n"
    assert "Could not refresh the access token, using the current one" in still_valid.err

    store(server, expires_in=0)
    expired = run("token")
    assert expired.code == 1 and expired.out == ""
    assert_one_line(expired.err)
    assert "Cannot reach the server" in expired.err


@pytest.mark.parametrize("command", ["whoami", "token", "logout"])
def test_not_logged_in(config: Path, command: str) -> None:
    result = run(command)

    assert result.code == 4
    assert result.err.strip() == "Not logged in. Run `python -m authcli login` first."
    assert not config.exists()


# ------------------------------------------------------------------------------------------- whoami


def test_whoami_refreshes_an_expired_token_first(server: FakeServer, config: Path) -> None:
    store(server, expires_in=-5)
    server.script("POST", "/auth/refresh", tokens(access="at-new"))
    result = run("whoami")

    assert result.code == 0, result.err
    assert "Ada Lovelace <ada@example.test>" in result.out
    assert "Organization: Analytical Engines (org-1), role admin" in result.out
    assert len(server.to("/auth/refresh")) == 1

    as_json = json.loads(run("whoami", "--json").out)
    assert as_json["user"] == USER and as_json["organization"] == ORG
    assert len(server.to("/auth/refresh")) == 1  # now fresh: no second refresh


# ------------------------------------------------------------------------------------------- logout


def test_logout_revokes_then_forgets(server: FakeServer, config: Path) -> None:
    file = store(server)
    server.script("POST", "/auth/logout", Answer(200, {"status": "signed_out"}))
    result = run("logout")

    assert result.code == 0, result.err
    assert "Logged out ada@example.test" in result.out and "revoked" in result.out
    assert [h.json() for h in server.to("/auth/logout")] == [{"refresh_token": "rt-old"}]
    assert not file.exists()


def test_logout_with_server_down_still_forgets_and_says_so(server: FakeServer, config: Path) -> None:
    file = store(server)
    server.stop()
    result = run("logout")

    assert result.code == 0
    assert "on this machine" in result.out
    assert_one_line(result.err)
    assert "could not be revoked on the server" in result.err and "Cannot reach" in result.err
    assert not file.exists()


# ------------------------------------------------------------------------------------------- misc


def test_runs_with_a_plain_interpreter_from_the_repository_root() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "authcli", "--version"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert (proc.returncode, proc.stdout.strip()) == (0, f"authcli {__version__}")
