"""GET /auth/sessions, DELETE /auth/sessions/{id}, POST /auth/sessions/revoke-all — the signed-in
person's sessions: which devices are signed in as them, and signing them out.

Product dialect. The person's ID token (Authorization: Bearer) is verified here, as on the verify routes;
a session is someone's only by the `sub` of that token.
"""

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from authcore import device, http, sessions
from authcore.envelopes import SessionRevokedResponse, SessionsRevokedResponse

app = http.make_app(typed_parameters=True)


def _person() -> str:
    return device.SignedInUser.from_claims(http.signed_in_claims(app)).id


@app.get("/auth/sessions")
def list_sessions(cursor: Annotated[str | None, Query(min_length=1, max_length=80)] = None) -> Response[str]:
    return http.json_response(sessions.list_sessions(http.context(app), _person(), cursor))


@app.delete("/auth/sessions/<session_id>")
def end_session(session_id: str) -> Response[str]:
    sessions.end_session(http.context(app), _person(), session_id)
    return http.json_response(SessionRevokedResponse())


@app.post("/auth/sessions/revoke-all")
def end_all_sessions() -> Response[str]:
    count = sessions.end_all_sessions(http.context(app), _person())
    return http.json_response(SessionsRevokedResponse(count=count))


lambda_handler = http.entrypoint(app)
