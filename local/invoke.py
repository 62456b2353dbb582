"""The functions on the real Lambda runtime, on this machine, without Docker (`make invoke`).

    python -m local.invoke [FUNCTION] [--event FILE] [--info-file .local/serve.json]

`sam local invoke` runs a function in Lambda's container image, which needs Docker. This runs the same two
programs that image runs, directly: the Runtime Interface Emulator (`aws-lambda-rie`, which the SAM CLI
ships for x86_64 and arm64) serves the Lambda Runtime API and starts `python -m awslambdaric <handler>`
(AWS's runtime interface client, the real bootstrap) in the function's task root, its CodeUri. The layer
is on the path as Lambda mounts it (its `python/` directory), awslambdaric beside it as Lambda's own
runtime directory, never in the function's or the layer's directory. An invocation is a POST of the event
to the emulator; the runtime stays warm between invocations, as an execution environment does. Everything
comes from .tools/lambda, which `make lambda-runtime` builds (mk/invoke.mk; `make invoke` and `make test`
depend on it).

`make invoke` runs one event through one function, as `sam local invoke -e` does: the function's logs on
stderr, its answer (JSON) on stdout. The function gets its environment from template.yaml (Globals and its
own), resolved to the resources of a local stack (local.stack): the running `make serve` that
.local/serve.json describes, or, when none runs, one it starts itself for the invocation. Placeholders of
events/ (`{{device_code}}`, `{{refresh_token}}`, ...; events/README.md) are filled with live values made
against that stack through its HTTP API and its Cognito user pool; one that cannot be made there is left
as it is, and said so on stderr.

For the local stack and the tests: `Emulator` (one execution environment of one function) and `Runtimes`
(emulators per function behind the `invoke(code_uri, handler, event, function)` of
`local.workers.Environments`, for `make serve ARGS="--runtime lambda"`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from local.workers import InvocationError, InvocationTimeout

ROOT = Path(__file__).resolve().parent.parent
LAMBDA_DIR = ROOT / ".tools" / "lambda"
EMULATOR = LAMBDA_DIR / "aws-lambda-rie"  # a link to the SAM CLI's emulator for this architecture
INTERPRETER = LAMBDA_DIR / "python" / "bin" / "python"  # Python 3.13 with nothing installed
LAYER = LAMBDA_DIR / "layer" / "python"  # the layer's python/ (Lambda: /opt/python)
RUNTIME_DIR = LAMBDA_DIR / "runtime"  # awslambdaric (Lambda: /var/runtime)
EVENTS = ROOT / "events"
DEFAULT_INFO_FILE = ROOT / ".local" / "serve.json"
INVOCATIONS = "/2015-03-31/functions/function/invocations"
PYTHON_RUNTIME = "python3.13"
EVENTS_ORIGIN = "https://app.example.test"  # the browser origin the events name (events/README.md)
EXIT_USAGE = 2

# Host variables a process needs to run; everything else comes from the template and the stack.
_HOST_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR")
# What the emulator answers when the runtime overran the function's timeout.
_TIMED_OUT = re.compile(rb"^Task timed out after [0-9.]+ seconds$")
_ERROR_KEYS = {"errorMessage", "errorType", "requestId", "stackTrace"}


def unavailable() -> str | None:
    """Why the Lambda runtime cannot run here, or None when it can."""
    for path, what in (
        (EMULATOR, "the Runtime Interface Emulator"),
        (INTERPRETER, "the runtime's Python"),
        (RUNTIME_DIR / "awslambdaric", "awslambdaric"),
        (LAYER / "authcore", "the layer"),
    ):
        if not path.exists():
            return (
                f"{what} is not installed ({path.relative_to(ROOT)} is missing): `make lambda-runtime` "
                "installs the Lambda runtime (mk/invoke.mk)"
            )
    return None


# ---------------------------------------------------------------- one function's configuration


@dataclass(frozen=True)
class Function:
    """A function as Lambda runs it: its task root (CodeUri), handler, limits and environment (the
    template's variables, resolved: `local.stack.function_environments`)."""

    name: str
    code_uri: str
    handler: str
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout: int = 10
    memory_size: int = 512

    @classmethod
    def from_info(cls, name: str, info: Mapping[str, Any]) -> Function:
        """From an entry of `StackInfo.functions` (.local/serve.json's "functions")."""
        return cls(
            name=name,
            code_uri=str(info["code_uri"]),
            handler=str(info["handler"]),
            environment={str(k): str(v) for k, v in info["environment"].items()},
            timeout=int(info.get("timeout", 10)),
            memory_size=int(info.get("memory_size", 512)),
        )

    @property
    def task_root(self) -> Path:
        return (ROOT / self.code_uri).resolve()

    def process_environment(self) -> dict[str, str]:
        """The runtime process's environment: the function's variables and what Lambda itself sets."""
        env = {name: os.environ[name] for name in _HOST_ENV if name in os.environ}
        env.update(self.environment)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": self.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_size),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(self.timeout),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": "local",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{PYTHON_RUNTIME}",
                "LAMBDA_TASK_ROOT": str(self.task_root),
                "LAMBDA_RUNTIME_DIR": str(RUNTIME_DIR),
                "_HANDLER": self.handler,
                "TZ": ":UTC",
                # Lambda's search path: the task root (the working directory, first for `-m`), the
                # layer's python/lib/<runtime>/site-packages and python/, then the runtime's own modules.
                "PYTHONPATH": os.pathsep.join(
                    [str(LAYER / "lib" / PYTHON_RUNTIME / "site-packages"), str(LAYER), str(RUNTIME_DIR)]
                ),
                "PYTHONNOUSERSITE": "1",
            }
        )
        env.setdefault("AWS_SESSION_TOKEN", "testing")  # Lambda's credentials are a role's: a session
        return env


