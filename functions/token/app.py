"""POST /oauth/token (RFC 6749 §3.2) and the deprecated GET /oauth/token with its legacy envelope."""

from aws_lambda_powertools.event_handler import Response

from authcore import errors, grants, http
from authcore.clients import DEVICE_GRANT, REFRESH_GRANT
from authcore.envelopes import TokenRequest

app = http.make_app()


def _grant() -> grants.Issued:
    params = http.oauth_params(app, TokenRequest)
    ctx = http.context(app)
    client = http.authenticated_client(app, ctx, params.client_id, params.client_secret)
    if params.grant_type == DEVICE_GRANT:
        if params.device_code is None:
            raise errors.InvalidRequest("The device_code parameter is required.")
        return grants.exchange_device_code(ctx, client, params.device_code)
    if params.grant_type == REFRESH_GRANT:
        if params.refresh_token is None:
            raise errors.InvalidRequest("The refresh_token parameter is required.")
        return grants.refresh(ctx, params.refresh_token, client=client, scope=params.scope)
    raise errors.UnsupportedGrantType(f"Supported grant types: {DEVICE_GRANT}, {REFRESH_GRANT}.")


@app.post("/oauth/token")
def token() -> Response[str]:
    return http.json_response(_grant().oauth())


@app.get("/oauth/token")
def legacy_token() -> Response[str]:
    """Deprecated: parameters in the query string. Its successor is POST /oauth/token."""
    return http.json_response(_grant().legacy(), headers=http.LEGACY_HEADERS)


lambda_handler = http.entrypoint(app)
