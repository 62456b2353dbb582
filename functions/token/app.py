"""POST /oauth/token (RFC 6749 §3.2) and the deprecated GET /oauth/token with its legacy envelope."""

from collections.abc import Callable

from aws_lambda_powertools.event_handler import Response

from authcore import device, errors, http, sessions
from authcore.clients import DEVICE_GRANT, REFRESH_GRANT, admit
from authcore.envelopes import TokenRequest
from authcore.issuance import Issued

app = http.make_app()

# Each grant's own parameter (RFC 8628 §3.4, RFC 6749 §6).
_BY_GRANT: tuple[tuple[str, str, Callable[[TokenRequest], str | None]], ...] = (
    (DEVICE_GRANT, "device_code", lambda p: p.device_code),
    (REFRESH_GRANT, "refresh_token", lambda p: p.refresh_token),
)


def _grant() -> Issued:
    params = http.oauth_params(app, TokenRequest)
    caller = http.caller(app, params.client_id, params.client_secret)
    absent = [
        name for grant, name, value in _BY_GRANT if params.grant_type == grant and value(params) is None
    ]
    if absent:  # every missing parameter at once, the client's among them
        raise errors.missing_parameters([*absent, *(["client_id"] if caller.client_id is None else [])])
    if caller.client_id is None:  # RFC 6749 §3.2.1: the token endpoint always knows its client
        raise errors.InvalidClient("Client authentication is required (client_id).")
    if params.grant_type == DEVICE_GRANT and params.device_code is not None:
        return device.exchange(http.context(app), caller, params.device_code)
    if params.grant_type == REFRESH_GRANT and params.refresh_token is not None:
        return sessions.refresh(http.context(app), params.refresh_token, caller, scope=params.scope)
    ctx = http.context(app)
    admit(ctx.clients, ctx.store, ctx.hmac, caller)  # a bad client is invalid_client, whatever it asks
    raise errors.UnsupportedGrantType(f"Supported grant types: {DEVICE_GRANT}, {REFRESH_GRANT}.")


@app.post("/oauth/token")
def token() -> Response[str]:
    return http.json_response(_grant().oauth())


@app.get("/oauth/token")
def legacy_token() -> Response[str]:
    """Deprecated: parameters in the query string. Its successor is POST /oauth/token."""
    return http.json_response(_grant().legacy(), headers=http.LEGACY_HEADERS)


lambda_handler = http.entrypoint(app)
