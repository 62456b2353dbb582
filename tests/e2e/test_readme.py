"""Every shell command in the READMEs' ```sh blocks runs, as written, against a local stack this test starts.

A newcomer follows the READMEs line by line; so does this test. It reads the ```sh blocks of FILES, one
command per line (a trailing `\\` continues it, comment lines are skipped), and runs each file's commands
in order in one bash session at the repository root, as a person types them into one terminal: what a
command defines (`eval "$(… local.session)"`, `admin() { … }`) is there for the commands after it.

Every command is either run or named in SKIP with the reason it cannot run here (AWS only, long-running,
the whole suite); a new command is run unless it is added there. A command passes when it exits 0. Beyond
that:
- `curl` runs with `--fail-with-body` (from a `.curlrc`), so an HTTP error fails it — except where its
  own comment names the error status it shows (`# no token: 401`), which it must then get;
- a trailing comment that is a JSON object (`# {"status": "revoked"}`) is the answer's shape: the
  command's output must be a JSON object with the same members;
- a `$VARIABLE` that nothing defined before the line is a failure of the README (it is not run).

What stands in for the reader's own machine, and only that, comes from the test:
- `make serve`: the stack the test starts (its own, not the shared e2e one: the commands rotate the
  signing keys and end sessions); what `make serve` writes to .local/serve.json is written to a file of
  the test's, which the tools are pointed at (`LOCAL_SERVE_INFO`, `INVOKE_ARGS`, `AUTHCLI_SERVER`);
- the variables the README's `export TABLE_NAME=… …` line asks the reader to fill in;
- the placeholders of PLACEHOLDERS (an example id, someone's `sub`, the default address);
- the person: when `authcli login` prints its code, the demo user approves it (as on the page).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from local.stack import LocalStack, StackInfo
from tests.e2e.conftest import AccessLog, cognito_id_token

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FILES = (
    "README.md",
    "events/README.md",
    "bench/README.md",
    "examples/resource_server/README.md",
    "examples/web_app/README.md",
)
COMMAND_TIMEOUT = 90  # seconds for one command (a login waits for its approval)

# ---------------------------------------------------------------- the reviewed list of what cannot run here

# regex over a command (without its comment) -> why it is not run. Each entry must match a command.
SKIP: dict[str, str] = {
    r"^make serve(\s|$)": "long-running; the stack this test starts stands in for it",
    r"^make test$": "the whole suite, this test among it",
    r"^aws ": "AWS only: needs a deployed stack and AWS credentials",
    r"^make sam-build$": "builds the deployment artefacts (arm64 wheels); tests/integration/test_template.py runs sam build",
    r"^\.tools/sam/bin/sam (deploy|build) ": "deploys to AWS (a build for it); the templates are checked by sam validate in the tests",
    r"^export TABLE_NAME=… KEYS_SECRET_ID=… JWKS_SECRET_ID=…$": "placeholders for a deployed stack's outputs: the test sets them, and the AWS variables, from its own stack",
    r"^make bench(\s|$)": "the load benchmark: ~30 s of load against a stack of its own; a benchmark, not a test",
    r"^make bench-forged(\s|$)": "the forged-token benchmark: about 2 minutes; a benchmark, not a test",
}
# regex -> reason: commands that fail today for a known, reported reason (strict: fixed, the entry must go)
KNOWN_BROKEN: dict[str, str] = {}
# Text in a command that stands for something of the reader's own -> what the test puts there.
PLACEHOLDERS: dict[str, str] = {
    "http://127.0.0.1:3000": "api_url",  # make serve's default address: the test's stack
    "acme-cli-1a2b3c4d": "acme_client_id",  # "your client": one named Acme CLI, registered by the test
    "<the IdP's sub>": "someone",  # a person of the identity provider: a new user of the pool
    "<sub>": "someone",
    "9f…": "a_session_id",  # a live session of the demo user (as GET /auth/sessions lists it)
}
# Commands during which a person acts: regex -> what the test does when the command waits for it.
PEOPLE: dict[str, str] = {r"python -m authcli login\b": "approve_the_printed_code"}


# ---------------------------------------------------------------- reading the READMEs


@dataclass(frozen=True)
class Command:
    file: str
    line: int
    text: str  # as written, continuation lines joined

    @property
    def code(self) -> str:
        return split_comment(self.text)[0]

    @property
    def comment(self) -> str:
        return split_comment(self.text)[1]

    @property
    def id(self) -> str:
        return f"{self.file}:{self.line} {self.code[:60]}"


def split_comment(text: str) -> tuple[str, str]:
    """The command and its trailing comment: a `#` outside quotes, at the start or after a blank."""
    quote = ""
    escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[:i].rstrip(), text[i + 1 :].strip()
    return text.rstrip(), ""


def commands(file: str) -> list[Command]:
    lines = (ROOT / file).read_text(encoding="utf-8").splitlines()
    found: list[Command] = []
    in_block = False
    pending: tuple[int, str] | None = None
    for number, line in enumerate(lines, 1):
        fence = re.match(r"^\s*```(\w*)", line)
        if fence:
            in_block = not in_block and fence.group(1) in ("sh", "bash", "shell")
            pending = None
            continue
        if not in_block:
            continue
        if pending is not None:
            start, text = pending
            text = f"{text} {line.strip()}"
        else:
            start, text = number, line.strip()
        if text.endswith("\\"):
            pending = (start, text[:-1].rstrip())
            continue
        pending = None
        if text and not text.startswith("#"):
            found.append(Command(file, start, text))
    return found


ALL = [command for file in FILES for command in commands(file)]


def matching(table: dict[str, str], command: Command) -> list[str]:
    return [pattern for pattern in table if re.search(pattern, command.code)]


def params() -> list[Any]:
    out = []
    for command in ALL:
        marks = [
            pytest.mark.xfail(strict=True, reason=KNOWN_BROKEN[p]) for p in matching(KNOWN_BROKEN, command)
        ]
        out.append(pytest.param(command, id=command.id, marks=marks))
    return out


# ---------------------------------------------------------------- the terminal


@dataclass
class Result:
    status: int | None  # None: not run
    stdout: str = ""
    stderr: str = ""
    problem: str = ""  # why it was not run, or what went wrong around it


class Shell:
    """One bash session at the repository root: commands in order, each one's output in files of its own."""

    def __init__(self, env: dict[str, str], scratch: Path) -> None:
        self.scratch = scratch
        self.count = 0
        self._pending = b""
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a command that hangs is ended with it
        )

    def _send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((text + "\n").encode())
        self.process.stdin.flush()

    def _line(self, deadline: float, waiting: Callable[[], None] | None = None) -> str:
        """The shell's next line (read unbuffered: a line already read must not wait behind select)."""
        assert self.process.stdout is not None
        descriptor = self.process.stdout.fileno()
        while b"\n" not in self._pending:
            ready, _, _ = select.select([descriptor], [], [], 0.2)
            if ready:
                chunk = os.read(descriptor, 65536)
                if not chunk:
                    raise RuntimeError("the shell ended")
                self._pending += chunk
                continue
            if waiting is not None:
                waiting()
            if time.monotonic() > deadline:
                raise TimeoutError
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode(errors="replace")

    def undefined(self, names: list[str]) -> list[str]:
        if not names:
            return []
        self._send(f'for v in {" ".join(names)}; do [[ -v $v ]] || echo "undefined $v"; done; echo checked')
        missing = []
        deadline = time.monotonic() + 10
        while (line := self._line(deadline)) != "checked":
            missing.append(line.removeprefix("undefined "))
        return missing

    def run(self, code: str, curlrc: str, waiting: Callable[[Path], None] | None = None) -> Result:
        self.count += 1
        out, err = self.scratch / f"{self.count}.out", self.scratch / f"{self.count}.err"
        home = self.scratch / f"{self.count}.curl"
        home.mkdir()
        (home / ".curlrc").write_text(curlrc)
        self._send(f"cd {ROOT} && export CURL_HOME={home}")
        self._send(f'{{ {code}\n}} >{out} 2>{err} </dev/null; echo "rc $?"')
        deadline = time.monotonic() + COMMAND_TIMEOUT
        try:
            line = self._line(deadline, (lambda: waiting(out)) if waiting else None)
        except TimeoutError:
            self.close()
            return Result(None, out.read_text(), err.read_text(), f"no answer in {COMMAND_TIMEOUT} s")
        assert line.startswith("rc "), line
        return Result(int(line[3:]), out.read_text(errors="replace"), err.read_text(errors="replace"))

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


