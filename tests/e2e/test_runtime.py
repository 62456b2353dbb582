"""The functions on the real Lambda runtime (local.invoke: the Runtime Interface Emulator running
awslambdaric, the layer on Lambda's path), as `sam local invoke` would run them without Docker.

1. Every events/*.json, once, through its function's runtime, with the expectations and checks of
   tests/integration/test_events.py (its `test_event`, whose `EXPECTED` table names each file's status and
   error): the live state a placeholder needs is made by real invocations of the same runtimes, against an
   embedded AWS endpoint in a process of its own (a moto server), seeded as the integration suite seeds its
   account. Each function's environment is template.yaml's (Globals and its own), resolved to those
   resources. One emulator per function serves all of that function's events: the runtime starts cold
   once and stays warm, which the emulator's REPORT lines show.
2. `LocalStack(runtime="lambda")` (`make serve ARGS="--runtime lambda"`): a device flow over HTTP, and
   `python -m local.invoke` (`make invoke`) against it.

Skipped, naming the reason, where the runtime is not installed (`make lambda-runtime`; `make test` installs
it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from authcore import routes
from local import invoke, lambda_host
from local import template as tpl
from local.cfn import Resolver
from local.invoke import Emulator, Function
from local.lambda_host import HttpResult
from local.moto_server import MotoServer
from local.stack import ACCOUNT_ID, LocalStack, StackInfo, function_environments, function_limits
from tests import conftest
from tests.conftest import Api
from tests.e2e.conftest import AccessLog, cognito_id_token
from tests.integration import test_events as events_suite
from tests.support import aws, jwt_check
from tests.support import idp as test_idp

_MISSING = invoke.unavailable()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))]

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# template.yaml's logical ids of the resources the functions' environment names
RESOURCES = {
    "Table": conftest.TABLE,
    "KeysSecret": conftest.SECRET,
    "KeysPublicSecret": aws.JWKS_SECRET,
    "HttpApi": "local",
}


# ---------------------------------------------------------------- every event, on the runtime


@dataclass
class Runtime:
    """The emulators of the functions that have events, and the seed of their account."""

    emulators: dict[str, Emulator]  # logical id -> its one execution environment
    logs: dict[str, Path]  # logical id -> what its emulator printed
    seed: aws.Seed
    by_directory: dict[str, str]  # functions/<directory> -> logical id


class RuntimeApi(Api):
    """tests.conftest.Api, whose every request goes to its function's emulator instead of a handler
    imported in this process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def send(self, event: dict[str, Any]) -> HttpResult:
        directory = routes.BY_KEY.get(event["routeKey"], routes.BY_KEY[routes.DEFAULT]).function
        name = self.runtime.by_directory[directory]
        emulator = self.runtime.emulators[name]
        return lambda_host.invoke(lambda e, _context: emulator.invoke(e), event, name)


def _environments(endpoint: str) -> dict[str, dict[str, str]]:
    """Each function's variables from template.yaml, resolved to the tests' resources: the issuer, the
    allowed origin and the identity provider the events are written for."""
    template = tpl.load_template()
    resolver = Resolver(
        template,
        parameters={
            "Issuer": conftest.ISSUER,
            "AllowedOrigins": conftest.ORIGIN,
            "AuthIssuer": test_idp.ISSUER,
            "AuthAudience": test_idp.AUDIENCE,
        },
        region=aws.REGION,
        account_id=ACCOUNT_ID,
    )
    resolver.refs.update(RESOURCES)
    environments = function_environments(template, resolver, endpoint)
    for variables in environments.values():
        if variables.get("AUTH_ISSUER") == test_idp.ISSUER:  # its JWKS is served on 127.0.0.1
            variables["AUTH_JWKS_URI"] = test_idp.IDP.jwks_uri
    return environments


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    logs_dir = tmp_path_factory.mktemp("runtime-logs")
    template = tpl.load_template()
    specs = {spec.logical_id: spec for spec in tpl.functions(template)}
    with MotoServer() as endpoint, pytest.MonkeyPatch.context() as mp:
        for key, value in conftest.ENV.items():  # the seed's own boto3 clients (credentials, region)
            mp.setenv(key, value)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        aws.create_table(conftest.TABLE, endpoint_url=endpoint)
        aws.create_keys(conftest.SECRET, endpoint_url=endpoint)
        seed = aws.seed(conftest.TABLE, conftest.SECRET, endpoint_url=endpoint)
        environments = _environments(endpoint)
        names = sorted(invoke.events_by_function(template))
        logs = {name: logs_dir / f"{name}.log" for name in names}
        outputs = {name: logs[name].open("w") for name in names}
        emulators = {
            name: Emulator(
                Function(
                    name,
                    specs[name].code_uri,
                    specs[name].handler,
                    environments[name],
                    *function_limits(template, Resolver(template), name),
                ),
                output=outputs[name],
            )
            for name in names
        }
        try:
            invoke.start_all(list(emulators.values()))  # at once; each runtime starts at its first event
            by_directory = {Path(specs[n].code_uri).name: n for n in names}
            yield Runtime(emulators, logs, seed, by_directory)
        finally:
            for emulator in emulators.values():
                emulator.stop()
            for output in outputs.values():
                output.close()


