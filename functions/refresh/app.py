"""POST /auth/refresh and POST /auth/logout — the product API's session. Product dialect.

The refresh token comes in the JSON body (CLIs) or in the HttpOnly cookie (browsers). A successor
goes back the way the token came: in the body, or only in Set-Cookie.
"""

from aws_lambda_powertools.event_handler import Response

from authcore import grants, http
from authcore.clients import check_version
from authcore.envelopes import RefreshRequest

app = http.make_app()


@app.post("/auth/refresh")
def refresh() -> Response[str]:
    presented = http.presented_refresh_token(app, RefreshRequest)
    ctx = http.context(app)
    version = http.header(app, "x-client-version")
    issued = grants.refresh(ctx, presented.token, before_answer=lambda client: check_version(client, version))
    body = issued.product(with_refresh_token=presented.in_body)
    cookies = (
        [http.refresh_cookie(issued.refresh_token, issued.refresh_max_age)] if presented.in_cookie else None
    )
    return http.json_response(body, cookies=cookies)


@app.post("/auth/logout")
def logout() -> Response[str]:
    presented = http.presented_refresh_token(app, RefreshRequest, required=False)
    if presented.token:
        grants.revoke(http.context(app), presented.token, client=None)
    return http.json_response({"status": "signed_out"}, cookies=[http.refresh_cookie("", 0)])


lambda_handler = http.entrypoint(app)
