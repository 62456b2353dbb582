"""POST /oauth/token (RFC 6749 §3.2) and the deprecated GET /oauth/token with its legacy envelope."""

from aws_lambda_powertools.event_handler import Response

from authcore import device, errors, http, sessions
from authcore.clients import DEVICE_GRANT, REFRESH_GRANT, admit
from authcore.envelopes import TokenRequest
from authcore.issuance import Issued

app = http.make_app()


def _grant() -> Issued:
    params = http.oauth_params(app, TokenRequest)
    caller = http.caller(app, params.client_id, params.client_secret)
    if caller.client_id is None:  # RFC 6749 §3.2.1: the token endpoint always knows its client
        raise errors.InvalidClient("Client authentication is required (client_id).")
    if params.grant_type == DEVICE_GRANT:
        if params.device_code is None:
            raise errors.InvalidRequest("The device_code parameter is required.")
        return device.exchange(http.context(app), caller, params.device_code)
    if params.grant_type == REFRESH_GRANT:
        if params.refresh_token is None:
            raise errors.InvalidRequest("The refresh_token parameter is required.")
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
