"""Logs never contain a token, code, secret, cookie or query string (docs/design.md; docs/api.md: "query
strings end up in browser history and proxy logs; this service never logs them").

One test runs everything a login touches, success and error paths, through the handlers: device
authorization, verification (GET and POST, typed in lower case), polling (pending, slow_down), both
exchanges, refresh by body and by cookie, the legacy GET (success and error), introspection,
revocation, logout, reuse, denial, and a fault. Then it scans every line our logger wrote (the
`captured_logs` fixture), every record any library logged at INFO or above (caplog), and everything
written to stdout/stderr (capfd: Powertools writes JSON logs and EMF metrics there), for every secret
it saw. It also checks the audit trail is there, so that the scan is not vacuous.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
from typing import Any

import pytest

from local.lambda_host import HttpResult
from tests.conftest import ORIGIN, Api, LogCapture
from tests.support import aws

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


class Secrets:
    """Everything the flow saw that must never be logged."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def add(self, what: str, value: str) -> str:
        assert value, what
        self.values[f"{what} #{len(self.values)}"] = value
        return value

    def user_code(self, shown: str) -> None:
        self.add("user code (shown)", shown)
        self.add("user code (normalized)", shown.replace("-", ""))
        self.add("user code (typed)", shown.lower().replace("-", " "))

    def access_token(self, token: str) -> None:
        self.add("access token", token)
        self.add("access token signature", token.rsplit(".", 1)[1])

    def tokens(self, body: dict[str, Any]) -> None:
        data = body.get("data", body)
        self.access_token(data["access_token"])
        if "refresh_token" in data:
            self.add("refresh token", data["refresh_token"])


def ok(result: HttpResult, status: int = 200) -> Any:
    assert result.status == status, result.text
    return result.json()


def cookie_value(result: HttpResult) -> str:
    (cookie,) = [c for c in result.cookies if c.startswith("refresh_token=")]
    return cookie.split(";", 1)[0].removeprefix("refresh_token=")


