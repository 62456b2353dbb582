"""Load run through the local stack: device flows and refreshes over HTTP (`make bench`).

    python bench/load.py [--flows 200] [--refreshes 1000] [--workers 50] [--time-limit 300]
                         [--concurrency 4] [--api-url URL [--info-file .local/serve.json]]

Starts its own local stack (`python -m local.serve` on a free port, in a process of its own, with
`--concurrency` execution environments), or uses a running `make serve` given by --api-url (its demo
user, clients and embedded AWS endpoint are read from the info file it wrote). Then, with `--workers`
client threads (each with its own kept-alive connection), after an unmeasured warm-up:

1. device flows: `--flows` times POST /oauth/device/code, then the demo user's approval
   (POST /oauth/device/verify with a Cognito ID token), then POST /auth/device/exchange;
2. refreshes: `--refreshes` times POST /auth/refresh (body), spread over the families of phase 1, each
   family refreshed in sequence (every refresh presents the token the previous one returned).

Prints throughput, p50/p90/p99/max latency per operation and the error count (anything but the
expected 200; the goal is zero), and writes the same as JSON under bench/results/. A benchmark, not a
test: it asserts no timing; it exits 1 only when there were errors or the time limit cut the run short.
Every loop is bounded in count, and the whole run by --time-limit. Only 127.0.0.1 is ever a target.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
REQUEST_TIMEOUT = 30
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
# Every flow starts from 127.0.0.1 with one client: the per-address and per-client limits of device
# authorization would end the run.
UNLIMITED = ["DeviceAuthorizationsPerIp=0", "DeviceAuthorizationsPerClient=0"]


# ---------------------------------------------------------------- measurements


@dataclass
class Operation:
    """Latencies (seconds) of one kind of request, and what went wrong."""

    name: str
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, seconds: float, error: str | None) -> None:
        with self.lock:
            self.latencies.append(seconds)
            if error is not None:
                self.errors[error] += 1

    def summary(self, wall: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "count": len(ordered),
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "throughput_per_s": round(len(ordered) / wall, 1) if wall > 0 else None,
            "latency_ms": {
                "p50": _ms(percentile(ordered, 50)),
                "p90": _ms(percentile(ordered, 90)),
                "p99": _ms(percentile(ordered, 99)),
                "max": _ms(ordered[-1] if ordered else None),
                "mean": _ms(sum(ordered) / len(ordered) if ordered else None),
            },
        }


def percentile(ordered: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class TimeLimit(Exception):
    """The run's deadline passed: no new request is started."""


class Client:
    """The load generator's HTTP side: one kept-alive session per thread, every request timed."""

    def __init__(self, api_url: str, deadline: float) -> None:
        self.api_url = api_url
        self.deadline = deadline
        self.operations: dict[str, Operation] = {}
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def operation(self, name: str) -> Operation:
        with self._lock:
            return self.operations.setdefault(name, Operation(name))

    def session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            self._local.session = session
            with self._lock:
                self._sessions.append(session)
        return session

    def call(self, name: str, method: str, path: str, **kwargs: Any) -> dict[str, Any] | None:
        """One request; its body when it answered 200, else None (an error, recorded)."""
        if time.monotonic() > self.deadline:
            raise TimeLimit
        operation = self.operation(name)
        started = time.perf_counter()
        try:
            response = self.session().request(
                method, f"{self.api_url}{path}", timeout=REQUEST_TIMEOUT, **kwargs
            )
        except requests.RequestException as exc:
            operation.record(time.perf_counter() - started, type(exc).__name__)
            return None
        elapsed = time.perf_counter() - started
        if response.status_code != 200:
            try:
                kind = response.json().get("type") or response.json().get("error") or "-"
            except ValueError:
                kind = "not json"
            operation.record(elapsed, f"{response.status_code} {kind}")
            return None
        operation.record(elapsed, None)
        body: dict[str, Any] = response.json()
        return body

    def close(self) -> None:
        for session in self._sessions:
            session.close()


# ---------------------------------------------------------------- the load


@dataclass(frozen=True)
class Target:
    api_url: str
    client_id: str
    id_token: str
    # the organization every approval names: a person in several organizations must say which one
    organization_id: str | None = None


