"""GET/POST /oauth/device/verify — the signed-in user sees, then approves or denies, a device request.

Product dialect. The person's ID token (Authorization: Bearer) is verified here, not by an API Gateway
authorizer, so that every answer, 401 included, is the canonical envelope.
"""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from authcore import device, http
from authcore.envelopes import VerifyDecisionRequest, VerifyDecisionResponse

app = http.make_app(typed_parameters=True)


@app.get("/oauth/device/verify")
def describe(user_code: Annotated[str, Query(min_length=1, max_length=64)]) -> Response[str]:
    user = device.SignedInUser.from_claims(http.signed_in_claims(app))
    return http.json_response(device.describe(http.context(app), user, user_code, http.requester(app)))


@app.post("/oauth/device/verify")
def decide() -> Response[str]:
    user = device.SignedInUser.from_claims(http.signed_in_claims(app))
    body = http.json_body(app, VerifyDecisionRequest)
    status = device.decide(http.context(app), user, body.user_code, body.decision, body.organization_id)
    return http.json_response(VerifyDecisionResponse(status=status))


lambda_handler = http.entrypoint(app)