# ---------------------------------------------------------------- the processes


class _Watchdog:
    """A process of its own that kills the emulators' process groups if this process dies without
    stopping them (SIGKILL, a crash): it reads the groups to watch from a pipe, and its end of the pipe
    reaching end-of-file means that this process is gone."""

    _SOURCE = (
        "import os, signal, sys\n"
        "groups = set()\n"
        "for line in sys.stdin:\n"
        "    (groups.add if line[0] == '+' else groups.discard)(int(line[1:]))\n"
        "for group in groups:\n"
        "    try:\n"
        "        os.killpg(group, signal.SIGKILL)\n"
        "    except OSError:\n"
        "        pass\n"
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[str] | None = None

    def _tell(self, line: str) -> None:
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self._process = subprocess.Popen(  # noqa: S603 - our own code, fixed arguments
                    [sys.executable, "-c", self._SOURCE],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                    start_new_session=True,  # a Ctrl-C in the terminal is not its business
                )
            assert self._process.stdin is not None
            with contextlib.suppress(OSError):
                self._process.stdin.write(f"{line}\n")
                self._process.stdin.flush()

    def watch(self, group: int) -> None:
        self._tell(f"+{group}")

    def forget(self, group: int) -> None:
        self._tell(f"-{group}")


_WATCHDOG = _Watchdog()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Emulator:
    """One execution environment of one function: the Runtime Interface Emulator on a loopback port,
    running `python -m awslambdaric <handler>` in the function's task root. The runtime starts (its cold
    start) at the first invocation and stays warm. One invocation at a time (the emulator, like an
    execution environment, serves one); `invoke` from several threads queues on a lock.

    `output`: where the emulator's output goes (the runtime's stdout and stderr, and the emulator's
    START, END and REPORT lines): a file, a file descriptor, or None (this process's stdout)."""

    def __init__(self, function: Function, output: IO[Any] | int | None = None) -> None:
        self.function = function
        self.output = output
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{INVOCATIONS}"

    def spawn(self) -> None:
        """Start the emulator; `wait_ready` waits until it listens (apart, so that several start at once)."""
        reason = unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        if not (self.function.task_root / f"{self.function.handler.rpartition('.')[0]}.py").is_file():
            raise RuntimeError(f"{self.function.name}: no handler module in {self.function.code_uri}")
        self.port = _free_port()
        self.process = subprocess.Popen(  # noqa: S603 - fixed programs from .tools/lambda
            [
                str(EMULATOR),
                "--log-level",
                "error",
                "--runtime-interface-emulator-address",
                f"127.0.0.1:{self.port}",
                "--runtime-api-address",
                f"127.0.0.1:{_free_port()}",
                str(INTERPRETER),
                "-m",
                "awslambdaric",
                self.function.handler,
            ],
            cwd=self.function.task_root,
            env=self.function.process_environment(),
            stdin=subprocess.DEVNULL,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its runtime, never by a Ctrl-C
        )
        _WATCHDOG.watch(self.process.pid)

    def wait_ready(self, timeout: float = 10) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.function.name}: the emulator exited with status {self.process.returncode}"
                )
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.5):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.function.name}: the emulator did not listen in {timeout:g} s")
            time.sleep(0.02)

    def start(self) -> Emulator:
        for attempt in range(3):  # a port taken between choosing it and binding it: choose again
            self.spawn()
            try:
                self.wait_ready()
                return self
            except RuntimeError:
                self.stop()
                if attempt == 2:
                    raise
        return self

    def invoke_raw(self, event: Any) -> bytes:
        """POST the event; the emulator's answer as it came (the function's result, or its error)."""
        data = json.dumps(event).encode()
        with self._lock:
            if self.process is None or self.process.poll() is not None:
                self.stop()
                self.start()  # an environment that died is replaced, as Lambda replaces it
            request = urllib.request.Request(self.url, data=data, method="POST")  # noqa: S310 - loopback
            request.add_header("content-type", "application/json")
            try:
                with urllib.request.urlopen(request, timeout=self.function.timeout + 10) as response:  # noqa: S310
                    return bytes(response.read())
            except urllib.error.HTTPError as exc:  # a runtime that failed to start: Lambda's error document
                return bytes(exc.read())
            except OSError as exc:
                self.stop()  # the emulator failed (it panics on a broken invocation): start afresh next time
                raise InvocationError(
                    f"{self.function.name}: the execution environment failed: {exc}"
                ) from exc

    def invoke(self, event: Any) -> Any:
        """The function's result; `InvocationTimeout` when it overran its timeout, `InvocationError` when
        it raised (Lambda's error document) or its environment failed."""
        raw = self.invoke_raw(event)
        if _TIMED_OUT.match(raw.strip()):
            raise InvocationTimeout(f"{self.function.name}: {raw.decode().strip()}")
        try:
            result = json.loads(raw)
        except ValueError:
            raise InvocationError(f"{self.function.name}: not JSON: {raw[:200]!r}") from None
        if isinstance(result, dict) and "errorType" in result and set(result) <= _ERROR_KEYS:
            raise InvocationError(
                f"{self.function.name}: {result['errorType']}: {result.get('errorMessage')}"
            )
        return result

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGTERM)  # the emulator and the runtime it started
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # a runtime that outlived its emulator
        _WATCHDOG.forget(process.pid)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_all(emulators: Sequence[Emulator]) -> None:
    """Start several emulators at once (each listens within a few milliseconds; the runtimes start at
    their first invocation). On failure every one of them is stopped."""
    try:
        for emulator in emulators:
            emulator.spawn()
        for emulator in emulators:
            try:
                emulator.wait_ready()
            except RuntimeError:  # e.g. a port taken meanwhile: once more, alone
                emulator.stop()
                emulator.start()
    except BaseException:
        for emulator in emulators:
            emulator.stop()
        raise


