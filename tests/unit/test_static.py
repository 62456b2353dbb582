"""The conventions hold: ruff clean, ruff-formatted, mypy --strict on the layer, every function, the
local stack and the CLI. A lint error fails `make test` like any other defect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)


def test_ruff_check() -> None:
    result = run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format() -> None:
    result = run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = run(str(BIN / "mypy"), "layers/authcore", "local", "authcli")
    assert result.returncode == 0, result.stdout + result.stderr
    for app in sorted(ROOT.glob("functions/*/app.py")):  # each is a module named `app`: one run each
        result = run(str(BIN / "mypy"), str(app.relative_to(ROOT)))
        assert result.returncode == 0, result.stdout + result.stderr
