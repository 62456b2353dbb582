"""POST /oauth/device/code — device authorization request (RFC 8628 §3.1). OAuth dialect."""

from aws_lambda_powertools.event_handler import Response

from authcore import device, http
from authcore.envelopes import DeviceCodeRequest

app = http.make_app()


@app.post("/oauth/device/code")
def device_code() -> Response[str]:
    params = http.oauth_params(app, DeviceCodeRequest)
    caller = http.caller(app, params.client_id, params.client_secret)
    return http.json_response(device.start(http.context(app), caller, params.scope, http.requester(app)))


lambda_handler = http.entrypoint(app)