class Runtimes:
    """The functions of the local stack on the Lambda runtime: `per_function` emulators for each
    function, and `invoke(code_uri, handler, event, function)` as `local.workers.Environments` has it,
    which blocks until one of that function's environments is free."""

    def __init__(
        self, functions: Sequence[Function], per_function: int = 1, output: IO[Any] | int | None = None
    ) -> None:
        self.functions = {f.name: f for f in functions}
        self._idle: dict[str, queue.Queue[Emulator]] = {}
        self._all: list[Emulator] = []
        for function in functions:
            self._idle[function.name] = queue.Queue()
            for _ in range(max(1, per_function)):
                self._all.append(Emulator(function, output))
        start_all(self._all)
        for emulator in self._all:
            self._idle[emulator.function.name].put(emulator)

    def invoke(self, code_uri: str, handler: str, event: dict[str, Any], function_name: str = "local") -> Any:
        idle = self._idle.get(function_name)
        if idle is None:
            raise InvocationError(f"{function_name}: no execution environment (its code did not load)")
        emulator = idle.get()
        try:
            return emulator.invoke(event)
        finally:
            idle.put(emulator)

    def pids(self) -> list[int]:
        return [e.process.pid for e in self._all if e.process is not None]

    def close(self) -> None:
        for emulator in self._all:
            emulator.stop()

    def __enter__(self) -> Runtimes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------- events and their routes


