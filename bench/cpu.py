"""CPU and memory of the functions beside a floor, in one run (`make bench-cpu`).

    python bench/cpu.py [--rounds 7] [--samples 300] [--warmup 20] [--functions A,B] [--quick]
                        [--output FILE]

Three measurements, each side by side with a floor measured in the same run (bench/floor.py: the least
a token function can do; bench/README.md gives the method and the figures):

- init: each function's module (functions/<f>/app.py), imported with its environment (template.yaml's,
  resolved as `make serve` resolves it) in a fresh process, as Lambda's init phase does; CPU (user + sys,
  `resource.getrusage`) from just before the import to just after, and the process's peak RSS (VmHWM).
  Beside it the lean floor script (bench/floor.py's import). `--rounds` processes per function,
  interleaved.
- first call: the same fresh process then handles one request (a device exchange, a refresh, the floor
  handler's), against a moto server in another process: what the first request after a cold start costs.
- warm: in this process, the handlers of POST /auth/device/exchange and POST /auth/refresh (and the floor
  handler), after warm-up; `time.process_time_ns` around the handler call only. DynamoDB and Secrets
  Manager are a moto server in another process (local.moto_server), so their CPU is not counted; the
  client's side of each call (botocore, HTTP) is. The DynamoDB calls of each request are counted.

- framework (warm, an attribution): the floor handler's work behind the service's own HTTP plumbing
  (authcore.http: Powertools' resolver and Logger) with one audit line: what the conventions cost.

Prints medians, ratios to the floor and whether each target is met (init <= 1.0 x the floor; warm <= 1.2
x the floor handler), and writes JSON under bench/results/. A benchmark, not a test: it asserts no
timing. Exit status 1 when a request got an answer other than the one expected, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers")]

# (only this process imports it: the measured processes import nothing of the benchmark's)
from aws_lambda_powertools.event_handler import Response  # noqa: E402 - the framework route's annotation

from bench.common import (  # noqa: E402
    CLIENT,
    RESULTS,
    AwsCalls,
    SetupFailed,
    code_version,
    expect,
    machine,
    median,
    percentile,
    service_environment,
    stdout_to,
)

# Bytecode of every module the measured processes import, compiled once (the first, unmeasured process
# per target): a deployed layer is measured with its modules compiled, not compiling them.
PYCACHE = RESULTS / "pycache"
FLOOR = "floor"
FLOOR_CODE = "bench/floor.py"
INIT_TARGET = 1.0  # init CPU of every function, times the lean floor's
WARM_TARGET = 1.2  # warm handler CPU per exchange and per refresh, times the floor handler's
QUICK_FUNCTIONS = ("DeviceExchangeFunction", "DiscoveryFunction")
FRAMEWORK = "framework"
OPERATIONS = {
    "exchange": "POST /auth/device/exchange (a device code for tokens)",
    "refresh": "POST /auth/refresh (a rotation, token in the body)",
    FRAMEWORK: "the floor's work behind the service's HTTP plumbing, with one audit line (attribution)",
    FLOOR: "floor handler (JSON body, one UpdateItem ALL_NEW, one ES256 JWT, JSON answer)",
}
TARGETS = ("exchange", "refresh")  # the operations with a warm target
FIRST_CALL = {"exchange": "DeviceExchangeFunction", "refresh": "RefreshFunction", FLOOR: FLOOR}

# Runs in each fresh process: import the module (init), then maybe handle one event (first call).
# json, os and importlib are imported before the clock starts, as Lambda's runtime has them loaded.
CHILD = r"""
import importlib.util, json, os, resource, sys
def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
def _peak_kb():  # this process's own peak (Linux's ru_maxrss survives exec: it may be the parent's)
    try:
        with open("/proc/self/status") as f:
            return int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