# ---------------------------------------------------------------- the reader's machine, and the person


@dataclass
class Reader:
    """The stack, the placeholders' values, and one shell per README, run in order."""

    local: LocalStack
    info: StackInfo
    scratch: Path
    env: dict[str, str]
    shells: dict[str, Shell] = field(default_factory=dict)
    results: dict[Command, Result] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    # placeholders
    def api_url(self) -> str:
        return self.info.api_url

    def acme_client_id(self) -> str:
        if "acme" not in self.values:
            from local import admin

            created = admin.create_client(
                self.store(),
                name="Acme CLI",
                client_type="public",
                grant_types=["device_code", "refresh_token"],
                scopes=["read", "write"],
            )
            self.values["acme"] = str(created["client_id"])
        return self.values["acme"]

    def someone(self) -> str:
        if "someone" not in self.values:
            created = self.cognito().admin_create_user(
                UserPoolId=self.info.user_pool_id,
                Username="someone@example.com",
                UserAttributes=[{"Name": "email", "Value": "someone@example.com"}],
                MessageAction="SUPPRESS",
            )["User"]
            self.values["someone"] = next(
                str(a["Value"]) for a in created["Attributes"] if a["Name"] == "sub"
            )
        return self.values["someone"]

    def a_session_id(self) -> str:
        listed = requests.get(
            f"{self.info.api_url}/auth/sessions",
            headers={"authorization": f"Bearer {self.id_token()}"},
            timeout=10,
        )
        assert listed.status_code == 200, listed.text
        sessions = listed.json()["sessions"]
        assert sessions, "the demo user has no live session to end"
        return str(sessions[0]["id"])

    # the person
    def approve_the_printed_code(self, out: Path) -> None:
        found = re.search(
            r"\b([B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4})\b", out.read_text(errors="replace")
        )
        if found is None or found.group(1) in self.values.values():
            return
        code = found.group(1)
        self.values[f"approved {code}"] = code
        decided = requests.post(
            f"{self.info.api_url}/oauth/device/verify",
            json={
                "user_code": code,
                "decision": "approve",
                "organization_id": self.info.demo.organization_id,
            },
            headers={"authorization": f"Bearer {self.id_token()}"},
            timeout=10,
        )
        assert decided.status_code == 200, decided.text

    # helpers
    def id_token(self) -> str:
        return cognito_id_token(self.info, self.info.demo.username, self.info.demo.password)

    def cognito(self) -> Any:
        return boto3.client(
            "cognito-idp",
            endpoint_url=self.info.aws_endpoint_url,
            region_name=self.info.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def store(self) -> Any:
        from authcore.store import Store

        ddb = boto3.client(
            "dynamodb",
            endpoint_url=self.info.aws_endpoint_url,
            region_name=self.info.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        return Store(ddb, self.info.table_name)

    # running
    def result(self, command: Command) -> Result:
        # what the reader typed before it, in order (as collected: the file may change during the run)
        for earlier in [c for c in ALL if c.file == command.file]:
            if earlier not in self.results:
                self.results[earlier] = self._run(earlier)
            if earlier == command:
                break
        return self.results[command]

    def _run(self, command: Command) -> Result:
        if matching(SKIP, command):
            return Result(None, problem="skipped")
        code = command.code
        for text, name in PLACEHOLDERS.items():
            if text in code:
                code = code.replace(text, getattr(self, name)())
        if re.search(r"…|<[a-z][^<>]*>", code):
            return Result(None, problem=f"a placeholder the test does not know: {code}")
        shell = self.shells.get(command.file)
        if shell is None:
            shell = self.shells[command.file] = Shell(self.env, self.scratch / f"shell-{len(self.shells)}")
            shell.scratch.mkdir()
        assigned = set(re.findall(r"\b([A-Za-z_]\w*)=", code))
        used = sorted(set(re.findall(r"\$\{?([A-Za-z_]\w*)", code)) - assigned)
        missing = shell.undefined(used)
        if missing:
            return Result(
                None, problem=f"uses ${', $'.join(missing)}, which nothing before this line defines"
            )
        person = next((getattr(self, PEOPLE[p]) for p in PEOPLE if re.search(p, code)), None)
        return shell.run(code, curlrc="fail-with-body\n", waiting=person)

    def close(self) -> None:
        for shell in self.shells.values():
            shell.close()


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reader]:
    scratch = tmp_path_factory.mktemp("readme")
    info_file = scratch / "serve.json"
    # A stack of its own (see the module's docstring), as `make serve` runs it: with the examples. Polling
    # every second, so that a login does not wait 5 s for the poll after its approval.
    local = LocalStack(
        port=0,
        concurrency=2,
        access_log=AccessLog(),
        info_file=info_file,
        examples=True,
        parameters={"PollIntervalSeconds": "1"},
    )
    info = local.start()
    config = scratch / "config"
    config.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUTHCLI_", "AWS_", "PYTEST_", "CURL_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        # the reader's make serve is the test's stack: its .local/serve.json is this file
        LOCAL_SERVE_INFO=str(info_file),
        INVOKE_ARGS=f"--info-file {info_file}",
        AUTHCLI_SERVER=info.api_url,  # what authcli would read from .local/serve.json
        AUTHCLI_CLIENT_ID=info.clients.public.client_id,
        XDG_CONFIG_HOME=str(config),  # the CLI's credentials: not the developer's
        # the README's `export TABLE_NAME=… KEYS_SECRET_ID=… JWKS_SECRET_ID=…`, and the AWS variables
        TABLE_NAME=info.table_name,
        KEYS_SECRET_ID=info.keys_secret_id,
        JWKS_SECRET_ID=info.jwks_secret_id,
        AWS_ENDPOINT_URL=info.aws_endpoint_url,
        AWS_REGION=info.region,
        AWS_DEFAULT_REGION=info.region,
        AWS_ACCESS_KEY_ID="local",
        AWS_SECRET_ACCESS_KEY="local",
    )
    reading = Reader(local, info, scratch, env)
    try:
        yield reading
    finally:
        reading.close()
        local.stop()


