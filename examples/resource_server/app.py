"""GET /demo/me — an API of yours that accepts the token service's access tokens.

The code a product team copies into its own API: it verifies an access token **offline**, with the token
service's public keys (its JWKS), and answers with the token's claims. It depends on nothing of the token
service's code: only on what the service publishes (the issuer, the JWKS, RFC 9068 access tokens).

What a token must be to get in (RFC 9068, RFC 6750):
- a JWT whose header says `alg: ES256` (pinned here, never read from the token: `none` and HS256 are
  refused), `typ: at+jwt` (an access token, not an ID token), and a `kid` of the JWKS;
- signed by that key; `iss` the token service's issuer; `aud` this API's audience; not expired;
- with the scope this API needs (`REQUIRED_SCOPE`), else 403 `insufficient_scope`.

Offline verification cannot see a revoked session: an access token stays valid until it expires (an hour
by default). Where that matters, ask the token service: `POST /oauth/introspect` (README.md beside this).

Configuration (environment): `TOKEN_ISSUER` (required), `TOKEN_AUDIENCE` (default: the issuer),
`REQUIRED_SCOPE` (default `read`), `JWKS_URL` (default `<issuer>/.well-known/jwks.json`).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import jwt
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

ALGORITHM = "ES256"  # pinned: the algorithm is ours to choose, never the token's
ACCESS_TOKEN_TYPES = {"at+jwt", "application/at+jwt"}  # RFC 9068 §2.1
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"]
LEEWAY_SECONDS = 30  # clock skew between the token service and this function

ISSUER = os.environ["TOKEN_ISSUER"].rstrip("/")
AUDIENCE = os.environ.get("TOKEN_AUDIENCE") or ISSUER
REQUIRED_SCOPE = os.environ.get("REQUIRED_SCOPE") or "read"
JWKS_URL = os.environ.get("JWKS_URL") or f"{ISSUER}/.well-known/jwks.json"

logger = Logger(service="demo-resource-server")
app = APIGatewayHttpResolver()


class Refused(Exception):
    """Why a request may not in: RFC 6750 §3's error, said in the body and in WWW-Authenticate."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


class KeySet:
    """The token service's public keys, by `kid`: fetched once per execution environment, and again when
    a token names a key not seen yet (the service publishes a new key before it signs with it), at most
    once a minute, so that made-up `kid`s cannot make this function hammer the JWKS."""

    def __init__(self, url: str, refetch_after: float = 60, timeout: float = 5) -> None:
        self.url, self.refetch_after, self.timeout = url, refetch_after, timeout
        self._keys: dict[str, Any] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def key(self, kid: str) -> Any:
        with self._lock:
            stale = self._fetched_at is None or time.monotonic() - self._fetched_at >= self.refetch_after
            if kid not in self._keys and stale:
                self._fetch()
            key = self._keys.get(kid)
        if key is None:
            raise Refused(401, "invalid_token", "The access token was signed with an unknown key.")
        return key

    def _fetch(self) -> None:
        self._fetched_at = time.monotonic()
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as answer:  # noqa: S310 - a configured https URL
                document = json.load(answer)
            keys = jwt.PyJWKSet.from_dict(document).keys
        except (OSError, ValueError, jwt.PyJWTError) as exc:
            logger.warning("cannot read the JWKS", extra={"error_type": type(exc).__name__})
            raise Refused(503, "temporarily_unavailable", "Cannot read the token service's keys.") from None
        self._keys = {k.key_id: k.key for k in keys if k.key_id and k.key_type == "EC"}


KEYS = KeySet(JWKS_URL)


def verify(authorization: str | None) -> dict[str, Any]:
    """The claims of the bearer token in `authorization`, once every check holds; `Refused` otherwise."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Refused(401, "invalid_token", "Send an access token: Authorization: Bearer <token>.")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Refused(401, "invalid_token", "The access token is not a JWT.") from None
    if header.get("alg") != ALGORITHM:
        raise Refused(401, "invalid_token", f"The access token must be signed with {ALGORITHM}.")
    if str(header.get("typ", "")).lower() not in ACCESS_TOKEN_TYPES:
        raise Refused(401, "invalid_token", "This is not an access token (typ must be at+jwt).")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Refused(401, "invalid_token", "The access token names no key (kid).")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            KEYS.key(kid),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            audience=AUDIENCE,
            leeway=LEEWAY_SECONDS,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.ExpiredSignatureError:
        raise Refused(401, "invalid_token", "The access token has expired.") from None
    except jwt.InvalidIssuerError:
        raise Refused(401, "invalid_token", "The access token is from another issuer.") from None
    except jwt.InvalidAudienceError:
        raise Refused(401, "invalid_token", "The access token is for another audience.") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Refused(401, "invalid_token", f"The access token has no {exc.claim} claim.") from None
    except jwt.PyJWTError:
        raise Refused(401, "invalid_token", "The access token is not valid.") from None
    if REQUIRED_SCOPE not in str(claims["scope"]).split():
        raise Refused(403, "insufficient_scope", f"This API needs the scope {REQUIRED_SCOPE}.")
    return claims


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status,
        content_type="application/json",
        body=json.dumps(body),
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


@app.get("/demo/me")
def me() -> Response[str]:
    claims = verify(app.current_event.headers.get("authorization"))
    return _json(
        200,
        {
            "sub": claims["sub"],
            "org_id": claims.get("org_id"),
            "client_id": claims["client_id"],
            "scopes": str(claims["scope"]).split(),
            "claims": claims,
        },
    )


@app.exception_handler(Refused)  # type: ignore[untyped-decorator, unused-ignore]
def refused(exc: Refused) -> Response[str]:
    logger.info("refused", extra={"status": exc.status, "error": exc.error})  # never the token itself
    headers = {"Retry-After": "5"} if exc.status == 503 else {}
    if exc.status in (401, 403):  # RFC 6750 §3: say what the token lacked
        challenge = f'Bearer realm="demo", error="{exc.error}", error_description="{exc.description}"'
        headers["WWW-Authenticate"] = challenge + (f', scope="{REQUIRED_SCOPE}"' if exc.status == 403 else "")
    return _json(exc.status, {"error": exc.error, "error_description": exc.description}, headers)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
