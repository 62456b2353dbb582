"""Secrets and what is derived from them: codes, refresh tokens, keyed digests, the signing key set, JWTs.

Pure: no I/O. Storage and Secrets Manager live elsewhere.

Token formats (the prefix lets secret scanners find leaked ones; the grant id finds the item by key):
- device code:    ``dc_<grant id>_<43 chars: 256 random bits>``
- refresh token:  ``rt_<grant id>_<43 chars>``; the first is random, each successor is
  HMAC(rotation key, predecessor), so concurrent rotations of one token agree on the successor.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEVICE_CODE_PREFIX = "dc"
REFRESH_TOKEN_PREFIX = "rt"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SIGNING_ALGORITHM = "ES256"
ACCESS_TOKEN_TYPE = "at+jwt"
_GRANT_ID_HEX = 32
_SECRET_LENGTH = 43  # base64url of 32 bytes, unpadded
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def new_grant_id() -> str:
    return secrets.token_hex(_GRANT_ID_HEX // 2)


def new_secret_token(prefix: str, grant_id: str) -> str:
    return f"{prefix}_{grant_id}_{_b64url(secrets.token_bytes(32))}"


def grant_id_of(token: str, prefix: str) -> str | None:
    """The grant id a well-formed token names, or None. Checks shape only, never validity."""
    if len(token) != len(prefix) + 2 + _GRANT_ID_HEX + _SECRET_LENGTH:
        return None
    head, sep, rest = token.partition("_")
    grant_id, sep2, secret = rest.partition("_")
    if head != prefix or not sep or not sep2 or len(grant_id) != _GRANT_ID_HEX:
        return None
    if any(c not in "0123456789abcdef" for c in grant_id) or any(c not in _B64URL for c in secret):
        return None
    return grant_id


# ---------------------------------------------------------------- user codes


def new_user_code() -> str:
    """Eight characters from a vowel-free alphabet (RFC 8628 §6.1), normalized form (no hyphen)."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def normalize_user_code(text: str) -> str | None:
    """Case-insensitive, ignoring hyphens and white space; None when it cannot be a user code."""
    cleaned = "".join(c for c in text.upper() if c not in "- \t")
    if len(cleaned) != USER_CODE_LENGTH or any(c not in USER_CODE_ALPHABET for c in cleaned):
        return None
    return cleaned


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


# ---------------------------------------------------------------- keyed digests


@dataclass(frozen=True)
class Hmac:
    """Keys derived from the one server HMAC key, one per purpose."""

    master: bytes

    def _key(self, purpose: str) -> bytes:
        return hmac.new(self.master, purpose.encode(), hashlib.sha256).digest()

    def digest(self, secret: str) -> str:
        """What is stored in place of a secret (device code, refresh token, client secret)."""
        return _b64url(hmac.new(self._key("digest"), secret.encode(), hashlib.sha256).digest())

    def successor(self, refresh_token: str) -> str:
        """The refresh token that replaces this one: the same for every concurrent rotation."""
        prefix, _, rest = refresh_token.partition("_")
        grant_id = rest.partition("_")[0]
        mac = hmac.new(self._key("rotate"), refresh_token.encode(), hashlib.sha256).digest()
        return f"{prefix}_{grant_id}_{_b64url(mac)}"


def same_digest(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())


# ---------------------------------------------------------------- signing keys


def _thumbprint(public: ec.EllipticCurvePublicKey) -> str:
    jwk = public_jwk(public)
    canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
    return _b64url(hashlib.sha256(canonical.encode()).digest())  # RFC 7638


def public_jwk(public: ec.EllipticCurvePublicKey, kid: str | None = None) -> dict[str, str]:
    numbers = public.public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
    }
    if kid is not None:
        jwk |= {"kid": kid, "use": "sig", "alg": SIGNING_ALGORITHM}
    return jwk


def new_signing_key(now: int, status: str) -> dict[str, Any]:
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"kid": _thumbprint(private.public_key()), "status": status, "private_pem": pem, "created_at": now}


def new_keyset_document(now: int | None = None) -> dict[str, Any]:
    """A fresh key set: a current and a next signing key, and the HMAC key."""
    now = int(time.time()) if now is None else now
    return {
        "version": 1,
        "hmac_key": _b64url(secrets.token_bytes(32)),
        "keys": [new_signing_key(now, "current"), new_signing_key(now, "next")],
    }