# ---------------------------------------------------------------- the tests


@pytest.mark.parametrize("command", params())
def test_the_command_runs_as_written(reader: Reader, command: Command) -> None:
    skipped = matching(SKIP, command)
    if skipped:
        pytest.skip(SKIP[skipped[0]])
    if command.code.startswith("make invoke") and not (ROOT / ".tools" / "lambda" / ".installed").exists():
        pytest.skip("the Lambda runtime is not installed here (make lambda-runtime)")
    result = reader.result(command)
    said = f"{command.file}:{command.line}: {command.text}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-3000:]}"
    assert result.status is not None, f"{result.problem}\n{said}"
    wanted = re.search(r"\b([45]\d\d)\b", command.comment) if command.code.startswith("curl ") else None
    if wanted:  # the comment names the HTTP error it shows: curl --fail-with-body exits 22 with it
        assert result.status == 22 and wanted.group(1) in result.stdout, said
    else:
        assert result.status == 0, said
    shape = answer_shape(command.comment)
    if shape is not None:
        answer = json.loads(result.stdout)
        assert isinstance(answer, dict) and set(answer) == shape, said


def answer_shape(comment: str) -> set[str] | None:
    try:
        shown = json.loads(comment)
    except ValueError:
        return None
    return set(shown) if isinstance(shown, dict) else None