def run_everything(api: Api, seed: aws.Seed, secrets: Secrets) -> None:
    secrets.add("client secret", seed.confidential_secret)
    basic = "Basic " + base64.b64encode(f"backend:{seed.confidential_secret}".encode()).decode()
    secrets.add("basic credentials", basic.removeprefix("Basic "))

    # 1. device authorization (form), verification typed in lower case, polling, OAuth exchange
    started = api.device_code(scope="read")
    device_code = secrets.add("device code", started["device_code"])
    secrets.user_code(started["user_code"])
    poll = {"grant_type": DEVICE, "device_code": device_code, "client_id": "demo-cli"}
    assert ok(api.call("POST", "/oauth/token", form=poll), 400)["error"] == "authorization_pending"
    assert ok(api.call("POST", "/oauth/token", form=poll), 400)["error"] == "slow_down"
    typed = started["user_code"].lower().replace("-", " ")
    ok(api.call("GET", "/oauth/device/verify", query={"user_code": typed}, claims=seed.user))
    ok(api.approve(typed, seed.user))
    oauth_tokens = ok(api.call("POST", "/oauth/token", form=poll))
    secrets.tokens(oauth_tokens)
    resent = ok(api.call("POST", "/oauth/token", form=poll))  # its answer lost: the same tokens again
    assert resent["refresh_token"] == oauth_tokens["refresh_token"]
    secrets.tokens(resent)

    # 2. device authorization (JSON), approval for one of two organizations, product exchange
    started = ok(api.call("POST", "/oauth/device/code", body={"client_id": "demo-cli"}))
    secrets.add("device code", started["device_code"])
    secrets.user_code(started["user_code"])
    ok(api.approve(started["user_code"], seed.multi_user, organization_id="globex"))
    wrong_client = api.call(
        "POST", "/auth/device/exchange", body={"device_code": started["device_code"], "client_id": "old-cli"}
    )
    assert wrong_client.status == 401
    session = ok(api.exchange(started["device_code"]))
    secrets.tokens(session)

    # 3. refresh: body, then cookie (the successor only in Set-Cookie), then the legacy GET
    refreshed = ok(api.call("POST", "/auth/refresh", body={"refresh_token": session["refresh_token"]}))
    secrets.tokens(refreshed)
    by_cookie = api.call(
        "POST",
        "/auth/refresh",
        cookies=[f"refresh_token={refreshed['refresh_token']}"],
        headers={"origin": ORIGIN},
    )
    secrets.tokens(ok(by_cookie))
    in_cookie = secrets.add("refresh cookie", cookie_value(by_cookie))
    secrets.add("refresh cookie header", f"refresh_token={in_cookie}")
    legacy_query = urllib.parse.urlencode(
        {"grant_type": "refresh_token", "refresh_token": in_cookie, "client_id": "demo-cli"}
    )
    secrets.add("legacy query string", legacy_query)
    legacy = ok(api.call("GET", "/oauth/token", query=legacy_query))
    secrets.tokens(legacy)
    failed_query = urllib.parse.urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": in_cookie,
            "client_id": "backend",
            "client_secret": "nope",
        }
    )
    secrets.add("failed legacy query string", failed_query)
    assert api.call("GET", "/oauth/token", query=failed_query).status == 400  # no secret in a URL
    other_client_query = urllib.parse.urlencode(  # the real client secret in a query string
        {
            "grant_type": "refresh_token",
            "refresh_token": in_cookie,
            "client_id": "backend",
            "client_secret": seed.confidential_secret,
        }
    )
    secrets.add("legacy query string with the client secret", other_client_query)
    assert api.call("GET", "/oauth/token", query=other_client_query).status == 400  # refused, not logged
    secrets.add("verify query string", urllib.parse.urlencode({"user_code": typed}))

    # 4. introspection (secret in the body, then HTTP Basic), revocation of an access token
    current = legacy["data"]["refresh_token"]
    introspected = api.call(
        "POST",
        "/oauth/introspect",
        form={"token": current, "client_id": "backend", "client_secret": seed.confidential_secret},
    )
    assert ok(introspected)["active"] is True
    access = legacy["data"]["access_token"]
    assert ok(
        api.call("POST", "/oauth/introspect", form={"token": access}, headers={"authorization": basic})
    )["active"]
    ok(
        api.call(
            "POST", "/oauth/revoke", form={"token": oauth_tokens["access_token"], "client_id": "demo-cli"}
        )
    )

    # 5. reuse of a token rotated out long ago: the family ends
    reused = api.call("POST", "/auth/refresh", body={"refresh_token": session["refresh_token"]})
    assert ok(reused, 401)["type"] == "invalid_grant"

    # 6. a third login: denied; a fourth: signed in, then logged out by cookie
    started = api.device_code()
    secrets.add("device code", started["device_code"])
    secrets.user_code(started["user_code"])
    ok(
        api.call(
            "POST",
            "/oauth/device/verify",
            body={"user_code": started["user_code"], "decision": "deny"},
            claims=seed.user,
        )
    )
    assert api.exchange(started["device_code"]).status == 403
    fourth = api.signed_in(seed)
    secrets.tokens(fourth)
    logout = api.call(
        "POST",
        "/auth/logout",
        cookies=[f"refresh_token={fourth['refresh_token']}"],
        headers={"origin": ORIGIN},
    )
    ok(logout)
    revoked = api.call(
        "POST", "/oauth/revoke", form={"token": fourth["refresh_token"], "client_id": "demo-cli"}
    )
    ok(revoked)

    # 7. error paths that carry secrets: a wrong client secret, a wrong client, a fault
    bad_secret = secrets.add("wrong client secret", "wrong-" + seed.confidential_secret[::-1])
    assert (
        api.call(
            "POST",
            "/oauth/introspect",
            form={"token": current, "client_id": "backend", "client_secret": bad_secret},
        ).status
        == 401
    )
    assert api.call("POST", "/oauth/token", form={**poll, "client_id": "backend"}).status == 401
    with aws.inject("error", "dynamodb", "UpdateItem"):
        fault = api.call("POST", "/auth/refresh", body={"refresh_token": current})
    assert fault.status == 502, fault.text