def _log_tail(runtime: Runtime, name: str) -> str:
    return "".join(runtime.logs[name].read_text(errors="replace").splitlines(keepends=True)[-30:])


@pytest.mark.parametrize("name", events_suite.FILES)
def test_event_on_the_lambda_runtime(name: str, runtime: Runtime) -> None:
    """The same assertions as the integration suite's, for the same file, on the real runtime."""
    api = RuntimeApi(runtime)
    event = json.loads((invoke.EVENTS / name).read_text())
    function = runtime.by_directory[
        routes.BY_KEY.get(event["routeKey"], routes.BY_KEY[routes.DEFAULT]).function
    ]
    try:
        events_suite.test_event(name, api, runtime.seed)
    except AssertionError as failure:
        raise AssertionError(
            f"{failure}\n--- {function}'s runtime said:\n{_log_tail(runtime, function)}"
        ) from None


def test_each_function_started_cold_once_and_stayed_warm(runtime: Runtime) -> None:
    """One execution environment per function served all its events: one cold start (the only REPORT
    line with an Init Duration), then warm invocations, each a REPORT of its own."""
    api = RuntimeApi(runtime)
    for _ in range(2):  # at least two invocations of one function, whatever ran before
        assert api.call("GET", "/.well-known/jwks.json").status == 200
    invoked = 0
    for name, log in runtime.logs.items():
        reports = [
            line for line in log.read_text(errors="replace").splitlines() if line.startswith("REPORT ")
        ]
        if not reports:
            continue
        invoked += 1
        cold = [line for line in reports if "Init Duration" in line]
        assert len(cold) == 1, f"{name}: {len(cold)} cold starts in {len(reports)} invocations"
        assert "Memory Size: 1024 MB" in reports[0], reports[0]  # the template's MemorySize
    assert invoked >= 1


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        ("app.lambda_handler", "KeyError"),  # raised by the handler (an event that is not an HTTP API one)
        ("app.no_such_handler", "Runtime.HandlerNotFound"),  # the runtime cannot start
    ],
)
def test_a_function_error_is_an_invocation_error(tmp_path: Path, handler: str, error: str) -> None:
    """Lambda's error document (errorType, errorMessage) is an error, not a result: the local gateway
    answers 500 for it, as API Gateway does."""
    function = Function(
        "DiscoveryFunction", "functions/discovery", handler, {"POWERTOOLS_TRACE_DISABLED": "true"}
    )
    with (
        (tmp_path / "log").open("w") as log,
        Emulator(function, output=log) as emulator,
        pytest.raises(invoke.InvocationError, match=f"^DiscoveryFunction: {re.escape(error)}: "),
    ):
        emulator.invoke({})


PROBE = """
import os, sys, time

import authcore


def handler(event, context):
    if event.get("sleep"):
        time.sleep(event["sleep"])
    return {
        "function_name": context.function_name,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
        "cwd": os.getcwd(),
        "path": sys.path,
        "authcore": authcore.__file__,
        "variable": os.environ.get("PROBE_VARIABLE"),
        "execution_env": os.environ.get("AWS_EXECUTION_ENV"),
        "runtime": sys.modules["awslambdaric"].__file__,
    }
"""


def test_the_runtime_is_lambdas(tmp_path: Path) -> None:
    """A handler sees what Lambda gives it: a context built by awslambdaric from the Runtime API (name,
    memory, deadline, request id), its task root as working directory and first on the path, the layer
    before the runtime client, and the function's environment; an overrun of its Timeout is a timeout."""
    task_root = tmp_path / "probe"
    task_root.mkdir()
    (task_root / "probe.py").write_text(PROBE)
    function = Function("ProbeFunction", str(task_root), "probe.handler", {"PROBE_VARIABLE": "set"}, 1, 256)
    with (tmp_path / "log").open("w") as log, Emulator(function, output=log) as emulator:
        seen = emulator.invoke({})
        assert seen["function_name"] == "ProbeFunction" and seen["memory_limit_in_mb"] == "256"
        assert 0 < seen["remaining_ms"] <= 1000
        assert seen["request_id"] and seen["variable"] == "set"
        assert seen["execution_env"] == "AWS_Lambda_python3.13"
        assert seen["cwd"] == str(task_root.resolve()) == seen["path"][0]
        layer, runtime_dir = str(invoke.LAYER), str(invoke.RUNTIME_DIR)
        assert seen["authcore"].startswith(f"{layer}/authcore/")
        assert seen["runtime"].startswith(f"{runtime_dir}/awslambdaric/")
        assert seen["path"].index(layer) < seen["path"].index(runtime_dir)
        assert not any(".venv" in entry for entry in seen["path"])  # nothing of the tests' environment
        with pytest.raises(
            invoke.InvocationTimeout, match=r"^ProbeFunction: Task timed out after 1\.00 seconds$"
        ):
            emulator.invoke({"sleep": 3})
        again = emulator.invoke({})  # the environment that timed out was reset, as Lambda resets it
        assert again["request_id"] != seen["request_id"]


