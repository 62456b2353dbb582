"""The tests' one way to check an access token the service issued (RFC 9068), as a resource server would.

    claims = verify_access_token(token, jwks, issuer=ISSUER, audience=ISSUER)

``keys`` is a JWKS document (``{"keys": [...]}``, as ``/.well-known/jwks.json`` serves it) or a mapping
of key id to public key. Every check is always made, none can be switched off:
- the header: ``alg`` is ES256 (pinned: never taken from the token, so never ``none`` or HS256), ``typ``
  is ``at+jwt``, and ``kid`` names a key of the set (an EC P-256 public key, never a private half);
- the signature, with that key;
- ``iss`` and ``aud`` equal to what the caller says (both required arguments);
- the required claims are present and of the right type (RFC 9068 §2.2, and what this service adds:
  ``sid``, ``scope``, ``org_id``), ``exp`` after ``iat``;
- the times against ``now``: the wall clock, or the clock of the stack that issued the token when a
  test has moved it (``LocalStack.now()``).

Not the production verifier (``authcore.tokens.verify_access_token``, tested in tests/unit/test_tokens.py):
an independent one, written from the RFC, so a test does not check the service with its own code.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
TYPE = "at+jwt"
RFC_9068_CLAIMS = ("iss", "exp", "aud", "sub", "client_id", "iat", "jti")
SERVICE_CLAIMS = ("sid", "scope", "org_id")
REQUIRED_CLAIMS = RFC_9068_CLAIMS + SERVICE_CLAIMS
_PUBLIC_JWK_MEMBERS = {"kty", "crv", "x", "y", "kid", "use", "alg"}


def public_keys(keys: Mapping[str, Any]) -> dict[str, ec.EllipticCurvePublicKey]:
    """kid -> public key, from a JWKS document (each key checked to be a public P-256 ES256 key) or
    from a mapping that already is that."""
    if "keys" not in keys:
        out = dict(keys)
        for kid, key in out.items():
            assert isinstance(key, ec.EllipticCurvePublicKey), (kid, key)
        return out
    found: dict[str, ec.EllipticCurvePublicKey] = {}
    for jwk in keys["keys"]:
        assert set(jwk) <= _PUBLIC_JWK_MEMBERS, f"not a public JWK: {sorted(jwk)}"
        assert jwk["kty"] == "EC" and jwk["crv"] == "P-256", jwk
        assert jwk.get("alg", ALGORITHM) == ALGORITHM and jwk.get("use", "sig") == "sig", jwk
        assert jwk["kid"] not in found, f"kid {jwk['kid']} twice"
        key = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
        assert isinstance(key, ec.EllipticCurvePublicKey), jwk
        found[jwk["kid"]] = key
    return found


def fetch_jwks(url: str, timeout: float = 10) -> dict[str, Any]:
    """The JWKS document at ``url`` (for tests over HTTP)."""
    response = requests.get(url, timeout=timeout)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == "application/json", response.headers
    document: dict[str, Any] = response.json()
    return document


def verify_access_token(
    token: str,
    keys: Mapping[str, Any],
    *,
    issuer: str,
    audience: str,
    now: float | None = None,
    leeway: float = 0,
) -> dict[str, Any]:
    """The token's claims once every check above holds; an AssertionError or a ``jwt.PyJWTError``
    otherwise. ``now``: the time to judge ``exp``/``iat``/``nbf`` by (default: the wall clock)."""
    assert issuer and audience, "a token is always checked against an issuer and an audience"
    header = jwt.get_unverified_header(token)
    assert header.get("alg") == ALGORITHM, header
    assert header.get("typ") == TYPE, header
    known = public_keys(keys)
    assert header.get("kid") in known, f"kid {header.get('kid')!r} is not in the key set {sorted(known)}"
    claims: dict[str, Any] = jwt.decode(
        token,
        known[header["kid"]],
        algorithms=[ALGORITHM],
        issuer=issuer,
        audience=audience,
        options={
            "require": list(REQUIRED_CLAIMS),
            "verify_signature": True,
            "verify_iss": True,
            "verify_aud": True,
            # the times are checked below, against `now`
            "verify_exp": False,
            "verify_iat": False,
            "verify_nbf": False,
        },
    )
    assert claims["iss"] == issuer and claims["aud"] == audience, claims  # one audience, exactly
    for name in ("exp", "iat"):
        assert isinstance(claims[name], int) and not isinstance(claims[name], bool), claims
    for name in ("sub", "client_id", "jti", "sid", "scope", "org_id"):
        assert isinstance(claims[name], str), claims
    for name in ("sub", "client_id", "jti", "sid"):
        assert claims[name], claims
    at = time.time() if now is None else now
    assert claims["exp"] > claims["iat"], claims
    assert claims["exp"] > at - leeway, f"expired at {claims['exp']}, now {at}"
    assert claims["iat"] <= at + leeway, f"issued in the future ({claims['iat']}), now {at}"
    if "nbf" in claims:
        assert claims["nbf"] <= at + leeway, f"not valid before {claims['nbf']}, now {at}"
    return claims


def verify_over_http(
    token: str, api_url: str, *, jwks_uri: str | None = None, now: float | None = None
) -> dict[str, Any]:
    """For a stack over HTTP: the JWKS from ``jwks_uri`` (default the API's), and ``iss`` and ``aud``
    both the API's URL (the service's default audience is its issuer)."""
    jwks = fetch_jwks(jwks_uri or f"{api_url}/.well-known/jwks.json")
    return verify_access_token(token, jwks, issuer=api_url, audience=api_url, now=now)
