"""Logger, metrics and tracer, created once per execution environment, and the audit trail.

Nothing here ever receives a token, a code, a secret, a cookie or a query string.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import strtobool

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "token-service")

# A route that counted nothing is normal here (only security events are metrics).
warnings.filterwarnings("ignore", message="No application metrics to publish")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "TokenService"), service=SERVICE)


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


def audit(event: str, **fields: str | int | None) -> None:
    """One structured, secret-free log line and one EMF count per security-relevant event.

    Fields are identifiers only: grant id, client id, user id, organization id, generation.
    """
    if event not in AUDIT_EVENTS:
        raise ValueError(f"unknown audit event {event!r}")
    logger.info("audit", extra={"audit_event": event, **{k: v for k, v in fields.items() if v is not None}})
    metrics.add_metric(name=event, unit=MetricUnit.Count, value=1)


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
    audit("token_refused", reason=reason, token_kind=kind, grant_id=grant_id, client_id=client_id)
    metrics.add_metric(name=f"token_refused_{reason}", unit=MetricUnit.Count, value=1)
