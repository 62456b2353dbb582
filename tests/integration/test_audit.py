"""Issue #3 item 7: a structured, secret-free audit log line and an EMF metric for each of
issued, rotated, reuse_detected, session_revoked, device_approved, device_denied, and token_refused
(with its reason) for a refused token."""

from __future__ import annotations

import json

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
    emitted = capsys.readouterr().out
    metrics = [json.loads(line) for line in emitted.splitlines() if line.startswith('{"_aws"')]
    names = {m["Name"] for doc in metrics for d in doc["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert seen <= names
    assert "token_refused_forged" in names
    assert all(doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TokenService" for doc in metrics)