def test_every_command_is_found_and_the_lists_are_not_stale() -> None:
    """The reader above sees the blocks (a change of fence or format would otherwise skip everything),
    and every entry of the reviewed lists still names a command."""
    assert len(ALL) > 30
    assert any(c.code == "python -m authcli login" for c in ALL)
    for table in (SKIP, KNOWN_BROKEN, PEOPLE):
        stale = [p for p in table if not any(re.search(p, c.code) for c in ALL)]
        assert stale == [], "entries that match no command any more: remove them"
    stale_placeholders = [text for text in PLACEHOLDERS if not any(text in c.code for c in ALL)]
    assert stale_placeholders == []
    doubly = [c.id for c in ALL if len(matching(SKIP, c)) + len(matching(KNOWN_BROKEN, c)) > 1]
    assert doubly == []


def test_the_reader_splits_comments_and_continuations_as_bash_does() -> None:
    assert split_comment('curl -d "a # b" x   # a comment') == ('curl -d "a # b" x', "a comment")
    assert split_comment("echo a#b") == ("echo a#b", "")
    assert split_comment('make bench   # {"a": 1}') == ("make bench", '{"a": 1}')
    deploy = [c for c in commands("examples/resource_server/README.md") if "sam deploy" in c.code]
    assert deploy and deploy[0].code.endswith("TokenIssuer=https://auth.example.com")


def test_a_broken_line_fails_this_test(reader: Reader) -> None:
    """The machinery can fail: lines a README must not have, run as the README's lines are."""
    undefined = reader._run(Command("synthetic.md", 1, 'curl -s "$NEVER_DEFINED/auth/sessions"'))
    assert undefined.status is None and "$NEVER_DEFINED" in undefined.problem
    http_error = reader._run(Command("synthetic.md", 2, "curl -s http://127.0.0.1:3000/auth/sessions"))
    assert http_error.status == 22  # 401 without an ID token: --fail-with-body makes it a failure
    assert '"type": "unauthorized"' in http_error.stdout.replace('":"', '": "')
    assert reader._run(Command("synthetic.md", 3, "python -m authcli whoami --no-such-option")).status == 2
    unknown = reader._run(Command("synthetic.md", 4, "admin clients disable <your client>"))
    assert unknown.status is None and "placeholder" in unknown.problem
    assert answer_shape('{"status": "revoked", "count": 2}') == {"status", "count"}
    assert answer_shape("{…}") is None
