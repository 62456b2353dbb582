"""What the in-process benchmarks (bench/cpu.py, bench/forged.py) share: the warm environment they run
the handlers in, the counters of AWS calls, nearest-rank statistics, where the functions' output goes,
and what was measured on which machine. Imported after the script has put the repository and the layer
on sys.path."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
CLIENT = "demo-cli"


class SetupFailed(Exception):
    pass


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise SetupFailed(what)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list."""
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class AwsCalls:
    """Operations sent during a measured call (botocore before-call hooks on the clients in use)."""

    def __init__(self) -> None:
        self.dynamodb: list[str] = []
        self.other: list[str] = []

    def on_dynamodb(self, model: Any, **_: Any) -> None:
        self.dynamodb.append(model.name)

    def on_other(self, model: Any, **_: Any) -> None:
        self.other.append(model.name)

    def reset(self) -> None:
        self.dynamodb.clear()
        self.other.clear()


def service_environment(url: str, table: str, secret: str) -> dict[str, str]:
    """As tests/conftest.py's, against the moto server at ``url``, with the caches of a warm environment."""
    from tests.support import aws
    from tests.support.idp import IDP

    return {
        "AWS_ENDPOINT_URL": url,  # every boto3 client of this process: the moto server
        "AWS_DEFAULT_REGION": aws.REGION,
        "AWS_REGION": aws.REGION,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "TABLE_NAME": table,
        "KEYS_SECRET_ID": secret,
        "JWKS_SECRET_ID": aws.JWKS_SECRET,
        "ISSUER": "https://auth.example.test",
        "POWERTOOLS_SERVICE_NAME": "token-service",
        "POWERTOOLS_METRICS_NAMESPACE": "TokenService",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_DEV": "false",
        # A warm environment: the client registry and the key set stay cached for the whole run, so
        # no sample pays a look-up that the others do not.
        "CLIENT_CACHE_SECONDS": "3600",
        "SECRET_CACHE_SECONDS": "3600",
        # Every device flow of a run comes from one address: no per-address limit (bench/load.py's
        # stack has none either).
        "DEVICE_AUTHORIZATIONS_PER_IP": "0",
        **IDP.env,  # approvals sign the person in with an ID token of the tests' identity provider
    }


@contextlib.contextmanager
def stdout_to(path: Path) -> Iterator[None]:
    """File descriptor 1 goes to ``path`` (the functions' log lines: the Powertools logger holds
    sys.stdout from import on, so swapping sys.stdout would not do); progress goes to stderr meanwhile."""
    sys.stdout.flush()
    saved = os.dup(1)
    with path.open("w", encoding="utf-8") as log:
        os.dup2(log.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def code_version(*paths: str) -> dict[str, Any]:
    """The commit measured, and the files under ``paths`` that differ from it (a working tree)."""

    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except OSError:
            return ""
        return done.stdout if done.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", *paths).splitlines()
    return {"commit": git("rev-parse", "HEAD").strip(), "modified": [line[3:] for line in changed if line]}


def machine() -> dict[str, Any]:
    return {
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],  # at the end: how noisy it was
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