def device_flow(client: Client, target: Target) -> str | None:
    """device code -> approval -> exchange; the refresh token, or None when a step failed. A flow the
    time limit stops (TimeLimit) is not recorded."""
    started = time.perf_counter()
    refresh_token = None
    started_flow = client.call(
        "device_code", "POST", "/oauth/device/code", data={"client_id": target.client_id, "scope": "read"}
    )
    if started_flow is not None:
        decided = client.call(
            "approve",
            "POST",
            "/oauth/device/verify",
            json={
                "user_code": started_flow["user_code"],
                "decision": "approve",
                **({"organization_id": target.organization_id} if target.organization_id else {}),
            },
            headers={"Authorization": f"Bearer {target.id_token}"},
        )
        if decided is not None:
            tokens = client.call(
                "exchange",
                "POST",
                "/auth/device/exchange",
                json={"device_code": started_flow["device_code"], "client_id": target.client_id},
            )
            if tokens is not None:
                refresh_token = str(tokens["refresh_token"])
    client.operation("device_flow").record(time.perf_counter() - started, None if refresh_token else "failed")
    return refresh_token


def refresh_chain(client: Client, token: str, count: int) -> tuple[int, bool]:
    """`count` refreshes of one family in sequence, each presenting the token the previous one returned;
    (how many succeeded before the first failure, whether the time limit stopped it)."""
    done = 0
    try:
        for _ in range(count):
            body = client.call("refresh", "POST", "/auth/refresh", json={"refresh_token": token})
            if body is None:
                break
            token = str(body["refresh_token"])
            done += 1
    except TimeLimit:
        return done, True
    return done, False