def route_of(event: Mapping[str, Any]) -> tuple[str, str]:
    http = (event.get("requestContext") or {}).get("http") or {}
    return str(http.get("method", "")).upper(), str(event.get("rawPath", ""))


def function_of_event(template: dict[str, Any], event: Mapping[str, Any]) -> str | None:
    """The function API Gateway would send this HTTP API event to (its route, else the $default route)."""
    from local import template as tpl

    method, path = route_of(event)
    key = str(event.get("routeKey") or "")  # API Gateway's route key: `DELETE /auth/sessions/{id}`
    default = None
    for spec in tpl.functions(template):
        for route in spec.routes:
            if route.path == tpl.DEFAULT_ROUTE:
                default = spec.logical_id
            elif f"{route.method} {route.path}" == key or (
                route.path == path and route.method in (method, "ANY")
            ):
                return spec.logical_id
    return default if event.get("routeKey") == tpl.DEFAULT_ROUTE else None


def events_by_function(template: dict[str, Any]) -> dict[str, list[Path]]:
    out: dict[str, list[Path]] = {}
    for path in sorted(EVENTS.glob("*.json")):
        with contextlib.suppress(OSError, ValueError):
            function = function_of_event(template, json.loads(path.read_text()))
            if function is not None:
                out.setdefault(function, []).append(path)
    return out


# ---------------------------------------------------------------- live values for the placeholders

PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
# Placeholders no request to the local stack can fill, and why.
UNFILLABLE = {
    "multi_user_id_token": "the local stack has one demo user, a member of one organization; this event "
    "needs a user of two (the tests' multi_user)",
    "expired_id_token": "Cognito signs only fresh ID tokens; this event needs one that expired (the tests "
    "sign it with their own identity provider)",
}