def rotate_keyset_document(doc: dict[str, Any], now: int, keep_retired_seconds: int) -> dict[str, Any]:
    """next -> current -> previous, and a new next. The HMAC key never changes (digests depend on it).

    A retired key stays (and stays in the JWKS) until every token it signed has expired:
    ``keep_retired_seconds`` is the access-token lifetime plus clock skew.
    """
    keys = [dict(k) for k in doc["keys"]]
    kept: list[dict[str, Any]] = []
    for key in keys:
        if key["status"] == "current":
            key["status"], key["retired_at"] = "previous", now
        elif key["status"] == "next":
            key["status"] = "current"
        elif key["status"] == "previous" and key.get("retired_at", 0) + keep_retired_seconds <= now:
            continue  # everything it signed has expired
        kept.append(key)
    if not any(k["status"] == "current" for k in kept):  # a set without a next key: promote a fresh one
        kept.append(new_signing_key(now, "current"))
    kept.append(new_signing_key(now, "next"))
    return {**doc, "keys": kept}


@dataclass(frozen=True)
class KeySet:
    """A parsed key set document. Build with `KeySet.parse`; signs with the current key."""

    hmac: Hmac
    signing_kid: str
    signing_key: ec.EllipticCurvePrivateKey
    public_keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | dict[str, Any]) -> KeySet:
        doc = json.loads(raw) if isinstance(raw, str) else raw
        master = base64.urlsafe_b64decode(doc["hmac_key"] + "=" * (-len(doc["hmac_key"]) % 4))
        if len(master) < 32:
            raise ValueError("the HMAC key must be at least 256 bits")
        public: dict[str, ec.EllipticCurvePublicKey] = {}
        signing: tuple[str, ec.EllipticCurvePrivateKey] | None = None
        for key in doc["keys"]:
            private = serialization.load_pem_private_key(key["private_pem"].encode(), password=None)
            if not isinstance(private, ec.EllipticCurvePrivateKey):
                raise ValueError("signing keys must be EC P-256")
            public[key["kid"]] = private.public_key()
            if key["status"] == "current":
                signing = (key["kid"], private)
        if signing is None:
            raise ValueError("the key set has no current key")
        return cls(hmac=Hmac(master), signing_kid=signing[0], signing_key=signing[1], public_keys=public)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(pub, kid) for kid, pub in sorted(self.public_keys.items())]}


# ---------------------------------------------------------------- access tokens (RFC 9068)


def sign_access_token(
    keyset: KeySet,
    *,
    issuer: str,
    audience: str,
    subject: str,
    client_id: str,
    scope: str,
    org_id: str,
    grant_id: str,
    now: int,
    ttl: int,
) -> str:
    claims = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + ttl,
        "iat": now,
        "nbf": now,
        "jti": str(uuid.uuid4()),
        "client_id": client_id,
        "scope": scope,
        "org_id": org_id,
        "sid": grant_id,
    }
    headers = {"kid": keyset.signing_kid, "typ": ACCESS_TOKEN_TYPE}
    return jwt.encode(claims, keyset.signing_key, algorithm=SIGNING_ALGORITHM, headers=headers)


class InvalidAccessToken(Exception):
    """The token is not one of ours, or no longer valid. The message is safe to log."""


def verify_access_token(
    token: str, public_keys: dict[str, ec.EllipticCurvePublicKey], *, issuer: str, audience: str
) -> dict[str, Any]:
    """Verify with a pinned algorithm and a known kid: never `none`, never a symmetric algorithm."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken("malformed token") from exc
    if header.get("alg") != SIGNING_ALGORITHM:
        raise InvalidAccessToken("unexpected algorithm")
    typ, kid = header.get("typ"), header.get("kid")
    if not isinstance(typ, str) or typ.lower() not in {ACCESS_TOKEN_TYPE, "application/at+jwt"}:
        raise InvalidAccessToken("not an access token")
    key = public_keys.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise InvalidAccessToken("unknown key id")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[SIGNING_ALGORITHM],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "iss", "aud", "sub", "jti", "sid", "client_id"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken(type(exc).__name__) from exc
    return claims