def _scanned_text(captured_logs: LogCapture, caplog: pytest.LogCaptureFixture, out: str, err: str) -> str:
    """Everything written: the logger's stream as it was written (its JSON lines and the audit trail
    with its EMF metrics), every record of any logger (botocore's too), and stdout/stderr."""
    records = [f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records]
    return "\n".join([*captured_logs.lines, *records, out, err])


def test_no_secret_is_ever_logged(
    api: Api,
    account: aws.Seed,
    captured_logs: LogCapture,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    secrets = Secrets()

    run_everything(api, account, secrets)

    out, err = capfd.readouterr()
    text = _scanned_text(captured_logs, caplog, out, err)
    leaked = [what for what, value in secrets.values.items() if value in text]
    assert leaked == [], f"logged: {leaked}"
    # the scan covered real output: our structured log lines and the audit lines with their EMF metrics
    assert len(captured_logs.lines) >= 10
    written = "\n".join(captured_logs.lines)
    assert '"CloudWatchMetrics"' in written and '"message":"audit"' in written
    assert len(secrets.values) >= 30


def test_the_audit_trail_is_written(api: Api, account: aws.Seed, captured_logs: LogCapture) -> None:
    run_everything(api, account, Secrets())
    lines = [json.loads(line) for line in captured_logs.lines]
    events = [line["audit_event"] for line in lines if line.get("message") == "audit"]
    for event in (
        "device_authorized",
        "device_approved",
        "device_denied",
        "issued",
        "rotated",
        "reuse_detected",
        "session_revoked",
    ):
        assert event in events, f"no {event!r} audit line in {events}"
    assert events.count("device_authorized") == 4 and events.count("issued") == 3
    for line in lines:
        if line.get("message") == "audit":
            assert line.get("grant_id"), line
            assert line.get("correlation_id"), line  # the API Gateway request id
    assert any(line.get("level") == "WARNING" for line in lines)  # the injected fault was logged
    metrics = [line for line in lines if "_aws" in line]
    assert any("rotated" in m for m in metrics), "EMF metrics for the audit events"


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        (
            "GET",
            "/oauth/token",
            {"query": "grant_type=refresh_token&refresh_token=SECRETVALUE123&client_id=demo-cli"},
        ),
        ("GET", "/oauth/token", {"query": "grant_type=SECRETVALUE123"}),
        ("GET", "/oauth/device/verify", {"query": "user_code=SECRETVALUE123", "claims": {"sub": "u"}}),
        (
            "POST",
            "/oauth/token",
            {"form": {"grant_type": "refresh_token", "refresh_token": "SECRETVALUE123", "client_id": "x"}},
        ),
        ("POST", "/oauth/token", {"body": "[" * 12_000, "headers": {"content-type": "application/json"}}),
        (
            "POST",
            "/oauth/revoke",
            {"form": {"token": "SECRETVALUE123.SECRETVALUE123.x", "client_id": "demo-cli"}},
        ),
        (
            "POST",
            "/auth/refresh",
            {"cookies": ["refresh_token=SECRETVALUE123"], "headers": {"origin": "https://evil.example"}},
        ),
        ("POST", "/auth/logout", {"body": {"refresh_token": "SECRETVALUE123"}}),
        (
            "POST",
            "/auth/device/exchange",
            {"body": {"device_code": "SECRETVALUE123", "client_id": "demo-cli"}},
        ),
        (
            "POST",
            "/oauth/introspect",
            {"form": {"token": "x", "client_id": "backend", "client_secret": "SECRETVALUE123"}},
        ),
    ],
)
def test_rejected_input_is_not_logged(
    api: Api,
    captured_logs: LogCapture,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    method: str,
    path: str,
    kwargs: dict[str, Any],
) -> None:
    """Whatever the request held, rejected or not, is not in the logs either."""
    caplog.set_level(logging.INFO)
    result = api.call(method, path, **kwargs)
    assert result.status < 500, result.text
    out, err = capfd.readouterr()
    text = _scanned_text(captured_logs, caplog, out, err)
    assert "SECRETVALUE123" not in text
    assert "[[[[" not in text
