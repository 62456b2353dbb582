"""Plain-HTTP steps of the device flow against a running stack, shared by the interop and race tests.

Nothing here is an OAuth client under test: these are the steps a test does *around* the client (the
person's approval on the verify API, a JWKS check of what the client received)."""

from __future__ import annotations

from typing import Any

import jwt
import requests

TIMEOUT = 10
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


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


def verify_access_token(api_url: str, token: str, jwks_uri: str | None = None) -> dict[str, Any]:
    """The access token's claims, its signature checked with the key the JWKS publishes under its `kid`
    (ES256 only: the algorithm is pinned, never taken from the token), `iss` == `aud` == the API URL."""
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256", header
    assert header["typ"] == "at+jwt", header
    client = jwt.PyJWKClient(
        jwks_uri or f"{api_url}/.well-known/jwks.json", cache_keys=False, timeout=TIMEOUT
    )
    key = client.get_signing_key(header["kid"])
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["ES256"],
        issuer=api_url,
        audience=api_url,
        options={"require": ["iss", "sub", "aud", "exp", "iat", "jti"]},
    )
    return claims