class Workers:
    """`size` client threads for the whole run (so that each keeps its session, and its connection,
    from the warm-up on)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="load")

    def run(self, tasks: list[Callable[[], Any]]) -> tuple[list[Any], float, int]:
        """Runs the tasks; (results of those that ran, wall seconds, how many the time limit stopped)."""
        results: list[Any] = []
        stopped = 0
        lock = threading.Lock()

        def run(task: Callable[[], Any]) -> None:
            nonlocal stopped
            try:
                result = task()
            except TimeLimit:
                with lock:
                    stopped += 1
                return
            with lock:
                results.append(result)

        started = time.perf_counter()
        for future in [self._pool.submit(run, task) for task in tasks]:
            future.result()
        return results, time.perf_counter() - started, stopped

    def warm(self, call: Callable[[], Any]) -> None:
        """Each thread runs `call` once (opening its connection), a few at a time: the local HTTP API
        listens with a backlog of 5, and a burst of new connections waits for SYN retransmits."""
        opening = threading.Semaphore(4)
        barrier = threading.Barrier(self.size, timeout=60)

        def one() -> None:
            try:
                with opening:
                    call()
            except BaseException:
                barrier.abort()
                raise
            barrier.wait()

        for future in [self._pool.submit(one) for _ in range(self.size)]:
            future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def load(target: Target, flows: int, refreshes: int, workers: int, deadline: float) -> dict[str, Any]:
    client = Client(target.api_url, deadline)
    pool = Workers(workers)
    try:
        # Warm-up, not measured: every worker opens its connection, every function on the way runs.
        pool.warm(lambda: client.call("warm", "GET", "/.well-known/jwks.json"))
        pool.run([lambda: device_flow(client, target)] * min(workers, 8))
        # every failed request counts, the warm-up's too; a failed flow is its failed request, once
        kinds: Counter[str] = Counter()
        for name, op in client.operations.items():
            if name != "device_flow":
                kinds.update(op.errors)
        warm_errors = sum(kinds.values())
        client.operations.clear()

        phases: dict[str, Any] = {}
        tokens, wall, stopped = pool.run([lambda: device_flow(client, target)] * flows)
        families = [t for t in tokens if t]
        phases["device_flows"] = {
            "requested": flows,
            "completed": len(families),
            "stopped_by_time_limit": stopped,
            "wall_s": round(wall, 2),
            "flows_per_s": round(len(families) / wall, 1) if wall > 0 else None,
            "operations": {
                name: client.operations[name].summary(wall)
                for name in ("device_code", "approve", "exchange", "device_flow")
                if name in client.operations
            },
        }

        chains: list[Callable[[], tuple[int, bool]]] = []
        if families and refreshes > 0:
            share, extra = divmod(refreshes, len(families))
            for index, token in enumerate(families):
                count = share + (1 if index < extra else 0)
                if count:
                    chains.append(functools.partial(refresh_chain, client, token, count))
        outcomes, wall, _ = pool.run(chains)
        done = [n for n, _ in outcomes]
        stopped = sum(1 for _, cut in outcomes if cut)
        phases["refreshes"] = {
            "requested": refreshes,
            "families": len(chains),
            "completed": sum(done),
            "families_stopped_by_time_limit": stopped,
            "wall_s": round(wall, 2),
            "refreshes_per_s": round(sum(done) / wall, 1) if wall > 0 else None,
            "operations": {"refresh": client.operation("refresh").summary(wall)},
        }
        for name, op in client.operations.items():
            if name != "device_flow":
                kinds.update(op.errors)
        incomplete = len(families) < flows or sum(done) < refreshes
        return {
            "phases": phases,
            "errors": sum(kinds.values()),
            "error_kinds": dict(kinds.most_common()),
            "warm_up_errors": warm_errors,
            "incomplete": incomplete,
        }
    finally:
        pool.close()
        client.close()


# ---------------------------------------------------------------- the stack


@contextlib.contextmanager
def serve(concurrency: int, log: Path, deadline: float) -> Iterator[dict[str, Any]]:
    """`python -m local.serve` on a free port, in a process of its own (so that the load generator's
    threads never share an interpreter with the HTTP API's); its description (.local/serve.json's
    content) while it runs. Its output (access lines, the functions' logs) goes to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as scratch, open(log, "ab") as out:
        info_file = Path(scratch) / "serve.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "local.serve", "--port", "0", "--concurrency", str(concurrency),
             "--info-file", str(info_file), "--no-examples", "--parameter-overrides", *UNLIMITED],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
        )  # fmt: skip
        try:
            while not info_file.exists():
                if process.poll() is not None:
                    raise SystemExit(f"error: the local stack exited ({process.returncode}); see {log}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"error: the local stack did not start within the time limit; see {log}")
                time.sleep(0.2)
            yield json.loads(info_file.read_text(encoding="utf-8"))
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # local.serve then stops every process it started
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


def id_token(aws_endpoint_url: str, region: str, pool_client_id: str, username: str, password: str) -> str:
    import boto3

    idp = boto3.client(
        "cognito-idp",
        endpoint_url=aws_endpoint_url,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    result = idp.initiate_auth(
        ClientId=pool_client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": username, "PASSWORD": password},
    )
    return str(result["AuthenticationResult"]["IdToken"])


def target_from(info: dict[str, Any], organization: str | None = None) -> Target:
    for url in (info["api_url"], info["aws_endpoint_url"]):
        if urlsplit(url).hostname not in LOOPBACK:
            raise SystemExit(f"error: {url} is not on this machine; the benchmark targets loopback only")
    token = id_token(
        info["aws_endpoint_url"],
        info["region"],
        info["user_pool_client_id"],
        info["demo"]["username"],
        info["demo"]["password"],
    )
    demo = info["demo"]
    return Target(
        info["api_url"].rstrip("/"),
        info["clients"]["public"]["client_id"],
        token,
        organization or demo.get("organization_id") or None,
    )


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/load.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=200, help="device flows (default 200)")
    parser.add_argument("--refreshes", type=int, default=1000, help="refreshes (default 1000)")
    parser.add_argument("--workers", type=int, default=50, help="client threads at once (default 50)")
    parser.add_argument(
        "--time-limit", type=float, default=300, help="seconds for the whole run, start-up included"
    )
    parser.add_argument(
        "--concurrency", type=int, default=4, help="execution environments of the stack it starts (default 4)"
    )
    parser.add_argument("--api-url", help="use this running `make serve` instead of starting a stack")
    parser.add_argument(
        "--info-file", type=Path, default=ROOT / ".local" / "serve.json", help="what `make serve` wrote"
    )
    parser.add_argument(
        "--organization",
        help="the organization every approval names (default: the demo user's, from the info file; "
        "needed when the user belongs to several)",
    )
    parser.add_argument(
        "--output", type=Path, help="the JSON result (default bench/results/load-<time>.json)"
    )
    args = parser.parse_args(argv)
    for name in ("flows", "refreshes"):
        if not 0 <= getattr(args, name) <= 100_000:
            parser.error(f"--{name} must be from 0 to 100000")
    if not 1 <= args.workers <= 200:
        parser.error("--workers must be from 1 to 200")
    if not 0 < args.time_limit <= 3600:
        parser.error("--time-limit must be more than 0 and at most 3600 seconds")
    return args


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Load run: {result['parameters']['flows']} device flows, {result['parameters']['refreshes']} refreshes,"
        f" {result['parameters']['workers']} client workers; stack: {result['stack']['description']}",
        f"machine: {result['machine']['cpus']} CPUs, {result['machine']['platform']}, Python {result['machine']['python']}",
        "",
        f"{'operation':<12} {'count':>6} {'errors':>6} {'per s':>7} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}",
    ]
    for phase in result["phases"].values():
        for name, op in phase["operations"].items():
            latency = op["latency_ms"]
            lines.append(
                f"{name:<12} {op['count']:>6} {op['errors']:>6} {op['throughput_per_s'] or 0:>7}"
                f" {latency['p50'] or 0:>8} {latency['p90'] or 0:>8} {latency['p99'] or 0:>8} {latency['max'] or 0:>8}"
            )
    flows, refreshes = result["phases"]["device_flows"], result["phases"]["refreshes"]
    lines += [
        "",
        f"device flows: {flows['completed']}/{flows['requested']} in {flows['wall_s']} s"
        f" ({flows['flows_per_s']} flows/s; 3 requests each)",
        f"refreshes:    {refreshes['completed']}/{refreshes['requested']} in {refreshes['wall_s']} s"
        f" ({refreshes['refreshes_per_s']} /s, over {refreshes['families']} families)",
        f"errors: {result['errors']}" + ("   (INCOMPLETE: the time limit or an error cut the run short)"
                                         if result["incomplete"] else ""),
        *(f"  {count:>6} x {kind}" for kind, count in result.get("error_kinds", {}).items()),
    ]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    deadline = started + args.time_limit
    stamp = time.strftime("%Y%m%dT%H%M%S")
    output = args.output or RESULTS / f"load-{stamp}.json"
    parameters = {
        "flows": args.flows,
        "refreshes": args.refreshes,
        "workers": args.workers,
        "time_limit_s": args.time_limit,
    }

    with contextlib.ExitStack() as cleanup:
        if args.api_url:
            info = json.loads(args.info_file.read_text(encoding="utf-8"))
            if info["api_url"].rstrip("/") != args.api_url.rstrip("/"):
                raise SystemExit(f"error: {args.info_file} describes {info['api_url']}, not {args.api_url}")
            stack = {"description": f"running `make serve` at {args.api_url}", "started_here": False}
        else:
            print(f"starting a local stack ({args.concurrency} execution environments) ...", flush=True)
            serve_log = output.with_suffix(".serve.log")
            info = cleanup.enter_context(serve(args.concurrency, serve_log, deadline))
            stack = {
                "description": f"`python -m local.serve` started here, {args.concurrency} execution"
                " environments, moto serving one request at a time",
                "started_here": True,
                "concurrency": args.concurrency,
                "start_s": round(time.monotonic() - started, 1),
                "log": str(serve_log.relative_to(ROOT) if serve_log.is_relative_to(ROOT) else serve_log),
            }
            print(f"stack ready in {stack['start_s']} s at {info['api_url']}", flush=True)
        target = target_from(info, args.organization)
        outcome = load(target, args.flows, args.refreshes, args.workers, deadline)

    result = {
        "benchmark": "bench/load.py",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "parameters": parameters,
        "stack": stack,
        **outcome,
        "total_s": round(time.monotonic() - started, 1),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(report(result))
    print(f"written to {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 1 if outcome["errors"] or outcome["incomplete"] else 0


if __name__ == "__main__":
    sys.exit(main())
