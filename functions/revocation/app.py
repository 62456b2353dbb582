"""POST /oauth/revoke (RFC 7009) and POST /oauth/introspect (RFC 7662). OAuth dialect."""

from aws_lambda_powertools.event_handler import Response

from authcore import grants, http
from authcore.envelopes import TokenHintRequest

app = http.make_app()


@app.post("/oauth/revoke")
def revoke() -> Response[str]:
    params = http.oauth_params(app, TokenHintRequest)
    ctx = http.context(app)
    client = http.authenticated_client(app, ctx, params.client_id, params.client_secret)
    grants.revoke(ctx, params.token, client)
    return http.json_response({})


@app.post("/oauth/introspect")
def introspect() -> Response[str]:
    params = http.oauth_params(app, TokenHintRequest)
    ctx = http.context(app)
    http.authenticated_client(app, ctx, params.client_id, params.client_secret, require_confidential=True)
    return http.json_response(grants.introspect(ctx, params.token))


lambda_handler = http.entrypoint(app)
