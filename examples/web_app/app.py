"""GET /demo/app — a web app's quick-start, served as static files.

A web app would live on your static hosting (S3 and CloudFront, or any CDN) on the same site as the
token service; this function serves it so that `make serve` runs it on the API's own origin
(`http://127.0.0.1:3000/demo/app`). Everything that matters is in `static/app.js`: sign in with the device
flow, move the refresh token into the HttpOnly cookie, refresh with `credentials: "include"`, sign out.

Configuration (environment): `CLIENT_ID` (the public client the page signs in as), `API_URL` (the token
service; empty: this page's own origin), `RESOURCE_URL` (an API to call with the access token; empty:
`/demo/me` on this origin).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.utilities.typing import LambdaContext

STATIC = Path(__file__).resolve().parent / "static"
ASSETS = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
HEADERS = {
    # Only this origin's script and style; the API (same origin, or API_URL) is the only place it talks to.
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}

CLIENT_ID = os.environ.get("CLIENT_ID") or "demo-web"
API_URL = (os.environ.get("API_URL") or "").rstrip("/")
RESOURCE_URL = os.environ.get("RESOURCE_URL") or ""

app = APIGatewayHttpResolver()


def _csp() -> str:
    connect = " ".join(
        dict.fromkeys(["'self'", *(u for u in (API_URL, RESOURCE_URL) if u.startswith("http"))])
    )
    return (
        f"default-src 'none'; script-src 'self'; style-src 'self'; connect-src {connect}; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


@app.get("/demo/app")
def page() -> Response[str]:
    text = (STATIC / "index.html").read_text(encoding="utf-8")
    for name, value in (("CLIENT_ID", CLIENT_ID), ("API_URL", API_URL), ("RESOURCE_URL", RESOURCE_URL)):
        text = text.replace(f"{{{{{name}}}}}", html.escape(value, quote=True))
    return Response(200, "text/html; charset=utf-8", text, {**HEADERS, "Content-Security-Policy": _csp()})


@app.get("/demo/app/<asset>")
def asset(asset: str) -> Response[str]:
    if asset not in ASSETS:
        return Response(404, "text/plain; charset=utf-8", "Not found", HEADERS)
    return Response(200, ASSETS[asset], (STATIC / asset).read_text(encoding="utf-8"), HEADERS)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