# ---------------------------------------------------------------- make serve ARGS="--runtime lambda"


@pytest.fixture(scope="module")
def lambda_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalStack, StackInfo, Path]]:
    info_file = tmp_path_factory.mktemp("lambda-stack") / "serve.json"
    stack = LocalStack(port=0, concurrency=1, access_log=AccessLog(), info_file=info_file, runtime="lambda")
    info = stack.start()
    try:
        yield stack, info, info_file
    finally:
        stack.stop()


def _post(url: str, **kwargs: Any) -> requests.Response:
    return requests.post(url, timeout=TIMEOUT, **kwargs)


def test_a_device_flow_over_http_on_the_lambda_runtime(
    lambda_stack: tuple[LocalStack, StackInfo, Path],
) -> None:
    stack, info, _ = lambda_stack
    assert info.runtime == "lambda"
    emulators = [psutil.Process(pid) for pid in stack.pids() if pid != info.aws_endpoint_pid]
    assert emulators and all("aws-lambda-rie" in p.cmdline()[0] for p in emulators)
    client_id = info.clients.public.client_id

    started = _post(f"{info.api_url}/oauth/device/code", data={"client_id": client_id})
    assert started.status_code == 200, started.text
    device_code, user_code = started.json()["device_code"], started.json()["user_code"]
    form = {"grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id}
    pending = _post(f"{info.api_url}/oauth/token", data=form)
    assert pending.status_code == 400 and pending.json()["error"] == "authorization_pending", pending.text
    id_token = cognito_id_token(info, info.demo.username, info.demo.password)
    approved = _post(
        f"{info.api_url}/oauth/device/verify",
        json={"user_code": user_code, "decision": "approve"},
        headers={"Authorization": f"Bearer {id_token}"},
    )
    assert approved.status_code == 200 and approved.json() == {"status": "approved"}, approved.text
    tokens = _post(f"{info.api_url}/oauth/token", data=form)
    assert tokens.status_code == 200, tokens.text
    claims = jwt_check.verify_over_http(tokens.json()["access_token"], info.api_url)
    assert claims["sub"] == info.demo.sub and claims["client_id"] == client_id
    refreshed = _post(
        f"{info.api_url}/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens.json()["refresh_token"],
            "client_id": client_id,
        },
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != tokens.json()["refresh_token"]
    lines = stack.access_log.lines() if isinstance(stack.access_log, AccessLog) else []
    served = [json.loads(line) for line in lines]
    assert any(
        (e["routeKey"], e["status"], e["function"]) == ("POST /oauth/token", "200", "TokenFunction")
        for e in served
    ), lines


def test_make_invoke_against_a_running_stack(lambda_stack: tuple[LocalStack, StackInfo, Path]) -> None:
    """`python -m local.invoke` finds the stack through its info file, makes the event's live state there
    (a pending device request) and prints the function's answer on stdout, its logs on stderr."""
    _, info, info_file = lambda_stack
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "local.invoke",
            "--event",
            "events/token.device_pending.json",
            "--info-file",
            str(info_file),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)  # one JSON document: nothing else on stdout
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"] == "authorization_pending"
    assert f"against the running make serve ({info.api_url})" in result.stderr
    assert "START RequestId:" in result.stderr and "REPORT RequestId:" in result.stderr


def test_make_invoke_without_a_function_lists_them() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "local.invoke"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    for name in ("TokenFunction", "RefreshFunction", "KeyRotationFunction"):
        assert name in result.stderr
    assert "token.device_pending.json" in result.stderr and "(no event in events/)" in result.stderr


def test_the_stack_stops_every_emulator_and_runtime(lambda_stack: tuple[LocalStack, StackInfo, Path]) -> None:
    """Last in this file: stopping the stack (its fixture's teardown does it again, harmlessly) leaves
    neither an emulator nor a runtime behind, nor its info file."""
    stack, info, info_file = lambda_stack
    response = requests.get(f"{info.api_url}/.well-known/jwks.json", timeout=TIMEOUT)
    assert response.status_code == 200  # a runtime runs, whatever ran before
    processes = [psutil.Process(pid) for pid in stack.pids()]
    processes += [child for p in processes for child in p.children(recursive=True)]
    assert any("awslambdaric" in " ".join(p.cmdline()) for p in processes)
    stack.stop()
    _gone, alive = psutil.wait_procs(processes, timeout=15)
    assert alive == []
    assert not info_file.exists()