def _http(
    url: str,
    *,
    form: Mapping[str, str] | None = None,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any]:
    data = None
    all_headers = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
        all_headers["content-type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
        all_headers["content-type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=all_headers, method="POST" if data else "GET")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - the local stack
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read() or b"null")


class LiveState:
    """Live values made against a running local stack (its `StackInfo` as a dict), the way a person
    makes them: a device flow of the public client through the HTTP API, the demo user signed in to
    the stack's Cognito user pool. Each value is made once and kept."""

    def __init__(self, info: Mapping[str, Any]) -> None:
        self.info = info
        self.api = str(info["api_url"])
        self._made: dict[str, str] = {}

    def _expect(self, what: str, status: int, answer: Any) -> Any:
        if status != 200:
            raise RuntimeError(f"making {what} against {self.api} failed: {status} {answer}")
        return answer

    def id_token(self) -> str:
        if "id_token" not in self._made:
            import boto3

            cognito = boto3.client(
                "cognito-idp",
                endpoint_url=self.info["aws_endpoint_url"],
                region_name=self.info["region"],
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            result = cognito.initiate_auth(
                ClientId=self.info["user_pool_client_id"],
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={
                    "USERNAME": self.info["demo"]["username"],
                    "PASSWORD": self.info["demo"]["password"],
                },
            )
            self._made["id_token"] = str(result["AuthenticationResult"]["IdToken"])
        return self._made["id_token"]

    def device(self, approved: bool) -> dict[str, str]:
        """A device request of the public client: pending, or approved by the demo user."""
        client_id = self.info["clients"]["public"]["client_id"]
        started = self._expect(
            "a device code", *_http(f"{self.api}/oauth/device/code", form={"client_id": client_id})
        )
        if approved:
            self._expect(
                "an approval",
                *_http(
                    f"{self.api}/oauth/device/verify",
                    body={"user_code": started["user_code"], "decision": "approve"},
                    headers={"authorization": f"Bearer {self.id_token()}"},
                ),
            )
        return {"device_code": str(started["device_code"]), "user_code": str(started["user_code"])}

    def refresh_token(self) -> str:
        """A signed-in session's refresh token: a whole device flow, then the product exchange."""
        device = self.device(approved=True)
        client_id = self.info["clients"]["public"]["client_id"]
        answer = self._expect(
            "a session",
            *_http(
                f"{self.api}/auth/device/exchange",
                body={"device_code": device["device_code"], "client_id": client_id},
            ),
        )
        return str(answer["refresh_token"])

    def rotated_refresh_token(self) -> str:
        """A refresh token two rotations old (its family goes on with a newer one)."""
        first = current = self.refresh_token()
        for _ in range(2):
            answer = self._expect(
                "a rotation", *_http(f"{self.api}/auth/refresh", body={"refresh_token": current})
            )
            current = str(answer["refresh_token"])
        return first


def _documented_approved(event_file: Path) -> bool:
    """events/README.md says whether the file's `{{device_code}}` is pending or approved."""
    readme = EVENTS / "README.md"
    if event_file.resolve().parent != EVENTS.resolve() or not readme.is_file():
        return False
    prefix = f"- **{event_file.stem}**"
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith(prefix):
            return "`{{device_code}}` (approved)" in line
    return False


def fill(text: str, event_file: Path, live: LiveState) -> tuple[str, list[str]]:
    """The event's text with its placeholders filled, and notes on what could not be (or was adapted)."""
    notes: list[str] = []
    names = sorted(set(PLACEHOLDER.findall(text)))
    values: dict[str, str] = {}
    if {"device_code", "user_code"} & set(names):
        values |= live.device(approved="device_code" in names and _documented_approved(event_file))
    for name in names:
        if name in values:
            continue
        if name == "refresh_token":
            values[name] = live.refresh_token()
        elif name == "rotated_refresh_token":
            values[name] = live.rotated_refresh_token()
        elif name == "session_id":  # a live session of the demo user: the grant its refresh token names
            from authcore import tokens

            parsed = tokens.parse_refresh_token(live.refresh_token())
            assert parsed is not None, "the stack issued a refresh token of the documented shape"
            values[name] = parsed.grant_id
        elif name == "id_token":
            values[name] = live.id_token()
        elif name == "client_secret":
            confidential = live.info["clients"]["confidential"]
            values[name] = str(confidential["client_secret"])
            if "client_id=backend" in text:  # the tests' confidential client; the local stack has its own
                text = text.replace("client_id=backend", f"client_id={confidential['client_id']}")
                notes.append(
                    f"client_id backend (the tests' confidential client) is sent as {confidential['client_id']}, "
                    "the local stack's"
                )
        elif name in UNFILLABLE:
            notes.append(f"{{{{{name}}}}} cannot be filled: {UNFILLABLE[name]}. It is sent as it is.")
        else:
            notes.append(f"{{{{{name}}}}} is no placeholder this runner knows; it is sent as it is.")
    for name, value in values.items():
        text = text.replace(f"{{{{{name}}}}}", value)
    return text, notes


# ---------------------------------------------------------------- the stack to invoke against


def running_stack(info_file: Path) -> dict[str, Any] | None:
    """What a running `make serve` wrote, when it still runs; None otherwise."""
    try:
        info: dict[str, Any] = json.loads(info_file.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    parts = urllib.parse.urlsplit(str(info.get("api_url", "")))
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), 2):
            pass
    except OSError:
        return None
    return info


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Processes started meanwhile write their stdout to this process's stderr: stdout is the answer's."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


@contextlib.contextmanager
def local_stack(info_file: Path) -> Iterator[dict[str, Any]]:
    """The running `make serve`'s stack, or one started here for as long as the block runs."""
    info = running_stack(info_file)
    if info is not None:
        if "functions" not in info:
            raise RuntimeError(
                f"the make serve that wrote {info_file} predates make invoke: restart it, or stop it to "
                "let make invoke start a stack of its own"
            )
        print(f"local.invoke: against the running make serve ({info['api_url']})", file=sys.stderr)
        yield info
        return
    from local.stack import LocalStack

    print("local.invoke: no make serve runs: starting a local stack for this invocation", file=sys.stderr)
    stack = LocalStack(port=0, concurrency=1, allowed_origins=[EVENTS_ORIGIN], access_log=sys.stderr)
    try:
        with _stdout_to_stderr():
            started = stack.start()
        yield started.to_dict()
    finally:
        with _stdout_to_stderr():
            stack.stop()


# ---------------------------------------------------------------- make invoke


def _listing(by_function: Mapping[str, list[Path]], names: Sequence[str]) -> str:
    lines = ["functions (template.yaml) and their events (events/):"]
    for name in names:
        files = by_function.get(name, [])
        shown = ", ".join(p.name for p in files[:3]) + (
            f", ... ({len(files)} in all)" if len(files) > 3 else ""
        )
        lines.append(f"  {name:<28} {shown or '(no event in events/)'}")
    lines.append("usage: make invoke FN=<function> [EVENT=events/<file>.json]")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m local.invoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("function", nargs="?", help="the function's logical id in template.yaml")
    parser.add_argument(
        "-e", "--event", type=Path, help="the event (default: the function's first in events/)"
    )
    parser.add_argument(
        "--info-file",
        type=Path,
        default=DEFAULT_INFO_FILE,
        help="where a running make serve describes itself",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from local import template as tpl

    args = parse_args(argv)
    template = tpl.load_template()
    names = [spec.logical_id for spec in tpl.functions(template)]
    by_function = events_by_function(template)
    event_file: Path | None = args.event
    if event_file is not None and not event_file.is_file():
        print(f"error: no event file {event_file}", file=sys.stderr)
        return EXIT_USAGE
    name = args.function
    if name is None and event_file is not None:  # the function that serves the event's route
        with contextlib.suppress(ValueError):
            name = function_of_event(template, json.loads(event_file.read_text()))
    if name is None or name not in names:
        problem = f"no function {name!r} in template.yaml" if name else "which function?"
        print(f"error: {problem}\n{_listing(by_function, names)}", file=sys.stderr)
        return EXIT_USAGE
    if event_file is None:
        if not by_function.get(name):
            print(f"error: events/ has no event for {name}: give one with EVENT=<file>", file=sys.stderr)
            return EXIT_USAGE
        event_file = by_function[name][0]
    reason = unavailable()
    if reason is not None:
        print(f"error: {reason}", file=sys.stderr)
        return EXIT_USAGE

    try:
        with local_stack(args.info_file) as info:
            text, notes = fill(event_file.read_text(encoding="utf-8"), event_file, LiveState(info))
            event = json.loads(text)
            function = Function.from_info(name, info["functions"][name])
            origin = (event.get("headers") or {}).get("origin")
            allowed = function.environment.get("ALLOWED_ORIGINS", "").split(",")
            if origin and "ALLOWED_ORIGINS" in function.environment and origin not in allowed:
                notes.append(
                    f"the event's Origin {origin} is not among this stack's ALLOWED_ORIGINS; start make serve "
                    f'with ARGS="--allow-origin {origin}" for the answer events/README.md documents'
                )
            for note in notes:
                print(f"local.invoke: note: {note}", file=sys.stderr)
            print(f"local.invoke: invoking {name} with {event_file}", file=sys.stderr, flush=True)
            sys.stderr.flush()
            with Emulator(function, output=sys.stderr.fileno()) as emulator:
                raw = emulator.invoke_raw(event)
    except (RuntimeError, InvocationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(raw.decode("utf-8", "replace").strip() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
