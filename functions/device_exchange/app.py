"""POST /auth/device/exchange — the product API's device-code exchange. Product dialect."""

from aws_lambda_powertools.event_handler import Response

from authcore import device, http
from authcore.envelopes import DeviceExchangeRequest

app = http.make_app()


@app.post("/auth/device/exchange")
def exchange() -> Response[str]:
    body = http.json_body(app, DeviceExchangeRequest)
    issued = device.exchange(http.context(app), http.caller(app, body.client_id), body.device_code)
    return http.json_response(issued.product())


lambda_handler = http.entrypoint(app)
