"""The admin command's one entry point (`make admin ARGS=...`, `.venv/bin/python -m local.admin ...`) runs
from the repository root, and missing configuration is one clear line on stderr and exit status 2,
never a traceback. Run as a subprocess with an empty environment (plus what each case sets), as a
newcomer's shell would run it; nothing here reaches AWS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = "/nonexistent/serve.json"  # so that a `make serve` left running on this machine is not used


def admin(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "local.admin", "--info-file", NOWHERE, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "no table: set TABLE_NAME"),
        ({"TABLE_NAME": "tokens"}, "no AWS region: set AWS_REGION"),
        (
            # no credentials anywhere: no variables, no files, no instance metadata to ask
            {
                "TABLE_NAME": "tokens",
                "AWS_REGION": "eu-west-1",
                "AWS_CONFIG_FILE": "/nonexistent",
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
                "AWS_EC2_METADATA_DISABLED": "true",
            },
            "no AWS credentials",
        ),
        (
            # the stack `make serve` described is not running: its endpoint does not answer
            {
                "TABLE_NAME": "tokens",
                "AWS_REGION": "eu-west-1",
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                "AWS_MAX_ATTEMPTS": "1",
            },
            "cannot reach AWS at http://127.0.0.1:9",
        ),
    ],
    ids=["nothing", "no-region", "no-credentials", "no-endpoint"],
)
def test_missing_configuration_is_one_line_and_status_2(env: dict[str, str], says: str) -> None:
    result = admin("clients", "list", env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_the_keys_commands_name_the_secret_they_need() -> None:
    env = {
        "TABLE_NAME": "tokens",
        "AWS_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
    }
    result = admin("keys", "show", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "error: set KEYS_SECRET_ID (the Secrets Manager secret of the signing key set), or start "
        "`make serve` and leave TABLE_NAME unset"
    )


def test_help_works_from_the_repository_root() -> None:
    result = admin("--help", env={})
    assert result.returncode == 0, result.stderr
    assert "python -m local.admin" in result.stdout and "clients" in result.stdout


def test_the_layer_ships_no_tools() -> None:
    """The admin command and the OpenAPI generator are tools (docs/design.md): not in the layer."""
    layer = ROOT / "layers" / "authcore"
    assert not (layer / "admin.py").exists() and not (layer / "apidoc.py").exists()
    assert (ROOT / "local" / "admin.py").is_file() and (ROOT / "local" / "openapi.py").is_file()
