"""GET /device — the page where a person signs in and approves or denies a device's request.

The page signs in against the user pool from the browser (Cognito's InitiateAuth, USER_PASSWORD_AUTH)
and calls GET/POST /oauth/device/verify with the ID token. `?user_code=` only pre-fills the code: the
decision is always an explicit POST. The page's script and style are inline and allowed by their hashes,
so the Content-Security-Policy needs no 'unsafe-inline' and the page no second route.

Configuration (environment): USER_POOL_CLIENT_ID, USER_POOL_ID, COGNITO_REGION, and COGNITO_ENDPOINT:
the Cognito API's URL as the browser reaches it. Without it, the endpoint the AWS SDKs would use
(AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER, then AWS_ENDPOINT_URL: set by the local stack, never on
Lambda), else https://cognito-idp.<COGNITO_REGION>.amazonaws.com/.
"""

from __future__ import annotations

import base64
import hashlib
import html
import os
import string
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response

from authcore import http

HERE = Path(__file__).resolve().parent
SCRIPT = (HERE / "page.js").read_text(encoding="utf-8")
STYLE = (HERE / "page.css").read_text(encoding="utf-8")
PAGE = string.Template((HERE / "page.html").read_text(encoding="utf-8"))
if "</script" in SCRIPT.lower() or "</style" in STYLE.lower():
    raise RuntimeError("page.js and page.css must not close their own element")
MAX_USER_CODE = 64  # what the verify API accepts


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


@lru_cache(maxsize=8)
def _setup(pool_id: str, client_id: str, region: str, endpoint: str) -> tuple[dict[str, str], dict[str, str]]:
    """The page's attributes and response headers for one configuration (computed once)."""
    endpoint = endpoint or (f"https://cognito-idp.{region}.amazonaws.com/" if region else "")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        endpoint = ""  # the page then says that sign-in is not configured
    connect = "'self'" + (f" {parts.scheme}://{parts.netloc}" if endpoint else "")
    csp = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_sha256(SCRIPT)}",
            f"style-src {_sha256(STYLE)}",
            f"connect-src {connect}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )
    attributes = {"cognito_endpoint": endpoint, "user_pool_id": pool_id, "user_pool_client_id": client_id}
    headers = {
        **http.BASE_HEADERS,
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    return attributes, headers


def _configuration() -> tuple[dict[str, str], dict[str, str]]:
    env = os.environ
    region = env.get("COGNITO_REGION") or env.get("AWS_REGION") or ""
    # COGNITO_ENDPOINT, else the endpoint the AWS SDKs would use for Cognito (set only locally)
    endpoint = (
        env.get("COGNITO_ENDPOINT")
        or env.get("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER")
        or env.get("AWS_ENDPOINT_URL")
        or ""
    )
    return _setup(env.get("USER_POOL_ID", ""), env.get("USER_POOL_CLIENT_ID", ""), region, endpoint)


app = http.make_app()


@app.get("/device")
def device_page() -> Response[str]:
    attributes, headers = _configuration()
    user_code = app.current_event.get_query_string_value("user_code") or ""
    if len(user_code) > MAX_USER_CODE:
        user_code = ""
    values = {
        name: html.escape(value, quote=True) for name, value in {**attributes, "user_code": user_code}.items()
    }
    body = PAGE.substitute(values, script=SCRIPT, style=STYLE)
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=body, headers=headers)


lambda_handler = http.entrypoint(app)
