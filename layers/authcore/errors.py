"""Domain errors, and the one table that says how each is spoken in every dialect.

A handler raises a `Problem`; `http` renders it in the route's dialect:
- ``oauth``: RFC 6749 §5.2 / RFC 8628 §3.5 ``{"error", "error_description"}``;
- ``product``: the canonical envelope ``{"status", "message", "type", "details", "request_id"}``;
- ``legacy``: the deprecated ``GET /oauth/token`` envelope ``{"success": false, "errorMessage", ...}``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import botocore.exceptions


@dataclass(frozen=True)
class Spoken:
    oauth_error: str
    oauth_status: int
    product_type: str
    product_status: int
    title: str


# kind -> how each dialect says it. The only place that knows statuses.
TABLE: dict[str, Spoken] = {
    "invalid_request": Spoken("invalid_request", 400, "invalid_request", 400, "Invalid request"),
    "missing_parameters": Spoken("invalid_request", 400, "invalid_request", 400, "Missing required params"),
    "validation_error": Spoken("invalid_request", 400, "validation_error", 422, "Invalid request"),
    "invalid_client": Spoken("invalid_client", 401, "invalid_client", 401, "Invalid client"),
    "invalid_grant": Spoken("invalid_grant", 400, "invalid_grant", 401, "Invalid grant"),
    "unauthorized_client": Spoken("unauthorized_client", 400, "access_denied", 403, "Unauthorized client"),
    "unsupported_grant_type": Spoken(
        "unsupported_grant_type", 400, "invalid_request", 400, "Invalid grant type"
    ),
    "invalid_scope": Spoken("invalid_scope", 400, "access_denied", 403, "Invalid scope"),
    "authorization_pending": Spoken(
        "authorization_pending", 400, "authorization_pending", 400, "Authorization pending"
    ),
    "slow_down": Spoken("slow_down", 400, "slow_down", 429, "Slow down"),
    "access_denied": Spoken("access_denied", 400, "access_denied", 403, "Access denied"),
    "expired_token": Spoken("expired_token", 400, "expired_token", 400, "Expired token"),
    "not_found": Spoken("invalid_request", 404, "not_found", 404, "Not found"),
    "already_exists": Spoken("invalid_request", 400, "already_exists", 409, "Already decided"),
    "unauthorized": Spoken("invalid_client", 401, "unauthorized", 401, "Unauthorized"),
    "upgrade_required": Spoken("invalid_request", 400, "upgrade_required", 426, "Upgrade required"),
    "rate_limited": Spoken("temporarily_unavailable", 503, "rate_limited", 429, "Too many requests"),
    # a source address over its limit of device authorization requests (slow_down is for polling only)
    "too_many_requests": Spoken("temporarily_unavailable", 429, "rate_limited", 429, "Too many requests"),
    "dependency_failed": Spoken("temporarily_unavailable", 503, "bad_gateway", 502, "Service unavailable"),
    "dependency_timeout": Spoken(
        "temporarily_unavailable", 503, "gateway_timeout", 504, "Service unavailable"
    ),
    "dependency_throttled": Spoken(
        "temporarily_unavailable", 503, "rate_limited", 429, "Service unavailable"
    ),
    "internal_error": Spoken("server_error", 500, "internal_error", 500, "Internal error"),
}


class Problem(Exception):
    """An answer that is not a success. Its text is safe to show: it never holds a secret."""

    kind: ClassVar[str] = "internal_error"
    default_message: ClassVar[str] = "An unexpected error occurred."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: list[dict[str, Any]] | None = None,
        retry_after: int | None = None,
        interval: int | None = None,
        basic_auth: bool = False,
        notes: list[str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details or []
        self.notes = notes or []  # the legacy envelope's errorDetails, when not just the message
        self.retry_after = retry_after
        self.interval = interval
        self.basic_auth = basic_auth
        super().__init__(self.message)

    @property
    def spoken(self) -> Spoken:
        return TABLE[self.kind]


def _problem(kind: str, message: str) -> type[Problem]:
    return type(
        "".join(part.title() for part in kind.split("_")),
        (Problem,),
        {"kind": kind, "default_message": message, "__module__": __name__},
    )


InvalidRequest = _problem("invalid_request", "The request is malformed.")
_MissingParameters = _problem("missing_parameters", "Required parameters are missing.")


def missing_parameters(names: list[str]) -> Problem:
    """Every missing parameter at once (the legacy envelope lists them in errorDetails)."""
    unique = list(dict.fromkeys(names))
    return _MissingParameters(f"Missing required parameters: {', '.join(unique)}.", notes=unique)


ValidationFailed = _problem("validation_error", "Request body failed validation.")
InvalidClient = _problem("invalid_client", "Client authentication failed.")
InvalidGrant = _problem("invalid_grant", "The grant is invalid, expired, revoked or already used.")
UnauthorizedClient = _problem("unauthorized_client", "The client may not use this grant type.")
UnsupportedGrantType = _problem("unsupported_grant_type", "The grant type is not supported.")
InvalidScope = _problem("invalid_scope", "The requested scope is invalid or exceeds what was granted.")
AuthorizationPending = _problem("authorization_pending", "The user has not yet approved the request.")
SlowDown = _problem("slow_down", "Polling too fast; wait longer between requests.")
AccessDenied = _problem("access_denied", "The request was denied.")
ExpiredToken = _problem("expired_token", "The device code has expired.")
NotFound = _problem("not_found", "Not found.")
AlreadyExists = _problem("already_exists", "The device request was already approved or denied.")
Unauthorized = _problem("unauthorized", "A signed-in user is required.")
UpgradeRequired = _problem("upgrade_required", "This client version is no longer supported; please upgrade.")
RateLimited = _problem("rate_limited", "Too many attempts; try again later.")
TooManyRequests = _problem("too_many_requests", "Too many requests; try again later.")
DependencyFailed = _problem("dependency_failed", "A service dependency failed; try again shortly.")
DependencyTimeout = _problem("dependency_timeout", "A service dependency timed out; try again shortly.")
DependencyThrottled = _problem("dependency_throttled", "The service is busy; try again shortly.")
InternalError = _problem("internal_error", "An unexpected error occurred.")

_THROTTLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "LimitExceededException",
    }
)
_TIMEOUTS = (
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectTimeoutError,
)


def dependency_problem(exc: BaseException) -> Problem | None:
    """Translate a fault of AWS (directly, or wrapped by Powertools Parameters) into a Problem."""
    seen: BaseException | None = exc
    for _ in range(4):  # follow `raise X from Y` a little way
        if seen is None:
            break
        if isinstance(seen, botocore.exceptions.ClientError):
            code = str(seen.response.get("Error", {}).get("Code", ""))
            if code in _THROTTLE_CODES:
                return DependencyThrottled(retry_after=1)
            return DependencyFailed(retry_after=1)
        if isinstance(seen, _TIMEOUTS):
            return DependencyTimeout(retry_after=1)
        if isinstance(seen, botocore.exceptions.BotoCoreError):
            return DependencyFailed(retry_after=1)
        # `raise X from Y` (Powertools wraps AWS errors so), or an implicit context not suppressed with
        # `from None`: a fault we already handled must not turn a later bug into a "dependency" answer.
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None
