"""POST /oauth/revoke (RFC 7009) and POST /oauth/introspect (RFC 7662). OAuth dialect."""

from aws_lambda_powertools.event_handler import Response

from authcore import http, sessions
from authcore.envelopes import TokenHintRequest

app = http.make_app()


@app.post("/oauth/revoke")
def revoke() -> Response[str]:
    params = http.oauth_params(app, TokenHintRequest)
    caller = http.caller(app, params.client_id, params.client_secret)
    sessions.revoke(http.context(app), params.token, caller)
    return http.json_response({})


@app.post("/oauth/introspect")
def introspect() -> Response[str]:
    params = http.oauth_params(app, TokenHintRequest)
    caller = http.caller(app, params.client_id, params.client_secret)
    return http.json_response(sessions.introspect(http.context(app), params.token, caller))


lambda_handler = http.entrypoint(app)
