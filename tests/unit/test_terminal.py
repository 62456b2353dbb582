"""make serve's terminal (local.terminal): a short line per request and per audit event, warnings and
errors; metrics and other log lines only in the raw log, which gets every line whole."""

from __future__ import annotations

import io
import json
from pathlib import Path

from local.terminal import Terminal, short_access, short_log


def test_an_access_line_is_one_short_line() -> None:
    record = {
        "routeKey": "POST /oauth/token",
        "status": "200",
        "responseLatency": "12",
        "function": "TokenFunction",
    }
    assert short_access(record) == "POST /oauth/token 200 12 ms TokenFunction"
    unmatched = {
        "routeKey": "$default",
        "httpMethod": "GET",
        "path": "/nope",
        "status": "404",
        "responseLatency": "3",
    }
    assert short_access(unmatched) == "GET /nope 404 3 ms"


def test_audit_events_and_problems_are_shown_and_nothing_else() -> None:
    audit = {
        "message": "audit",
        "audit_event": "session_revoked",
        "by": "user",
        "client_id": "demo-cli",
        "x": 1,
    }
    assert short_log(audit) == "  audit session_revoked by=user client_id=demo-cli"
    error = {
        "level": "ERROR",
        "message": "dependency fault",
        "function_name": "refresh",
        "problem": "bad_gateway",
    }
    assert short_log(error) == "  error refresh: dependency fault bad_gateway"
    assert short_log({"level": "INFO", "message": "rotation step"}) is None


def test_every_line_goes_to_the_log_whole_and_the_terminal_gets_the_short_ones(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    terminal = Terminal(tmp_path / "serve.log", out, err)
    metric = json.dumps({"_aws": {"CloudWatchMetrics": []}, "rotated": [1.0]})
    audit = json.dumps(  # an audit line is also its metric (observability.audit): shown all the same
        {
            "message": "audit",
            "audit_event": "rotated",
            "generation": 2,
            "_aws": {"CloudWatchMetrics": []},
            "rotated": 1,
        }
    )
    for line in (metric, audit, "Local token service ready", "REPORT RequestId: 1 Duration: 2 ms"):
        terminal.function_line(line)
    terminal.access.write(
        json.dumps({"routeKey": "GET /device", "status": "200", "responseLatency": "5"}) + "\n"
    )
    terminal.close()
    assert out.getvalue().splitlines() == ["  audit rotated generation=2", "Local token service ready"]
    assert err.getvalue().splitlines() == ["GET /device 200 5 ms"]
    logged = (tmp_path / "serve.log").read_text().splitlines()
    assert logged[:4] == [metric, audit, "Local token service ready", "REPORT RequestId: 1 Duration: 2 ms"]
    assert json.loads(logged[4])["routeKey"] == "GET /device"