path, attr, event_path, out_path = sys.argv[1:5]
t0 = _cpu()
sys.path.insert(0, os.path.dirname(path))
spec = importlib.util.spec_from_file_location("app", path)
module = importlib.util.module_from_spec(spec)
sys.modules["app"] = module
spec.loader.exec_module(module)
handler = getattr(module, attr)
t1 = _cpu()
out = {"init_cpu_s": t1 - t0, "init_maxrss_kb": _peak_kb(),
       "modules": len(sys.modules)}
if event_path:
    class Context:
        function_name = "bench"
        function_version = "$LATEST"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
        aws_request_id = "00000000-0000-0000-0000-000000000000"
        log_group_name = "/aws/lambda/bench"
        log_stream_name = "bench"
        def get_remaining_time_in_millis(self):
            return 10000
    with open(event_path) as f:
        event = json.load(f)
    context = Context()
    t2 = _cpu()
    answer = handler(event, context)
    t3 = _cpu()
    out.update(first_call_cpu_s=t3 - t2, status=answer.get("statusCode"), body=answer.get("body"),
               maxrss_kb=_peak_kb())
with open(out_path, "w") as f:
    json.dump(out, f)
"""


# ---------------------------------------------------------------- the functions and their environment


@dataclass(frozen=True)
class Target:
    name: str  # the function's logical id, or "floor"
    path: Path  # the module Lambda imports
    attr: str  # the handler in it
    environment: dict[str, str]


def targets(only: Sequence[str] | None, endpoint: str = "http://127.0.0.1:9") -> list[Target]:
    """Every function of template.yaml (or those named), with its environment resolved as the local stack
    resolves it, and the floor (with the token function's environment)."""
    from local import template as tpl
    from local.cfn import Resolver
    from local.stack import function_environments

    template = tpl.load_template()
    with contextlib.redirect_stderr(io.StringIO()):  # placeholders for the resources: fine for an import
        environments = function_environments(template, Resolver(template), endpoint)
    found = []
    for spec in tpl.functions(template):
        if only is not None and spec.logical_id not in only:
            continue
        module, _, attr = spec.handler.rpartition(".")
        path = ROOT / spec.code_uri / f"{module.replace('.', '/')}.py"
        found.append(Target(spec.logical_id, path, attr, environments[spec.logical_id]))
    unknown = set(only or ()) - {t.name for t in found}
    if unknown:
        raise SystemExit(f"error: no function {', '.join(sorted(unknown))} in template.yaml")
    found.append(Target(FLOOR, ROOT / FLOOR_CODE, "handler", environments["TokenFunction"]))
    return found


def child_environment(target: Target, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """What the fresh process sees: the function's variables, the layer on the path (as /opt/python is
    on Lambda), compiled bytecode under PYCACHE, and nothing of this machine's environment but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(ROOT / "layers"),
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        **target.environment,
        **(overrides or {}),
    }


def run_child(target: Target, env: dict[str, str], event: dict[str, Any] | None = None) -> dict[str, Any]:
    """One fresh process: import the target (and handle ``event``); what it measured."""
    with tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp:
        event_path = ""
        if event is not None:
            event_path = str(Path(tmp) / "event.json")
            Path(event_path).write_text(json.dumps(event), encoding="utf-8")
        out_path = Path(tmp) / "out.json"
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(target.path), target.attr, event_path, str(out_path)],
            env=env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
        if done.returncode != 0 or not out_path.is_file():
            raise SetupFailed(f"{target.name}: the measured process failed:\n{done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out_path.read_text(encoding="utf-8"))
        return result


def measure_init(found: list[Target], rounds: int, warm_up: bool, rng: random.Random) -> dict[str, Any]:
    """``rounds`` fresh processes per target, interleaved in a shuffled order per round; one unmeasured
    process per target first (compiles the bytecode, warms the page cache)."""
    order = list(found)
    if warm_up:
        for target in order:
            run_child(target, child_environment(target))
    samples: dict[str, list[dict[str, Any]]] = {t.name: [] for t in found}
    for _ in range(rounds):
        rng.shuffle(order)
        for target in order:
            samples[target.name].append(run_child(target, child_environment(target)))
    floor_cpu = median([s["init_cpu_s"] for s in samples[FLOOR]])
    out: dict[str, Any] = {}
    for target in found:
        cpu = sorted(s["init_cpu_s"] for s in samples[target.name])
        rss = [s["init_maxrss_kb"] for s in samples[target.name]]
        out[target.name] = {
            "samples": len(cpu),
            "cpu_ms": {
                "median": round(median(cpu) * 1000, 1),
                "min": round(cpu[0] * 1000, 1),
                "p90": round(percentile(cpu, 90) * 1000, 1),
            },
            "ratio_to_floor": round(median(cpu) / floor_cpu, 2),
            "peak_rss_mb": round(median(rss) / 1024, 1),
            "modules": int(median([s["modules"] for s in samples[target.name]])),
            "raw_cpu_ms": [round(s["init_cpu_s"] * 1000, 1) for s in samples[target.name]],
        }
    return out


# ---------------------------------------------------------------- the service, in this process


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Service:
    """The handlers, loaded in this process against the moto server, and the real device flow."""

    def __init__(self, seed: Any) -> None:
        from local.lambda_host import load_function

        self.seed = seed
        self.handlers: dict[str, Handler] = {
            "/oauth/device/code": load_function("functions/device_authorization"),
            "/oauth/device/verify": load_function("functions/device_verification"),
            "/auth/device/exchange": load_function("functions/device_exchange"),
            "/auth/refresh": load_function("functions/refresh"),
        }
        self.floor: Handler = load_function("bench", "floor.handler")
        self.framework = framework_handler(self.floor)

    def call(self, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        from local.lambda_host import LambdaContext, http_event

        out = self.handlers[path](http_event("POST", path, **kwargs), LambdaContext(function_name="bench"))
        return int(out["statusCode"]), json.loads(out.get("body") or "{}")

    def approved_device_code(self) -> str:
        """A device code, approved by the demo user: ready to be exchanged."""
        status, started = self.call("/oauth/device/code", form={"client_id": CLIENT})
        expect(status == 200, f"device code: {status} {started}")
        status, body = self.call(
            "/oauth/device/verify",
            body={"user_code": started["user_code"], "decision": "approve"},
            claims=self.seed.user,
        )
        expect(status == 200, f"approval: {status} {body}")
        return str(started["device_code"])

    def family(self) -> str:
        """A new family (the real flow): its first refresh token."""
        status, body = self.call(
            "/auth/device/exchange", body={"device_code": self.approved_device_code(), "client_id": CLIENT}
        )
        expect(status == 200, f"exchange: {status} {body}")
        return str(body["refresh_token"])


def framework_handler(floor: Handler) -> Handler:
    """The floor handler's work (its UpdateItem, JWT and JSON) as a route of the service's own HTTP
    plumbing (authcore.http: Powertools' resolver as the token functions have it, Logger with the
    correlation id), plus the one audit line (a log line that is also its metric) every issuing request
    writes: what the conventions cost, between the floor and the service."""
    from authcore import http, observability

    app = http.make_app()

    @app.post("/floor")
    def route() -> Response[str]:
        out = floor({"body": app.current_event.body}, None)
        observability.audit("rotated", grant_id="0" * 32, client_id=CLIENT, generation=1)
        return Response(status_code=200, content_type=http.JSON, body=out["body"], headers=http.BASE_HEADERS)

    return http.entrypoint(app)


def exchange_event(device_code: str) -> dict[str, Any]:
    from local.lambda_host import http_event

    return http_event("POST", "/auth/device/exchange", body={"device_code": device_code, "client_id": CLIENT})


def refresh_event(token: str) -> dict[str, Any]:
    from local.lambda_host import http_event

    return http_event("POST", "/auth/refresh", body={"refresh_token": token})


def floor_event(grant: str) -> dict[str, Any]:
    from local.lambda_host import http_event

    return http_event("POST", "/floor", route_key="POST /floor", body={"grant": grant})


# ---------------------------------------------------------------- first call


def measure_first_call(
    service: Service, found: list[Target], env: dict[str, str], rounds: int, rng: random.Random
) -> dict[str, Any]:
    """A fresh process per sample: import, then one request (a fresh approved device code, a fresh
    family's token, a new floor item), against the moto server."""
    by_name = {t.name: t for t in found}
    runnable = {op: by_name[name] for op, name in FIRST_CALL.items() if name in by_name}
    samples: dict[str, list[dict[str, Any]]] = {op: [] for op in runnable}
    unexpected: Counter[str] = Counter()
    order = list(runnable)
    for _ in range(rounds):
        rng.shuffle(order)
        for op in order:
            if op == "exchange":
                event = exchange_event(service.approved_device_code())
            elif op == "refresh":
                event = refresh_event(service.family())
            else:
                event = floor_event(uuid.uuid4().hex)
            target = runnable[op]
            result = run_child(target, child_environment(target, env), event)
            if result.get("status") != 200:
                unexpected[f"{op}: {result.get('status')}"] += 1
            samples[op].append(result)
    out: dict[str, Any] = {"unexpected": dict(unexpected)}
    if FLOOR not in samples:
        return out
    floor_first = median([s["first_call_cpu_s"] for s in samples[FLOOR]])
    floor_total = median([s["init_cpu_s"] + s["first_call_cpu_s"] for s in samples[FLOOR]])
    for op, got in samples.items():
        first = [s["first_call_cpu_s"] for s in got]
        total = [s["init_cpu_s"] + s["first_call_cpu_s"] for s in got]
        out[op] = {
            "function": runnable[op].name,
            "samples": len(got),
            "first_call_cpu_ms": round(median(first) * 1000, 1),
            "first_call_ratio_to_floor": round(median(first) / floor_first, 2),
            "init_plus_first_call_cpu_ms": round(median(total) * 1000, 1),
            "init_plus_first_call_ratio_to_floor": round(median(total) / floor_total, 2),
            "peak_rss_mb": round(median([s["maxrss_kb"] for s in got]) / 1024, 1),
        }
    return out


# ---------------------------------------------------------------- warm


@dataclass
class Sample:
    cpu_ns: int
    wall_ns: int
    dynamodb: list[str]
    other_aws: list[str]
    status: int


@dataclass
class Operation:
    key: str
    samples: list[Sample] = field(default_factory=list)
    unexpected: Counter[str] = field(default_factory=Counter)


def _service_clients() -> tuple[Any, list[Any]]:
    """The DynamoDB client of the functions in this process, and their other AWS clients."""
    from authcore import runtime

    ddb = runtime.store().client
    others = []
    provider = getattr(runtime, "_secrets_provider", None)
    if provider is not None:
        others.append(provider().client)
    return ddb, others


@contextlib.contextmanager
def counting(service: Service) -> Iterator[AwsCalls]:
    calls = AwsCalls()
    ddb, others = _service_clients()
    floor_ddb = sys.modules["fn_bench_floor"].dynamodb
    registered = [(ddb, "before-call.dynamodb", calls.on_dynamodb)]
    registered.append((floor_ddb, "before-call.dynamodb", calls.on_dynamodb))
    registered += [(c, "before-call", calls.on_other) for c in others]
    for client, name, hook in registered:
        client.meta.events.register(name, hook)
    try:
        yield calls
    finally:
        for client, name, hook in registered:
            client.meta.events.unregister(name, hook)


def measure_call(handler: Handler, event: dict[str, Any], calls: AwsCalls) -> tuple[Sample, dict[str, Any]]:
    """One call: process CPU around the handler only, the collector off during it (as timeit does) and a
    collection before it, both outside the span."""
    from local.lambda_host import LambdaContext

    context = LambdaContext(function_name="bench")
    gc.collect()
    calls.reset()
    gc.disable()
    try:
        wall0 = time.perf_counter_ns()
        cpu0 = time.process_time_ns()
        out = handler(event, context)
        cpu1 = time.process_time_ns()
        wall1 = time.perf_counter_ns()
    finally:
        gc.enable()
    sample = Sample(
        cpu1 - cpu0, wall1 - wall0, list(calls.dynamodb), list(calls.other), int(out["statusCode"])
    )
    return sample, json.loads(out.get("body") or "{}")


def measure_warm(service: Service, samples: int, warmup: int, rng: random.Random) -> dict[str, Any]:
    ops = {key: Operation(key) for key in OPERATIONS}
    token = service.family()
    floor_grant = uuid.uuid4().hex
    gc.collect()
    gc.freeze()  # what set-up left alive: out of every later collection, so each is short
    started = time.monotonic()
    order = list(ops)
    with counting(service) as calls:
        for round_no in range(warmup + samples):
            device_code = service.approved_device_code()  # set-up of this round, not measured
            rng.shuffle(order)
            for key in order:
                if key == "exchange":
                    sample, body = measure_call(
                        service.handlers["/auth/device/exchange"], exchange_event(device_code), calls
                    )
                    ok = sample.status == 200 and "refresh_token" in body
                elif key == "refresh":
                    sample, body = measure_call(
                        service.handlers["/auth/refresh"], refresh_event(token), calls
                    )
                    ok = sample.status == 200 and isinstance(body.get("refresh_token"), str)
                    if ok:
                        token = body["refresh_token"]  # the next sample presents the successor
                else:
                    handler = service.floor if key == FLOOR else service.framework
                    sample, body = measure_call(handler, floor_event(floor_grant), calls)
                    ok = sample.status == 200 and "access_token" in body
                if not ok:
                    ops[key].unexpected[f"{sample.status} {body.get('error') or body.get('type')}"] += 1
                if round_no >= warmup:
                    ops[key].samples.append(sample)
    measured_s = time.monotonic() - started
    base = [s.cpu_ns for s in ops[FLOOR].samples]
    base_median = median(base)
    out: dict[str, Any] = {"measured_phase_s": round(measured_s, 1), "rounds": len(base)}
    for key, op in ops.items():
        cpu = [s.cpu_ns for s in op.samples]
        ordered = sorted(cpu)
        paired = sorted(x / y for x, y in zip(cpu, base, strict=True))
        out[key] = {
            "description": OPERATIONS[key],
            "samples": len(cpu),
            "cpu_us": {
                "median": round(median(cpu) / 1000, 1),
                "p90": round(percentile(ordered, 90) / 1000, 1),
                "min": round(ordered[0] / 1000, 1),
            },
            "ratio_to_floor": round(median(cpu) / base_median, 2),
            "paired_ratio_to_floor": {
                "median": round(median(paired), 2),
                "p10": round(percentile(paired, 10), 2),
                "p90": round(percentile(paired, 90), 2),
            },
            "wall_ms_median": round(median([s.wall_ns for s in op.samples]) / 1e6, 2),
            "dynamodb_calls": sorted({len(s.dynamodb) for s in op.samples}),
            "dynamodb_operations": dict(Counter(o for s in op.samples for o in s.dynamodb)),
            "other_aws_calls": sum(len(s.other_aws) for s in op.samples),
            "unexpected": dict(op.unexpected),
            "raw_cpu_us": [round(c / 1000, 1) for c in cpu],
        }
    return out


# ---------------------------------------------------------------- the run


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    found = targets(args.functions)
    PYCACHE.mkdir(parents=True, exist_ok=True)
    init: dict[str, Any] = {}
    first: dict[str, Any] = {"unexpected": {}}
    warm: dict[str, Any] = {}
    phase_s: dict[str, float] = {}
    if "init" in args.phases:
        print(f"init: {len(found)} targets x {args.rounds} fresh processes ...", file=sys.stderr)
        started = time.monotonic()
        init = measure_init(found, args.rounds, not args.quick, rng)
        phase_s["init"] = round(time.monotonic() - started, 1)
    if args.phases & {"first", "warm"}:
        first, warm, served_s = against_moto(args, found, rng)
        phase_s.update(served_s)
    unexpected = sum(first["unexpected"].values()) + sum(
        sum(warm[k]["unexpected"].values()) for k in OPERATIONS if k in warm
    )
    return {
        "parameters": {
            "rounds": args.rounds,
            "first_call_rounds": args.first_call_rounds,
            "samples": args.samples,
            "warmup_rounds": args.warmup,
            "seed": args.seed,
            "quick": args.quick,
            "phases": sorted(args.phases),
        },
        "phase_s": phase_s,
        "init": init,
        "first_call": first,
        "warm": warm,
        "targets": verdicts(init, warm),
        "unexpected": unexpected,
    }


def against_moto(
    args: argparse.Namespace, found: list[Target], rng: random.Random
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """The first-call and warm measurements: a moto server in another process, the service's handlers
    in this one (imported after the init measurement, which never runs in this process)."""
    from authcore import runtime
    from local import lambda_host
    from local.moto_server import MotoServer
    from tests.support import aws
    from tests.support.idp import IDP

    lambda_host.SIGN_IN = IDP.bearer
    first: dict[str, Any] = {"unexpected": {}}
    warm: dict[str, Any] = {}
    phase_s: dict[str, float] = {}
    with MotoServer() as url:
        table, secret = "bench-cpu", "bench/cpu/keys"
        env = service_environment(url, table, secret)
        os.environ.update(env)
        aws.create_table(table, endpoint_url=url)
        aws.create_keys(secret, endpoint_url=url)
        seed = aws.seed(table, secret, endpoint_url=url)
        runtime.reset()
        service = Service(seed)
        if "first" in args.phases:
            print(f"first call: {args.first_call_rounds} fresh processes per operation ...", file=sys.stderr)
            started = time.monotonic()
            cold = {k: v for k, v in env.items() if k not in ("CLIENT_CACHE_SECONDS", "SECRET_CACHE_SECONDS")}
            first = measure_first_call(service, found, cold, args.first_call_rounds, rng)
            phase_s["first"] = round(time.monotonic() - started, 1)
        if "warm" in args.phases:
            print(f"warm: {args.warmup} + {args.samples} interleaved rounds ...", file=sys.stderr)
            started = time.monotonic()
            warm = measure_warm(service, args.samples, args.warmup, rng)
            phase_s["warm"] = round(time.monotonic() - started, 1)
    return first, warm, phase_s


def verdicts(init: dict[str, Any], warm: dict[str, Any]) -> dict[str, Any]:
    out = {
        "init_ratio_max": INIT_TARGET,
        "warm_ratio_max": WARM_TARGET,
        "init_met": {n: v["ratio_to_floor"] <= INIT_TARGET for n, v in init.items() if n != FLOOR},
        "warm_met": {k: warm[k]["ratio_to_floor"] <= WARM_TARGET for k in TARGETS if k in warm},
    }
    if FRAMEWORK in warm:
        out["warm_attribution"] = attribution(warm)
    return out


def attribution(warm: dict[str, Any]) -> dict[str, Any]:
    """Where each target operation's distance from the floor goes, in this run: the framework row's
    ratio (the conventions: Powertools' resolver and Logger, the audit line), the service's own work
    beyond it (the median over rounds of (operation - framework) / floor, each round's samples paired),
    and what the budget leaves the service once the conventions have had theirs."""
    framework = warm[FRAMEWORK]["ratio_to_floor"]
    fw, floor = warm[FRAMEWORK]["raw_cpu_us"], warm[FLOOR]["raw_cpu_us"]
    own = {}
    for key in TARGETS:
        if key in warm:
            op = warm[key]["raw_cpu_us"]
            own[key] = round(median([(o - f) / b for o, f, b in zip(op, fw, floor, strict=True)]), 2)
    return {
        "framework_ratio": framework,
        "budget_left_after_framework": round(WARM_TARGET - framework, 2),
        "own_work_paired": own,
    }


WHY_WARM = (
    "The own work is net of the store's DynamoDB client, which costs ~0.12 less than the floor's default one"
    " (bench/README.md, 'Targets'). What would close the gap, as bench/README.md estimates it: routes outside"
    " Powertools' resolver and Logger decorator for the two hot paths (~0.1, a departure from docs/design.md),"
    " or a smaller hot item (~0.03, a change of the stored shape with a migration); each step of the"
    " service's own work is a few tens of microseconds."
)


# ---------------------------------------------------------------- output


def _met(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def report(result: dict[str, Any]) -> str:
    init, first, warm, verdict = result["init"], result["first_call"], result["warm"], result["targets"]
    m = result["machine"]
    lines = [
        f"machine: {m['cpus']} CPUs, {m['platform']}, Python {m['python']}, load average"
        f" {'/'.join(map(str, m['load_average_1_5_15']))} (1/5/15 min, at the end)",
    ]
    if init:
        lines += [
            "",
            f"INIT: import of the function's module in a fresh process, CPU (user+sys); median of"
            f" {result['parameters']['rounds']} processes each; target <= {INIT_TARGET} x the lean floor",
            f"{'function':<28} {'CPU ms':>8} {'min':>7} {'ratio':>6} {'target':>7} {'peak RSS MB':>12} {'modules':>8}",
        ]  # fmt: skip
        for name, v in init.items():
            verdict_text = "" if name == FLOOR else _met(verdict["init_met"][name])
            lines.append(
                f"{name:<28} {v['cpu_ms']['median']:>8} {v['cpu_ms']['min']:>7} {v['ratio_to_floor']:>6}"
                f" {verdict_text:>7} {v['peak_rss_mb']:>12} {v['modules']:>8}"
            )
    if any(op in first for op in FIRST_CALL):
        lines += [
            "",
            "FIRST CALL: the same fresh process's first request (moto server elsewhere), CPU; median",
            f"{'operation':<10} {'function':<24} {'first ms':>9} {'ratio':>6} {'init+first ms':>14} {'ratio':>6} {'peak RSS MB':>12}",
        ]  # fmt: skip
        for op in FIRST_CALL:
            if op in first:
                v = first[op]
                lines.append(
                    f"{op:<10} {v['function']:<24} {v['first_call_cpu_ms']:>9} {v['first_call_ratio_to_floor']:>6}"
                    f" {v['init_plus_first_call_cpu_ms']:>14} {v['init_plus_first_call_ratio_to_floor']:>6}"
                    f" {v['peak_rss_mb']:>12}"
                )
    if warm:
        lines += [
            "",
            f"WARM: handler CPU in this process (moto server elsewhere); {warm[FLOOR]['samples']} interleaved rounds"
            f" after {result['parameters']['warmup_rounds']} warm-up; target <= {WARM_TARGET} x the floor handler",
            f"{'operation':<10} {'median us':>10} {'p90 us':>8} {'ratio':>6} {'paired':>7} {'target':>7} {'DynamoDB calls':>15} {'wall ms':>8}",
        ]  # fmt: skip
        for key in OPERATIONS:
            v = warm[key]
            verdict_text = _met(verdict["warm_met"][key]) if key in TARGETS else ""
            lines.append(
                f"{key:<10} {v['cpu_us']['median']:>10} {v['cpu_us']['p90']:>8} {v['ratio_to_floor']:>6}"
                f" {v['paired_ratio_to_floor']['median']:>7} {verdict_text:>7}"
                f" {'/'.join(map(str, v['dynamodb_calls'])):>15} {v['wall_ms_median']:>8}"
            )
        missed = [k for k, ok in verdict["warm_met"].items() if not ok]
        if missed and "warm_attribution" in verdict:
            why = verdict["warm_attribution"]
            own = ", ".join(f"{k} {why['own_work_paired'][k]}" for k in missed)
            left = why["budget_left_after_framework"]
            room = f"leaves {left} of the budget for" if left > 0 else "leaves nothing of the budget for"
            lines += [
                "",
                f"MISSED (warm): {', '.join(f'{k} {warm[k]["ratio_to_floor"]}' for k in missed)} x the floor."
                f" Measured in this run: the framework row (the floor's work behind the conventions) is"
                f" {why['framework_ratio']}, which {room} the service's own work; that work, paired per round,"
                f" is {own} of the floor.",
                WHY_WARM,
            ]
        lines += [
            "",
            "ratio: median / the floor's median (same run); paired: median over rounds of sample / same round's floor",
            "other AWS calls (Secrets Manager) during warm calls: "
            + str(sum(warm[k]["other_aws_calls"] for k in OPERATIONS)),
        ]  # fmt: skip
    phases = ", ".join(f"{k} {v} s" for k, v in result["phase_s"].items())
    lines.append(f"phases: {phases}; total {result['total_s']} s; unexpected answers: {result['unexpected']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/cpu.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="fresh processes per function (default 7)")
    parser.add_argument(
        "--first-call-rounds", type=int, default=5, help="fresh processes per first call (default 5)"
    )
    parser.add_argument("--samples", type=int, default=300, help="measured warm rounds (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured warm rounds first (default 20)")
    parser.add_argument("--functions", help="comma-separated logical ids (default: every function)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the shuffled orders (default 1)")
    parser.add_argument(
        "--phases",
        default="init,first,warm",
        help="which measurements, comma-separated (default init,first,warm)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {', '.join(QUICK_FUNCTIONS)} and the floor, 1 process each, 5 warm rounds",
    )
    parser.add_argument("--output", type=Path, help="the JSON result (default bench/results/cpu-<time>.json)")
    args = parser.parse_args(argv)
    args.functions = [f.strip() for f in args.functions.split(",") if f.strip()] if args.functions else None
    args.phases = {p.strip() for p in args.phases.split(",") if p.strip()}
    if not args.phases or not args.phases <= {"init", "first", "warm"}:
        parser.error("--phases: a comma-separated list of init, first and warm")
    if args.quick:
        args.rounds, args.first_call_rounds, args.samples, args.warmup = 1, 1, 5, 1
        args.functions = args.functions or list(QUICK_FUNCTIONS)
    if not 1 <= args.rounds <= 100 or not 1 <= args.first_call_rounds <= 100:
        parser.error("--rounds and --first-call-rounds must be from 1 to 100")
    if not 1 <= args.samples <= 10_000 or not 0 <= args.warmup <= 1_000:
        parser.error("--samples must be from 1 to 10000, --warmup from 0 to 1000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    output = args.output or RESULTS / f"cpu-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    log_path = output.with_suffix(".log")
    try:
        with stdout_to(log_path):  # the functions' log lines and metrics, as Lambda's stdout
            outcome = run(args)
    except SetupFailed as exc:
        print(f"error: {exc} (see {log_path})", file=sys.stderr)
        return 1
    result = {
        "benchmark": "bench/cpu.py",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "code": code_version("layers", "functions", "bench"),
        **outcome,
        "total_s": round(time.monotonic() - started, 1),
        "log": str(log_path.relative_to(ROOT) if log_path.is_relative_to(ROOT) else log_path),
    }
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report(result))
    print(f"written to {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 1 if result["unexpected"] else 0


if __name__ == "__main__":
    sys.exit(main())
