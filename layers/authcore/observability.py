"""Logger and tracer, created once per execution environment, and the audit trail with its metrics.

Nothing here ever receives a token, a code, a secret, a cookie or a query string.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import strtobool

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "token-service")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "TokenService")

logger = Logger(service=SERVICE)


def tracing_enabled(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether Powertools' Tracer would trace here: in Lambda (LAMBDA_TASK_ROOT), not under `sam local`
    or Chalice, and not switched off by POWERTOOLS_TRACE_DISABLED (the same rules as
    `Tracer._is_tracer_disabled`). template.yaml's `Tracing: Active` is what turns it on in Lambda."""
    if strtobool(environ.get(constants.TRACER_DISABLED_ENV, "false") or "false"):
        return False
    if environ.get(constants.SAM_LOCAL_ENV) or environ.get(constants.CHALICE_LOCAL_ENV):
        return False
    return bool(environ.get(constants.LAMBDA_TASK_ROOT_ENV))


class LazyTracer:
    """Powertools' Tracer, built only where it traces.

    Building a Tracer imports the X-Ray SDK and patches botocore, about 0.13 s of CPU at every cold start
    (bench/README.md), even when tracing is off and every span is a no-op. Here, where tracing is off
    (tests, `make serve`, a deployment without `Tracing: Active`), `capture_lambda_handler` returns the
    handler as it is and no Tracer is built; where it is on, the Tracer is built at import, as before.
    Anything else is the Tracer's own (`tracer.put_annotation(...)` builds it on first use)."""

    def __init__(self, service: str, enabled: bool) -> None:
        self.service = service
        self.enabled = enabled
        self._tracer: Tracer | None = Tracer(service=service) if enabled else None

    @property
    def tracer(self) -> Tracer:
        if self._tracer is None:
            self._tracer = Tracer(service=self.service, disabled=not self.enabled)
        return self._tracer

    def capture_lambda_handler(self, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        if not self.enabled:
            return lambda handler: handler
        decorator: Callable[[Callable[..., Any]], Callable[..., Any]] = self.tracer.capture_lambda_handler(
            **options
        )
        return decorator

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tracer, name)


tracer = LazyTracer(SERVICE, tracing_enabled())

AUDIT_EVENTS = frozenset(
    {
        "device_authorized",
        "device_approved",
        "device_denied",
        "issued",
        "rotated",
        "reuse_detected",
        "session_revoked",
        "token_refused",
        "device_rate_limited",
    }
)
REFUSAL_REASONS = frozenset({"malformed", "forged", "unknown", "revoked", "expired", "idle", "other_client"})
# Who ended a session (a grant's revoke_reason, and session_revoked's `by`).
REVOKED_BY = frozenset({"user", "admin", "reuse", "logout"})


# The fields Powertools' formatter fills from the log record; every other key of the logger's own
# (service, cold_start, function_*, correlation_id) is copied into an audit line as it is.
_RECORD_FIELDS = frozenset({"level", "location", "message", "timestamp", "xray_trace_id"})
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


def _timestamp(now: float) -> str:
    """Powertools' default timestamp (local time, milliseconds, offset): 2026-11-30 12:12:47,580+0000."""
    local = time.localtime(now)
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', local)},{int(now * 1000) % 1000:03d}{time.strftime('%z', local)}"


def _write_audit_line(event: str, fields: dict[str, Any], metric_names: tuple[str, ...]) -> None:
    """One JSON line that is both the audit record and its EMF metrics (CloudWatch's embedded metric
    format: the ``_aws`` directive names the metrics, a top-level member of each name holds its value).

    It has the keys of the service's other log lines (Powertools' Logger: level, location, message,
    timestamp, service, cold_start, function_*, correlation_id, xray_trace_id) and is written to the
    Logger's own stream under its handler's lock, but without Python's logging machinery: an issuing
    request writes one, and through the Logger plus a Metrics flush the line and its count cost about a
    tenth of the request's CPU (bench/README.md). An audit line is written at every log level: the
    trail and the alarms' metrics do not depend on POWERTOOLS_LOG_LEVEL."""
    now = time.time()
    record: dict[str, Any] = {
        "level": "INFO",
        "location": "audit",
        "message": "audit",
        "timestamp": _timestamp(now),
    }
    for key, value in logger.get_current_keys().items():
        if value is not None and key not in _RECORD_FIELDS:
            record[key] = value
    trace = os.environ.get(constants.XRAY_TRACE_ID_ENV)
    if trace:
        record["xray_trace_id"] = trace.split(";")[0].replace("Root=", "")
    record["audit_event"] = event
    record.update(fields)
    record["service"] = SERVICE  # the metrics' dimension
    record["_aws"] = {
        "Timestamp": int(now * 1000),
        "CloudWatchMetrics": [
            {
                "Namespace": NAMESPACE,
                "Dimensions": [["service"]],
                "Metrics": [{"Name": name, "Unit": "Count"} for name in metric_names],
            }
        ],
    }
    for name in metric_names:
        record[name] = 1
    line = _encode(record) + "\n"
    handler = logger.registered_handler
    handler.acquire()
    try:
        stream = handler.stream  # type: ignore[attr-defined]
        stream.write(line)
        stream.flush()
    except Exception as exc:  # as logging.Handler.handleError: nothing a write raises escapes
        # as logging does with a line it cannot write: the request goes on (its writes are done, and an
        # answer lost now would cost the client its tokens), and stderr says why
        _unwritten(exc)
    finally:
        handler.release()


def _unwritten(exc: Exception) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(f"audit line not written: {type(exc).__name__}\n")


def audit(event: str, **fields: str | int | None) -> None:
    """One structured, secret-free line per security-relevant event, which is also its metric (a count
    named after the event, in NAMESPACE with the dimension ``service``).

    Fields are identifiers only: grant id, client id, user id, organization id, generation.
    """
    if event not in AUDIT_EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    _write_audit_line(event, {k: v for k, v in fields.items() if v is not None}, (event,))


def session_revoked(
    by: str, *, grant_id: str, client_id: str, user_id: str | None, org_id: str | None
) -> None:
    """A session ended: the audit line and metric say who ended it."""
    if by not in REVOKED_BY:
        raise ValueError(f"unknown revoker {by!r}")
    audit("session_revoked", by=by, grant_id=grant_id, client_id=client_id, user_id=user_id, org_id=org_id)


def refused(reason: str, *, kind: str, grant_id: str | None = None, client_id: str | None = None) -> None:
    """A presented token that was refused: an audit line and a metric per reason (``token_refused_forged``
    ...), so forgeries and probing are visible. Never the token itself."""
    if reason not in REFUSAL_REASONS:
        raise ValueError(f"unknown refusal reason {reason!r}")
    fields = {"reason": reason, "token_kind": kind, "grant_id": grant_id, "client_id": client_id}
    _write_audit_line(
        "token_refused",
        {k: v for k, v in fields.items() if v is not None},
        ("token_refused", f"token_refused_{reason}"),
    )
