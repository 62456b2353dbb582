"""Issue #3 item 7: a structured, secret-free audit log line and an EMF metric for each of
issued, rotated, reuse_detected, session_revoked, device_approved, device_denied, and token_refused
(with its reason) for a refused token."""

from __future__ import annotations

import json
import re

import pytest

from authcore.clock import Manual
from tests.conftest import GRACE, Api, LogCapture
from tests.support.aws import Seed
from tests.support.forge import forged_refresh_token, grant_of


def test_every_audit_event_is_logged_and_counted(
    api: Api,
    account: Seed,
    captured_logs: LogCapture,
    capsys: pytest.CaptureFixture[str],
    clock: Manual,
) -> None:
    denied = api.device_code()
    api.call(
        "POST",
        "/oauth/device/verify",
        body={"user_code": denied["user_code"], "decision": "deny"},
        claims=account.user,
    )
    first = api.signed_in(account)  # device_authorized, device_approved, issued
    second = api.call(
        "POST", "/auth/refresh", body={"refresh_token": first["refresh_token"]}
    ).json()  # rotated
    clock.advance(GRACE + 1)
    api.call(
        "POST", "/auth/refresh", body={"refresh_token": first["refresh_token"]}
    )  # reuse -> session_revoked
    other = api.signed_in(account)
    api.call("POST", "/auth/logout", body={"refresh_token": other["refresh_token"]})  # session_revoked
    forged = forged_refresh_token(grant_of(other["refresh_token"]))
    api.call("POST", "/auth/refresh", body={"refresh_token": forged})  # token_refused (forged)

    records = [json.loads(line) for line in captured_logs.lines]
    audits = [r for r in records if r.get("message") == "audit"]
    seen = {r["audit_event"] for r in audits}
    assert seen == {
        "device_authorized",
        "device_approved",
        "device_denied",
        "issued",
        "rotated",
        "reuse_detected",
        "session_revoked",
        "token_refused",
    }
    by_event = {r["audit_event"]: r for r in reversed(audits)}  # the first of each
    assert (
        by_event["device_approved"]["user_id"] == "user-1" and by_event["device_approved"]["org_id"] == "acme"
    )
    assert by_event["issued"]["client_id"] == "demo-cli" and by_event["issued"]["grant_id"] == grant_of(
        first["refresh_token"]
    )
    assert by_event["rotated"]["generation"] == 2
    assert by_event["reuse_detected"]["grant_id"] == grant_of(first["refresh_token"])
    assert by_event["token_refused"]["reason"] == "forged"
    assert by_event["token_refused"]["grant_id"] == grant_of(other["refresh_token"])
    secrets = [
        first["refresh_token"],
        second["refresh_token"],
        first["access_token"],
        denied["device_code"],
        denied["user_code"],
        forged,
    ]
    for record in audits:
        text = json.dumps(record)
        assert not any(s in text for s in secrets)
    # each audit line is also its metric (EMF): the directive names it, and the line holds its value
    names = set()
    for record in audits:
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "TokenService" and directive["Dimensions"] == [["service"]]
        assert record["service"] == "token-service"
        for metric in directive["Metrics"]:
            assert metric["Unit"] == "Count" and record[metric["Name"]] == 1
            names.add(metric["Name"])
        assert record["audit_event"] in {m["Name"] for m in directive["Metrics"]}
    assert seen <= names
    assert "token_refused_forged" in names
    assert capsys.readouterr().out == ""  # no other metric lines: nothing is flushed after a request


def test_audit_lines_have_the_loggers_keys_and_are_written_at_any_log_level(
    api: Api, account: Seed, captured_logs: LogCapture
) -> None:
    """An audit line is written beside Powertools' own lines, not through them (observability.audit):
    it carries the same keys as the logger's lines of the same invocation, in Powertools' order and
    timestamp format, and is written whatever POWERTOOLS_LOG_LEVEL says (its metric is the alarms')."""
    from authcore.observability import logger

    level = logger.log_level
    logger.setLevel("WARNING")
    try:
        api.signed_in(account)
        logger.warning("after the request")  # the keys the last invocation gave the logger
    finally:
        logger.setLevel(level)
    records = [json.loads(line) for line in captured_logs.lines]
    audits = [r for r in records if r.get("message") == "audit"]
    assert [r["audit_event"] for r in audits] == ["device_authorized", "device_approved", "issued"]
    warning, issued = records[-1], audits[-1]
    assert warning["message"] == "after the request" and "audit_event" not in warning
    for key in ("service", "cold_start", "function_name", "function_memory_size", "function_arn",
                "function_request_id", "correlation_id"):  # fmt: skip
        assert issued[key] == warning[key], key
    assert list(issued)[:4] == list(warning)[:4] == ["level", "location", "message", "timestamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4}", warning["timestamp"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4}", issued["timestamp"])
    assert issued["level"] == "INFO"


def test_an_audit_line_that_cannot_be_written_does_not_lose_the_answer(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str]
) -> None:
    """As logging does with a line it cannot write: the rotation is done, so its answer (the successor
    token) still goes back, and stderr says that a line was lost."""
    import io
    import logging
    from typing import Any, cast

    from authcore.observability import logger

    first = api.signed_in(account)
    handler = cast(logging.StreamHandler[Any], logger.registered_handler)
    closed = io.StringIO()
    closed.close()
    previous = handler.setStream(cast(Any, closed))
    try:
        answer = api.call("POST", "/auth/refresh", body={"refresh_token": first["refresh_token"]})
    finally:
        handler.setStream(previous)
    assert answer.status == 200 and answer.json()["refresh_token"]
    assert "audit line not written: ValueError" in capsys.readouterr().err
