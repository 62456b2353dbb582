"""Plain-HTTP steps of the device flow against a running stack, shared by the interop and race tests.

Nothing here is an OAuth client under test: these are the steps a test does *around* the client (the
person's approval on the verify API, a JWKS check of what the client received)."""

from __future__ import annotations

from typing import Any

import requests

from tests.support import jwt_check

TIMEOUT = 10
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def rotation_grace_seconds() -> int:
    """The local stack's rotation grace: template.yaml's RotationGraceSeconds default, which it uses."""
    from local import template as tpl

    return int(tpl.load_template()["Parameters"]["RotationGraceSeconds"]["Default"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_device_flow(
    api_url: str, client_id: str, scope: str = "read write", http: Any = requests
) -> dict[str, Any]:
    """POST /oauth/device/code; the device authorization response."""
    response = http.post(
        f"{api_url}/oauth/device/code", data={"client_id": client_id, "scope": scope}, timeout=TIMEOUT
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def approve(api_url: str, id_token: str, user_code: str, http: Any = requests) -> None:
    """The signed-in person looks at the request (GET) and approves it (POST) on the verify API."""
    described = http.get(
        f"{api_url}/oauth/device/verify",
        params={"user_code": user_code},
        headers=bearer(id_token),
        timeout=TIMEOUT,
    )
    assert described.status_code == 200, described.text
    assert described.json()["status"] == "pending", described.text
    decided = http.post(
        f"{api_url}/oauth/device/verify",
        json={"user_code": user_code, "decision": "approve"},
        headers=bearer(id_token),
        timeout=TIMEOUT,
    )
    assert decided.status_code == 200, decided.text
    assert decided.json() == {"status": "approved"}


def approved_device_code(api_url: str, client_id: str, id_token: str, http: Any = requests) -> str:
    started = start_device_flow(api_url, client_id, http=http)
    approve(api_url, id_token, started["user_code"], http=http)
    return str(started["device_code"])


def verify_access_token(
    api_url: str, token: str, jwks_uri: str | None = None, now: float | None = None
) -> dict[str, Any]:
    """The access token's claims, checked by tests/support/jwt_check.py against the JWKS the stack
    publishes (`jwks_uri`, default the API's): ES256 pinned, `typ` at+jwt, `iss` == `aud` == the API
    URL, the required claims. `now`: the stack's time, when a test has moved its clock."""
    return jwt_check.verify_over_http(token, api_url, jwks_uri=jwks_uri, now=now)
