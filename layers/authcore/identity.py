"""Who is signed in: the person's ID token, verified in the function.

The HTTP API's JWT authorizer answers a missing or bad token itself (`{"message":"Unauthorized"}`, no
`Cache-Control`), outside the contract. So the verify routes have no authorizer, and the function checks
the token as the authorizer would, answering the canonical envelope's 401 `unauthorized`:
- the token from `Authorization` (`Bearer <token>`, or the bare token as API Gateway accepts it);
- the signature by a key of the issuer's JWKS, by `kid`, with the algorithm pinned to RS256 or ES256
  (never `none`, never a symmetric one); the JWKS is fetched once per execution environment and again
  only for an unknown `kid` (key rotation), at most once a minute;
- `iss` equal to the configured issuer; `aud` (or, without one, `client_id`) among the audiences;
  `exp` and `nbf` against the service's clock; `token_use` "id" where the issuer sets it (Cognito):
  an access token names no person.

Configuration: `AUTH_ISSUER`, `AUTH_AUDIENCE` (comma-separated), and `AUTH_JWKS_URI` where the JWKS is
not at the issuer's OpenID discovery document's `jwks_uri`.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt

from authcore import errors

ALGORITHMS = ("RS256", "ES256")
REFETCH_SECONDS = 60.0  # after a fetch, the next one (for an unknown kid) at the earliest
RETRY_SECONDS = 5.0  # after a failed fetch: a failing identity provider is not asked on every request
UNAVAILABLE = "The identity provider's keys are not available; try again shortly."
MAX_TOKEN_CHARS = 8192
MAX_DOCUMENT_BYTES = 256 * 1024
Fetch = Callable[[str], dict[str, Any]]


def fetch_json(url: str) -> dict[str, Any]:
    """GET a small JSON document (the issuer's discovery document or JWKS)."""
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        raise ValueError("the JWKS and discovery URLs must be http(s)")
    request = urllib.request.Request(url, headers={"accept": "application/json"})  # noqa: S310 - checked above
    with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 - checked above
        document = json.loads(response.read(MAX_DOCUMENT_BYTES + 1)[:MAX_DOCUMENT_BYTES])
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


class Verifier:
    def __init__(
        self,
        issuer: str,
        audiences: tuple[str, ...],
        jwks_uri: str = "",
        fetch: Fetch = fetch_json,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not issuer or not audiences:
            raise errors.InternalError("Sign-in is not configured (AUTH_ISSUER, AUTH_AUDIENCE).")
        self.issuer = issuer  # compared exactly with `iss` (some issuers end theirs with "/")
        self.audiences = audiences
        self.jwks_uri = jwks_uri
        self._fetch = fetch
        self._monotonic = monotonic
        self._keys: dict[str, jwt.PyJWK] = {}
        self._loaded = False
        self._next_fetch = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------ keys

    def _load(self) -> None:
        try:
            discovery = f"{self.issuer.rstrip('/')}/.well-known/openid-configuration"
            uri = self.jwks_uri or str(self._fetch(discovery)["jwks_uri"])
            document = self._fetch(uri)
            keys = {}
            for key in jwt.PyJWKSet.from_dict(document).keys:
                if key.key_id and key.algorithm_name in ALGORITHMS:
                    keys[key.key_id] = key
        except (OSError, ValueError, KeyError, TypeError, jwt.PyJWTError):
            self._next_fetch = self._monotonic() + RETRY_SECONDS
            raise errors.DependencyFailed(UNAVAILABLE) from None
        self._keys, self._loaded = keys, True
        self._next_fetch = self._monotonic() + REFETCH_SECONDS

    def _key(self, kid: str) -> jwt.PyJWK | None:
        """The key for a kid. An unknown kid (the issuer rotated) refetches the JWKS, at most once a minute
        after a fetch and once every few seconds after a failed one, however many requests ask."""
        with self._lock:
            key = self._keys.get(kid)
            if key is None and self._monotonic() >= self._next_fetch:
                self._load()
                key = self._keys.get(kid)
            elif key is None and not self._loaded:  # never had keys, and not due to ask again
                raise errors.DependencyFailed(UNAVAILABLE)
            return key

    # ------------------------------------------------------------ tokens

    def claims(self, authorization: str | None, now: int) -> dict[str, Any]:
        token = (authorization or "").strip()
        scheme, _, rest = token.partition(" ")
        if scheme.lower() == "bearer":
            token = rest.strip()
        if not token:
            raise errors.Unauthorized("Sign in: send your ID token as Authorization: Bearer <token>.")
        if len(token) > MAX_TOKEN_CHARS:
            raise errors.Unauthorized("The ID token is not valid.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise errors.Unauthorized("The ID token is not valid.") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS or not isinstance(kid, str):
            raise errors.Unauthorized("The ID token is not valid.")
        key = self._key(kid)
        if key is None or key.algorithm_name != alg:
            raise errors.Unauthorized("The ID token is not valid.")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key.key,
                algorithms=[alg],
                issuer=self.issuer,
                options={
                    "require": ["exp", "iss", "sub"],
                    "verify_aud": False,
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.PyJWTError:
            raise errors.Unauthorized("The ID token is not valid.") from None
        exp, nbf = _seconds(claims.get("exp")), _seconds(claims.get("nbf", now))
        if exp is None or exp <= now:
            raise errors.Unauthorized("The ID token has expired; sign in again.")
        if nbf is None or nbf > now:
            raise errors.Unauthorized("The ID token is not valid yet.")
        audience = claims.get("aud", claims.get("client_id"))
        named = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        if not any(isinstance(a, str) and a in self.audiences for a in named):
            raise errors.Unauthorized("The ID token is not for this service.")
        if claims.get("token_use", "id") != "id":  # Cognito: an access token names no person
            raise errors.Unauthorized("Sign in with an ID token, not an access token.")
        return claims


def _seconds(value: object) -> float | None:
    """A NumericDate (RFC 7519 §2), or None for anything else (a boolean, a string, a list)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
