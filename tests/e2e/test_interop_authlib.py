"""Interoperability: Authlib's OAuth 2.0 client (requests integration) against the local stack.

One whole life of a grant, as a third-party Python client sees it: RFC 8414 discovery, RFC 8628 device
authorization, the person's approval (on the verify API, between two polls), polling the token endpoint
with Authlib's `fetch_token` while honouring `interval` and `slow_down`, a refresh with Authlib's
`refresh_token`, then a replay of the rotated-out refresh token after the rotation grace period: refused
with `invalid_grant`, and the family is revoked, so the successor is dead too. Access tokens are
checked against the JWKS.

The stack runs with the template's default rotation grace (10 s), so the test waits it out: ~16 s.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from local.stack import StackInfo
from tests.e2e.flows import DEVICE_GRANT, TIMEOUT, approve, verify_access_token

pytestmark = pytest.mark.slow

ROTATION_GRACE_SECONDS = 10  # template.yaml's RotationGraceSeconds default, which the local stack uses
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: on slow_down the client adds 5 s to its interval
MAX_POLLS = 10


def poll_for_tokens(
    client: OAuth2Session, token_endpoint: str, device: dict[str, Any], on_pending: Any
) -> tuple[dict[str, Any], list[tuple[float, str]]]:
    """Polls the token endpoint as RFC 8628 §3.4-3.5 says: wait `interval` between polls, add 5 s on
    `slow_down`, stop on anything but `authorization_pending`/`slow_down`. `on_pending` runs once, after
    the first pending answer (the person approves then). Returns the token and each poll's outcome."""
    interval = float(device["interval"])
    deadline = time.monotonic() + min(float(device["expires_in"]), 60.0)
    outcomes: list[tuple[float, str]] = []
    approved = False
    for _ in range(MAX_POLLS):
        assert time.monotonic() < deadline, f"no token before the deadline: {outcomes}"
        try:
            token = client.fetch_token(
                token_endpoint, grant_type=DEVICE_GRANT, device_code=device["device_code"]
            )
        except OAuthError as error:
            outcomes.append((time.monotonic(), str(error.error)))
            if error.error == "slow_down":
                interval += SLOW_DOWN_STEP
            elif error.error != "authorization_pending":
                raise
            if not approved:
                on_pending()
                approved = True
            time.sleep(interval)
            continue
        outcomes.append((time.monotonic(), "token"))
        return dict(token), outcomes
    raise AssertionError(f"no token after {MAX_POLLS} polls: {outcomes}")


def test_authlib_device_flow_refresh_and_replay(stack: StackInfo, id_token: str) -> None:
    api = stack.api_url
    client_id = stack.clients.public.client_id
    client = OAuth2Session(client_id=client_id, token_endpoint_auth_method="none", default_timeout=TIMEOUT)

    # RFC 8414 discovery: the issuer is exactly the URL the client was given.
    discovered = client.get(
        f"{api}/.well-known/oauth-authorization-server", withhold_token=True, timeout=TIMEOUT
    )
    assert discovered.status_code == 200, discovered.text
    metadata = discovered.json()
    assert metadata["issuer"] == api
    assert DEVICE_GRANT in metadata["grant_types_supported"]
    assert "refresh_token" in metadata["grant_types_supported"]
    assert "none" in metadata["token_endpoint_auth_methods_supported"]
    token_endpoint = metadata["token_endpoint"]

    # RFC 8628 §3.1-3.2: device authorization.
    authorized = client.post(
        metadata["device_authorization_endpoint"],
        data={"client_id": client_id, "scope": "read write"},
        withhold_token=True,
        timeout=TIMEOUT,
    )
    assert authorized.status_code == 200, authorized.text
    device = authorized.json()
    assert {"device_code", "user_code", "verification_uri", "expires_in", "interval"} <= set(device)

    # Poll; the person approves after the first pending answer.
    token, outcomes = poll_for_tokens(
        client, token_endpoint, device, lambda: approve(api, id_token, device["user_code"])
    )
    assert [o for _, o in outcomes] == ["authorization_pending", "token"], outcomes
    assert outcomes[1][0] - outcomes[0][0] >= device["interval"] - 0.5  # the client kept the interval
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read write"
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
    assert "expires_at" in token  # Authlib understood the lifetime
    claims = verify_access_token(api, token["access_token"], metadata["jwks_uri"])
    assert claims["sub"] == stack.demo.sub
    assert claims["client_id"] == client_id
    assert claims["org_id"] == stack.demo.organization_id
    assert claims["scope"] == "read write"

    # Refresh with Authlib: the refresh token rotates.
    old_refresh = token["refresh_token"]
    refreshed = dict(client.refresh_token(token_endpoint, refresh_token=old_refresh))
    rotated_at = time.monotonic()
    new_refresh = refreshed["refresh_token"]
    assert new_refresh != old_refresh
    assert refreshed["token_type"] == "Bearer"
    assert refreshed["access_token"] != token["access_token"]
    refreshed_claims = verify_access_token(api, refreshed["access_token"], metadata["jwks_uri"])
    assert refreshed_claims["sid"] == claims["sid"]  # the same grant
    assert refreshed_claims["jti"] != claims["jti"]

    # After the grace period, the rotated-out token is a replay: refused, and the whole family dies.
    time.sleep(max(0.0, rotated_at + ROTATION_GRACE_SECONDS + 0.5 - time.monotonic()))
    with pytest.raises(OAuthError) as replayed:
        client.refresh_token(token_endpoint, refresh_token=old_refresh)
    assert replayed.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as after:
        client.refresh_token(token_endpoint, refresh_token=new_refresh)
    assert after.value.error == "invalid_grant"
