"""POST /auth/refresh and POST /auth/logout — the product API's session. Product dialect.

The refresh token comes in the JSON body (CLIs) or in the HttpOnly cookie (browsers). A successor
goes back the way the token came: in the body, or only in Set-Cookie; a body with `"set_cookie": true`
(from an allowed Origin) moves it into the cookie, which is how a browser app gets its first one. The token names its client, and
that client's rules apply (a confidential client authenticates with HTTP Basic).
"""

from aws_lambda_powertools.event_handler import Response

from authcore import http, sessions
from authcore.envelopes import RefreshRequest

app = http.make_app()


@app.post("/auth/refresh")
def refresh() -> Response[str]:
    presented = http.presented_refresh_token(app, RefreshRequest)
    issued = sessions.refresh(http.context(app), presented.token, http.caller(app))
    body = issued.product(with_refresh_token=presented.in_body and not presented.to_cookie)
    successor = issued.refresh_token  # a rotation always has one
    cookies = (
        [http.refresh_cookie(successor, issued.refresh_max_age)]
        if presented.to_cookie and successor
        else None
    )
    return http.json_response(body, cookies=cookies)


@app.post("/auth/logout")
def logout() -> Response[str]:
    presented = http.presented_refresh_token(app, RefreshRequest, required=False, moves=False)
    if presented.token:
        sessions.logout(http.context(app), presented.token, http.caller(app))
    return http.json_response({"status": "signed_out"}, cookies=[http.refresh_cookie("", 0)])


lambda_handler = http.entrypoint(app)
