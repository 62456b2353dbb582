"""`make bench-cpu` works: one `bench/cpu.py --quick` run, its JSON checked for structure (and the
DynamoDB calls it counted, which are a budget, not a timing). No figure of it is asserted: a benchmark
on a shared machine measures, it does not pass or fail (bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_a_quick_run_reports_every_measurement(tmp_path: Path) -> None:
    output = tmp_path / "cpu.json"
    done = subprocess.run(
        [sys.executable, "bench/cpu.py", "--quick", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    result = json.loads(output.read_text())
    assert result["unexpected"] == 0

    init = result["init"]
    assert set(init) == {"DeviceExchangeFunction", "DiscoveryFunction", "floor"}
    for name, figures in init.items():
        assert figures["samples"] == 1 and figures["cpu_ms"]["median"] > 0, name
        assert figures["peak_rss_mb"] > 0 and figures["modules"] > 100, name
        assert isinstance(figures["ratio_to_floor"], float), name
    assert init["floor"]["ratio_to_floor"] == 1.0

    first = result["first_call"]
    assert {"exchange", "floor"} <= set(first) and first["unexpected"] == {}
    assert first["exchange"]["function"] == "DeviceExchangeFunction"

    warm = result["warm"]
    assert set(warm) >= {"exchange", "refresh", "framework", "floor"}
    for key in ("exchange", "refresh", "framework", "floor"):
        assert warm[key]["samples"] == 5 and warm[key]["cpu_us"]["median"] > 0, key
        assert warm[key]["dynamodb_calls"] == [1], key  # the budget: one call per exchange and refresh
        assert warm[key]["unexpected"] == {}, key
    assert warm["exchange"]["dynamodb_operations"] == {"UpdateItem": 5}
    assert warm["refresh"]["dynamodb_operations"] == {"UpdateItem": 5}
    assert (
        sum(warm[k]["other_aws_calls"] for k in warm if isinstance(warm[k], dict) and "samples" in warm[k])
        == 0
    )

    assert set(result["targets"]["init_met"]) == {"DeviceExchangeFunction", "DiscoveryFunction"}
    assert set(result["targets"]["warm_met"]) == {"exchange", "refresh"}
    why = result["targets"]["warm_attribution"]  # a missed target comes with its measured reason
    assert why["framework_ratio"] == warm["framework"]["ratio_to_floor"]
    fw, floor = warm["framework"]["raw_cpu_us"], warm["floor"]["raw_cpu_us"]
    for key in ("exchange", "refresh"):
        paired = sorted((o - f) / b for o, f, b in zip(warm[key]["raw_cpu_us"], fw, floor, strict=True))
        assert why["own_work_paired"][key] == round(paired[len(paired) // 2], 2)  # 5 samples: the middle one
    missed = [k for k, ok in result["targets"]["warm_met"].items() if not ok]
    assert ("MISSED (warm)" in done.stdout) == bool(missed), done.stdout
    printed = done.stdout
    for heading in ("INIT:", "FIRST CALL:", "WARM:"):
        assert heading in printed, printed
    assert output.with_suffix(".log").is_file()  # the functions' own log lines, beside the JSON
