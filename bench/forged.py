"""What a refused refresh token costs the server, side by side (`make bench-forged`).

    python bench/forged.py [--samples 300] [--warmup 20] [--generation 200000] [--time-limit 110]
                           [--seed 1] [--output FILE]

Before commit cb57551 a forged refresh token naming a real grant made the server walk that family's
history; now a token carries its generation under an HMAC tag, and a forgery is refused by the tag
before any DynamoDB call. This benchmark shows it by measuring, in ONE run, the handler of
POST /auth/refresh (functions/refresh, loaded in this process as Lambda would run it) with:

  a  the real, current refresh token of a family at generation --generation (a real rotation)
  b1 a forged token naming that family's grant, generation 1
  bN a forged token naming that family's grant, generation --generation + 1
  c  an authentic but old token of another family (reuse: ends that family; a fresh one per sample)
  d  an unknown token: well formed, forged, naming a grant that does not exist (the baseline)
  e  a malformed token ("garbage")

What is measured: time.process_time_ns() around the handler call (this process's CPU; DynamoDB and
Secrets Manager are a moto server in another process, so their CPU is not counted), and, during the
same call, the DynamoDB calls (a botocore before-call hook) and the HMACs computed by authcore.tokens
(calls to its `hmac.new` and `hmac.digest`, through a counting wrapper installed only in this process). The variants are
interleaved: every round takes one sample of each, in a shuffled order, after the round's set-up.

The family of (a) is made by the real flow (device code, approval, exchange, three real rotations); its
generation-N token is then minted OFFLINE with the family's real key (the key set's Hmac, walking
`successor` as the server would: the offline chain is first checked against the three real rotations),
and the item's rt_generation, rt_digest and rt_prev_digest are set to that token's, with boto3. That
walk is set-up, not measured. Each (a) sample rotates the family once more, and presents the token the
previous sample got back.

Prints a table (median and p90 in microseconds, ratios to (d), DynamoDB calls, HMACs) and writes JSON
(the raw samples too) under bench/results/; the functions' own log lines go to a .log file beside it.
A benchmark, not a test: it asserts no timing. It exits 1 only when a sample got an answer other than
its variant's expected one (status and error; for (a) the key's own successor; for (c) the family
ended for reuse), so the figures are of the paths they claim to be. No round starts after
--time-limit seconds (set-up included); the rounds so far are then the result, reported as cut short.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "layers")]

import boto3  # noqa: E402

from authcore import runtime, tokens  # noqa: E402
from bench.common import (  # noqa: E402
    CLIENT,
    RESULTS,
    AwsCalls,
    SetupFailed,
    code_version,
    expect,
    machine,
    percentile,
    service_environment,
    stdout_to,
)
from local import lambda_host  # noqa: E402
from local.lambda_host import LambdaContext, http_event, load_function  # noqa: E402
from local.moto_server import MotoServer  # noqa: E402
from tests.support import aws, forge  # noqa: E402
from tests.support.idp import IDP  # noqa: E402

BASELINE = "d"
VARIANTS = {
    "a": "real, current token (family at generation N)",
    "b1": "forged, names that grant, generation 1",
    "bN": "forged, names that grant, generation N+1",
    "c": "authentic, old (reuse; ends its family)",
    "d": "unknown: forged, names no grant",
    "e": 'malformed ("garbage")',
}
lambda_host.SIGN_IN = IDP.bearer


# ---------------------------------------------------------------- counting


class CountingHmac:
    """Stands in for the `hmac` module inside authcore.tokens: counts `hmac.new` and `hmac.digest` (each
    one HMAC), delegates the rest."""

    def __init__(self, real: ModuleType) -> None:
        self._real = real
        self.count = 0

    def new(self, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return self._real.new(*args, **kwargs)

    def digest(self, *args: Any, **kwargs: Any) -> Any:
        self.count += 1
        return self._real.digest(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


@contextlib.contextmanager
def counting() -> Iterator[tuple[CountingHmac, AwsCalls]]:
    """Install the counters (after set-up, for the measured run only); uninstall them on the way out."""
    real = vars(tokens)["hmac"]
    wrapper = CountingHmac(real)
    calls = AwsCalls()
    ddb_events = runtime.store().client.meta.events
    sm_events = runtime._secrets_provider().client.meta.events
    vars(tokens)["hmac"] = wrapper
    ddb_events.register("before-call.dynamodb", calls.on_dynamodb)
    sm_events.register("before-call.secrets-manager", calls.on_other)
    try:
        yield wrapper, calls
    finally:
        sm_events.unregister("before-call.secrets-manager", calls.on_other)
        ddb_events.unregister("before-call.dynamodb", calls.on_dynamodb)
        vars(tokens)["hmac"] = real


# ---------------------------------------------------------------- the service, in this process


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


class Service:
    """The functions' handlers, loaded in this process against the moto server, and the real flow."""

    def __init__(self, seed: aws.Seed) -> None:
        self.seed = seed
        self.refresh_handler: Handler = load_function("functions/refresh")
        self._routes = {
            "/oauth/device/code": load_function("functions/device_authorization"),
            "/oauth/device/verify": load_function("functions/device_verification"),
            "/auth/device/exchange": load_function("functions/device_exchange"),
            "/auth/refresh": self.refresh_handler,
        }

    def call(self, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        out = self._routes[path](http_event("POST", path, **kwargs), LambdaContext(function_name="bench"))
        return int(out["statusCode"]), json.loads(out.get("body") or "{}")

    def family(self) -> str:
        """A new family by the real device flow: its first refresh token."""
        status, started = self.call("/oauth/device/code", form={"client_id": CLIENT})
        expect(status == 200, f"device code: {status} {started}")
        status, body = self.call(
            "/oauth/device/verify",
            body={"user_code": started["user_code"], "decision": "approve"},
            claims=self.seed.user,
        )
        expect(status == 200, f"approval: {status} {body}")
        status, body = self.call(
            "/auth/device/exchange", body={"device_code": started["device_code"], "client_id": CLIENT}
        )
        expect(status == 200, f"exchange: {status} {body}")
        return str(body["refresh_token"])

    def rotate(self, token: str) -> str:
        status, body = self.call("/auth/refresh", body={"refresh_token": token})
        expect(status == 200, f"refresh: {status} {body}")
        return str(body["refresh_token"])


def _parsed(text: str) -> tokens.RefreshToken:
    token = tokens.parse_refresh_token(text)
    expect(token is not None, "not a well-formed refresh token")
    assert token is not None
    return token


def big_family(service: Service, table: str, hmac: tokens.Hmac, generation: int) -> tuple[str, str, float]:
    """A family whose current generation is ``generation``: its grant id, its current token, and the
    seconds the offline walk took. Real flow and three real rotations first; the offline chain must
    reproduce them before it is trusted to go on."""
    real = [service.family()]
    for _ in range(3):
        real.append(service.rotate(real[-1]))
    offline = [real[0]]
    for _ in range(3):
        offline.append(hmac.successor(_parsed(offline[-1])))
    expect(offline == real, "the offline successor chain differs from the server's rotations")
    grant_id = _parsed(real[-1]).grant_id

    started = time.monotonic()
    previous, current = real[-2], real[-1]
    for _ in range(generation - len(real)):
        previous, current = current, hmac.successor(_parsed(current))
    walk_s = time.monotonic() - started
    expect(_parsed(current).generation == generation, "the walk did not reach its generation")

    boto3.client("dynamodb", region_name=aws.REGION).update_item(
        TableName=table,
        Key={"pk": {"S": f"GRANT#{grant_id}"}, "sk": {"S": "GRANT"}},
        UpdateExpression="SET rt_generation = :g, rt_digest = :d, rt_prev_digest = :p",
        ConditionExpression="rt_generation = :was AND rt_digest = :wasd",
        ExpressionAttributeValues={
            ":g": {"N": str(generation)},
            ":d": {"S": hmac.digest(current)},
            ":p": {"S": hmac.digest(previous)},
            ":was": {"N": str(len(real))},
            ":wasd": {"S": hmac.digest(real[-1])},
        },
    )
    return grant_id, current, walk_s


def reused_token(service: Service) -> str:
    """An authentic token two generations behind its family's current one (outside any grace)."""
    first = service.family()
    service.rotate(service.rotate(first))
    return first


def revoke_reason(side: Any, table: str, token: str) -> str | None:
    """Why the token's family ended (None: it has not), read from the item."""
    key = {"pk": {"S": f"GRANT#{forge.grant_of(token)}"}, "sk": {"S": "GRANT"}}
    item = side.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item") or {}
    reason = item.get("revoke_reason", {}).get("S")
    return str(reason) if reason is not None else None


# ---------------------------------------------------------------- measuring


@dataclass
class Sample:
    cpu_ns: int
    wall_ns: int
    dynamodb: list[str]
    hmacs: int
    other_aws: list[str]
    status: int
    error: str | None
    successor: str | None  # the refresh token the answer carries, if any


@dataclass
class Variant:
    key: str
    description: str
    expected_status: int
    expected_error: str | None
    samples: list[Sample] = field(default_factory=list)
    unexpected: Counter[str] = field(default_factory=Counter)


def measure(handler: Handler, token: str, hmacs: CountingHmac, calls: AwsCalls) -> Sample:
    """One POST /auth/refresh: process CPU time around the handler call, with the garbage collector off
    during it (as timeit does) and a collection before it, both outside the measured span."""
    event = http_event("POST", "/auth/refresh", body={"refresh_token": token})
    context = LambdaContext(function_name="refresh")
    gc.collect()
    calls.reset()
    hmacs.count = 0
    gc.disable()
    try:
        wall0 = time.perf_counter_ns()
        cpu0 = time.process_time_ns()
        out = handler(event, context)
        cpu1 = time.process_time_ns()
        wall1 = time.perf_counter_ns()
    finally:
        gc.enable()
    count = hmacs.count
    body = json.loads(out.get("body") or "{}")
    successor = body.get("refresh_token") if isinstance(body, dict) else None
    error = None
    if isinstance(body, dict) and int(out["statusCode"]) >= 400:
        error = str(body.get("error") or body.get("code") or body.get("type") or "?")
    return Sample(
        cpu1 - cpu0,
        wall1 - wall0,
        list(calls.dynamodb),
        count,
        list(calls.other),
        int(out["statusCode"]),
        error,
        successor if isinstance(successor, str) else None,
    )


def spread(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def summarize(variants: dict[str, Variant]) -> dict[str, Any]:
    base = [s.cpu_ns for s in variants[BASELINE].samples]
    base_median = statistics.median(base)
    out: dict[str, Any] = {}
    for key, variant in variants.items():
        cpu = [s.cpu_ns for s in variant.samples]
        ordered = sorted(cpu)
        median = statistics.median(cpu)
        paired = [x / y for x, y in zip(cpu, base, strict=True)]  # the same round: side by side
        out[key] = {
            "description": variant.description,
            "samples": len(cpu),
            "cpu_us": {
                "median": round(median / 1000, 1),
                "p90": round(percentile(ordered, 90) / 1000, 1),
                "min": round(ordered[0] / 1000, 1),
                "mean": round(statistics.fmean(cpu) / 1000, 1),
            },
            "ratio_to_d": round(median / base_median, 2),
            "paired_ratio_to_d": {
                "median": round(statistics.median(paired), 2),
                "p10": round(percentile(sorted(paired), 10), 2),
                "p90": round(percentile(sorted(paired), 90), 2),
            },
            "wall_ms_median": round(statistics.median(s.wall_ns for s in variant.samples) / 1e6, 2),
            "dynamodb_calls": spread([len(s.dynamodb) for s in variant.samples]),
            "dynamodb_operations": dict(Counter(op for s in variant.samples for op in s.dynamodb)),
            "hmacs": spread([s.hmacs for s in variant.samples]),
            "other_aws_calls": sum(len(s.other_aws) for s in variant.samples),
            "status": dict(Counter(str(s.status) for s in variant.samples)),
            "error": dict(Counter(str(s.error) for s in variant.samples)),
            "unexpected": dict(variant.unexpected),
        }
    return out


def run(args: argparse.Namespace, deadline: float) -> dict[str, Any]:
    setup_started = time.monotonic()
    with MotoServer() as url:
        table, secret = "bench-forged", "bench/forged/keys"
        os.environ.update(service_environment(url, table, secret))
        aws.create_table(table, endpoint_url=url)
        aws.create_keys(secret, endpoint_url=url)
        seed = aws.seed(table, secret, endpoint_url=url)
        runtime.reset()
        hmac = aws.keyset(secret, endpoint_url=url).hmac
        service = Service(seed)

        print(f"set-up: a family at generation {args.generation:,} (offline walk) ...", file=sys.stderr)
        grant_id, current, walk_s = big_family(service, table, hmac, args.generation)
        forged_1 = forge.forged_refresh_token(grant_id, CLIENT, 1)
        forged_n = forge.forged_refresh_token(grant_id, CLIENT, args.generation + 1)
        unknown = forge.forged_refresh_token(tokens.new_grant_id(), CLIENT, 1)
        expect(unknown != forged_1 and forge.grant_of(forged_n) == grant_id, "forged tokens")

        variants = {
            "a": Variant("a", VARIANTS["a"], 200, None),
            "b1": Variant("b1", VARIANTS["b1"], 401, "invalid_grant"),
            "bN": Variant("bN", VARIANTS["bN"], 401, "invalid_grant"),
            "c": Variant("c", VARIANTS["c"], 401, "invalid_grant"),
            "d": Variant("d", VARIANTS["d"], 401, "invalid_grant"),
            "e": Variant("e", VARIANTS["e"], 401, "invalid_grant"),
        }
        fixed = {"b1": forged_1, "bN": forged_n, "d": unknown, "e": "garbage"}
        order = list(variants)
        rng = random.Random(args.seed)
        setup_s = time.monotonic() - setup_started
        print(f"set-up done in {setup_s:.1f} s (walk {walk_s:.1f} s); measuring ...", file=sys.stderr)

        side = boto3.client("dynamodb", region_name=aws.REGION)  # checks after a sample, never during one
        gc.collect()
        gc.freeze()  # what set-up left alive: out of every later collection, so each is short
        measured_started = time.monotonic()
        presented: list[int] = []  # the generations (a) presented in measured samples
        with counting() as (hmacs, calls):
            for round_no in range(args.warmup + args.samples):
                if round_no > args.warmup and time.monotonic() > deadline:
                    break  # the time limit: the rounds so far are the result (reported as cut short)
                tokens_now = dict(fixed)
                tokens_now["a"] = current
                tokens_now["c"] = reused_token(service)  # set-up of this round's (c), not measured
                rng.shuffle(order)
                for key in order:
                    sample = measure(service.refresh_handler, tokens_now[key], hmacs, calls)
                    variant = variants[key]
                    if key == "c" and revoke_reason(side, table, tokens_now["c"]) != "reuse":
                        variant.unexpected["the reused token's family did not end"] += 1
                    if key == "a" and sample.successor is not None:
                        if sample.successor != hmac.successor(_parsed(current)):
                            variant.unexpected["a successor other than the key's own"] += 1
                        current = sample.successor  # the next (a) sample presents it
                    if (sample.status, sample.error) != (variant.expected_status, variant.expected_error):
                        variant.unexpected[f"{sample.status} {sample.error}"] += 1
                    if round_no >= args.warmup:
                        variant.samples.append(sample)
                        if key == "a":
                            presented.append(_parsed(tokens_now["a"]).generation)

    measured_s = time.monotonic() - measured_started
    return {
        "parameters": {
            "samples": args.samples,
            "warmup_rounds": args.warmup,
            "time_limit_s": args.time_limit,
            "generation": args.generation,
            "seed": args.seed,
        },
        "family_a": {
            "generation_set_up": args.generation,  # then rotated by every (a) sample, warm-up included
            "generations_measured": [min(presented), max(presented)],
            "offline_walk_s": round(walk_s, 1),
        },
        "setup_s": round(setup_s, 1),
        "measured_phase_s": round(measured_s, 1),
        "rounds_measured": len(variants[BASELINE].samples),
        "cut_short": len(variants[BASELINE].samples) < args.samples,
        "variants": summarize(variants),
        "raw": {
            key: [
                {"cpu_ns": s.cpu_ns, "wall_ns": s.wall_ns, "dynamodb": s.dynamodb, "hmacs": s.hmacs}
                for s in v.samples
            ]
            for key, v in variants.items()
        },
        "unexpected": sum(sum(v.unexpected.values()) for v in variants.values()),
    }


# ---------------------------------------------------------------- main


def report(result: dict[str, Any]) -> str:
    fam = result["family_a"]
    lines = [
        f"POST /auth/refresh, handler CPU time in this process (moto server elsewhere); "
        f"{result['rounds_measured']} interleaved rounds (one sample of each variant) after {result['parameters']['warmup_rounds']} warm-up"
        + (
            f"  (CUT SHORT by the time limit: {result['parameters']['samples']} asked)"
            if result["cut_short"]
            else ""
        ),
        f"machine: {result['machine']['cpus']} CPUs, {result['machine']['platform']}, Python {result['machine']['python']},"
        f" load average {'/'.join(map(str, result['machine']['load_average_1_5_15']))} (1/5/15 min, at the end)",
        f"family of (a): set up at generation {fam['generation_set_up']:,}; measured samples presented"
        f" generations {fam['generations_measured'][0]:,} to {fam['generations_measured'][1]:,}",
        "",
        f"{'':<3} {'variant':<46} {'median us':>9} {'p90 us':>8} {'ratio':>6} {'paired':>7} {'DynamoDB':>8} {'HMACs':>6} {'wall ms':>8}",
    ]
    for key, v in result["variants"].items():
        lines.append(
            f"{key:<3} {v['description']:<46} {v['cpu_us']['median']:>9} {v['cpu_us']['p90']:>8}"
            f" {v['ratio_to_d']:>6} {v['paired_ratio_to_d']['median']:>7} {v['dynamodb_calls']:>8}"
            f" {v['hmacs']:>6} {v['wall_ms_median']:>8}"
        )
    lines += [
        "",
        "ratio: median / median of (d); paired: median over rounds of sample / same round's (d) sample",
        "DynamoDB operations: " + "; ".join(
            f"{key} " + (", ".join(f"{op} x{n}" for op, n in v["dynamodb_operations"].items()) or "none")
            for key, v in result["variants"].items()
        ),
        f"other AWS calls (Secrets Manager) during measured calls: {sum(v['other_aws_calls'] for v in result['variants'].values())}",
        f"set-up {result['setup_s']} s (offline walk {fam['offline_walk_s']} s), measured phase"
        f" {result['measured_phase_s']} s, total {result['total_s']} s;"
        f" unexpected answers: {result['unexpected']}",
    ]  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/forged.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=300, help="measured rounds (default 300)")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured rounds first (default 20)")
    parser.add_argument(
        "--generation", type=int, default=200_000, help="generation of the family of (a) (default 200000)"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=110,
        help="seconds for the whole run: no round starts after it (default 110)",
    )
    parser.add_argument("--seed", type=int, default=1, help="seed of the shuffled order (default 1)")
    parser.add_argument(
        "--output", type=Path, help="the JSON result (default bench/results/forged-<time>.json)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.samples <= 10_000:
        parser.error("--samples must be from 1 to 10000")
    if not 0 <= args.warmup <= 1_000:
        parser.error("--warmup must be from 0 to 1000")
    if not 0 < args.time_limit <= 3600:
        parser.error("--time-limit must be more than 0 and at most 3600 seconds")
    if not 5 <= args.generation <= 2_000_000:
        parser.error("--generation must be from 5 to 2000000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    stamp = time.strftime("%Y%m%dT%H%M%S")
    output = args.output or RESULTS / f"forged-{stamp}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    log_path = output.with_suffix(".log")
    try:
        with stdout_to(log_path):  # the functions' log lines and metrics, as Lambda's stdout
            outcome = run(args, started + args.time_limit)
    except SetupFailed as exc:
        print(f"error: set-up failed: {exc} (see {log_path})", file=sys.stderr)
        return 1
    result = {
        "benchmark": "bench/forged.py",
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
