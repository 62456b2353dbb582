"""POST /oauth/device/code — device authorization request (RFC 8628 §3.1). OAuth dialect."""

from aws_lambda_powertools.event_handler import Response

from authcore import grants, http
from authcore.envelopes import DeviceCodeRequest

app = http.make_app()


@app.post("/oauth/device/code")
def device_code() -> Response[str]:
    params = http.oauth_params(app, DeviceCodeRequest)
    ctx = http.context(app)
    client = http.authenticated_client(app, ctx, params.client_id, params.client_secret)
    return http.json_response(grants.start_device_authorization(ctx, client, params.scope))


lambda_handler = http.entrypoint(app)
