"""Refresh tokens as an attacker (or a test) can make them: well formed, but minted with another key."""

from __future__ import annotations

from authcore import tokens

ATTACKER_KEY = tokens.Hmac(b"\x07" * 32)


def forged_refresh_token(grant_id: str = "0" * 32, client_id: str = "demo-cli", generation: int = 1) -> str:
    """A token of the right shape naming ``grant_id``, whose tag no server key made."""
    first = ATTACKER_KEY.first_refresh_token("dc_forged", grant_id, client_id)
    token = tokens.parse_refresh_token(first)
    assert token is not None
    for _ in range(generation - 1):
        token = tokens.parse_refresh_token(ATTACKER_KEY.successor(token))
        assert token is not None
    return token.text


def grant_of(refresh_token: str) -> str:
    token = tokens.parse_refresh_token(refresh_token)
    assert token is not None, "not a well-formed refresh token"
    return token.grant_id


def generation_of(refresh_token: str) -> int:
    token = tokens.parse_refresh_token(refresh_token)
    assert token is not None, "not a well-formed refresh token"
    return token.generation


UNKNOWN_RT = forged_refresh_token()
