"""Interoperability: Authlib's OAuth 2.0 client (requests integration) against the local stack.

One whole life of a grant, as a third-party Python client sees it: RFC 8414 discovery, RFC 8628 device
authorization, the person's approval (on the verify API, between two polls), polling the token endpoint
with Authlib's `fetch_token` while honouring `interval` and `slow_down`, a refresh with Authlib's
`refresh_token`, then a replay of the rotated-out refresh token after the rotation grace period: refused
with `invalid_grant`, and the family is revoked, so the successor is dead too. Access tokens are
checked against the JWKS.

Nothing waits: the stack is one whose clock the test moves (the `clocked_stack` fixture). Authlib has no
device-flow polling of its own (`fetch_token` makes one request), so the polling loop is the test's, and
"waiting `interval` seconds" is moving the stack's clock by `interval`. The server, judging by that
clock, answers `slow_down` to a pending poll that comes too early (the control shows it does), so a
second `authorization_pending` shows the wait happened on the server's clock. The rotation grace
(template.yaml's RotationGraceSeconds) is passed the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from tests.e2e.conftest import ClockedStack
from tests.e2e.flows import DEVICE_GRANT, TIMEOUT, approve, rotation_grace_seconds, verify_access_token

pytestmark = pytest.mark.slow

SLOW_DOWN_STEP = 5  # RFC 8628 §3.5: on slow_down the client adds 5 s to its interval
MAX_POLLS = 10


def poll_for_tokens(
    client: OAuth2Session,
    token_endpoint: str,
    device: dict[str, Any],
    on_pending: Callable[[], None],
    wait: Callable[[float], None],
    approve_after: int = 2,
) -> tuple[dict[str, Any], list[str], list[float]]:
    """Polls the token endpoint as RFC 8628 §3.4-3.5 says: `wait(interval)` between polls, add 5 s on
    `slow_down`, stop on anything but `authorization_pending`/`slow_down`. `on_pending` runs once, after
    the `approve_after`-th pending answer (the person approves then). Returns the token, each poll's
    outcome, and each wait."""
    interval = float(device["interval"])
    outcomes: list[str] = []
    waits: list[float] = []
    for _ in range(MAX_POLLS):
        try:
            token = client.fetch_token(
                token_endpoint, grant_type=DEVICE_GRANT, device_code=device["device_code"]
            )
        except OAuthError as error:
            outcomes.append(str(error.error))
            if error.error == "slow_down":
                interval += SLOW_DOWN_STEP
            elif error.error != "authorization_pending":
                raise
            if outcomes.count("authorization_pending") == approve_after and error.error != "slow_down":
                on_pending()
            wait(interval)
            waits.append(interval)
            continue
        outcomes.append("token")
        return dict(token), outcomes, waits
    raise AssertionError(f"no token after {MAX_POLLS} polls: {outcomes}")


def device_authorization(client: OAuth2Session, endpoint: str, client_id: str) -> dict[str, Any]:
    """RFC 8628 §3.1-3.2."""
    authorized = client.post(
        endpoint, data={"client_id": client_id, "scope": "read write"}, withhold_token=True, timeout=TIMEOUT
    )
    assert authorized.status_code == 200, authorized.text
    device: dict[str, Any] = authorized.json()
    assert {"device_code", "user_code", "verification_uri", "expires_in", "interval"} <= set(device)
    return device


def test_authlib_device_flow_refresh_and_replay(clocked_stack: ClockedStack) -> None:
    stack = clocked_stack.info
    api = stack.api_url
    id_token = clocked_stack.id_token()
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

    # The control: by the stack's clock, a poll that does not wait the interval is too fast.
    control = device_authorization(client, metadata["device_authorization_endpoint"], client_id)
    with pytest.raises(OAuthError) as pending:
        client.fetch_token(token_endpoint, grant_type=DEVICE_GRANT, device_code=control["device_code"])
    assert pending.value.error == "authorization_pending"
    with pytest.raises(OAuthError) as too_fast:
        client.fetch_token(token_endpoint, grant_type=DEVICE_GRANT, device_code=control["device_code"])
    assert too_fast.value.error == "slow_down"

    # Poll, waiting the interval (on the stack's clock); the person approves after the second pending
    # answer. That second answer is pending, not slow_down: the stack's clock moved by the interval.
    device = device_authorization(client, metadata["device_authorization_endpoint"], client_id)
    token, outcomes, waits = poll_for_tokens(
        client,
        token_endpoint,
        device,
        lambda: approve(api, id_token, device["user_code"]),
        clocked_stack.advance,
    )
    assert outcomes == ["authorization_pending", "authorization_pending", "token"], outcomes
    assert waits == [device["interval"]] * 2, waits
    assert token["token_type"] == "Bearer"
    assert token["scope"] == "read write"
    assert isinstance(token["expires_in"], int) and token["expires_in"] > 0
    assert "expires_at" in token  # Authlib understood the lifetime
    claims = verify_access_token(api, token["access_token"], metadata["jwks_uri"], now=clocked_stack.now())
    assert claims["sub"] == stack.demo.sub
    assert claims["client_id"] == client_id
    assert claims["org_id"] == stack.demo.organization_id
    assert claims["scope"] == "read write"

    # Refresh with Authlib: the refresh token rotates.
    old_refresh = token["refresh_token"]
    refreshed = dict(client.refresh_token(token_endpoint, refresh_token=old_refresh))
    new_refresh = refreshed["refresh_token"]
    assert new_refresh != old_refresh
    assert refreshed["token_type"] == "Bearer"
    assert refreshed["access_token"] != token["access_token"]
    refreshed_claims = verify_access_token(
        api, refreshed["access_token"], metadata["jwks_uri"], now=clocked_stack.now()
    )
    assert refreshed_claims["sid"] == claims["sid"]  # the same grant
    assert refreshed_claims["jti"] != claims["jti"]

    # Within the grace period the rotated-out token is a retry: the same successor, nothing revoked.
    retried = dict(client.refresh_token(token_endpoint, refresh_token=old_refresh))
    assert retried["refresh_token"] == new_refresh

    # After the grace period, the rotated-out token is a replay: refused, and the whole family dies.
    clocked_stack.advance(rotation_grace_seconds() + 1)
    with pytest.raises(OAuthError) as replayed:
        client.refresh_token(token_endpoint, refresh_token=old_refresh)
    assert replayed.value.error == "invalid_grant"
    with pytest.raises(OAuthError) as after:
        client.refresh_token(token_endpoint, refresh_token=new_refresh)
    assert after.value.error == "invalid_grant"
