"""Secrets and what is derived from them: codes, refresh tokens, keyed digests, the signing key set, JWTs.

Pure: no I/O. Storage and Secrets Manager live elsewhere.

Token formats (the prefix lets secret scanners find leaked ones; the grant id finds the item by key):
- device code:    ``dc_<grant id>_<43 chars: 256 random bits>``
- refresh token:  ``rt_<base64url of: version, grant id, generation, client id, nonce, tag>``, opaque to
  clients. The nonce (256 bits) of the first token is HMAC(first key, device code), so a re-sent exchange
  of one code gets the same token; each successor's nonce is HMAC(rotation key, predecessor), so
  concurrent rotations of one token agree on the successor. The tag is HMAC(tag key, everything before
  it): a token that names a generation and a client was minted by us, checked with one HMAC, so reuse is
  decided by comparing generations, never by walking a family's history.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import struct
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

# pyjwt (with every algorithm it supports) and cryptography's key handling are imported where a key or a
# JWT is handled, not with this module: most functions import it only for codes and digests, and these
# two cost about 90 ms of CPU at a cold start (bench/README.md). `jwt_module()` imports pyjwt ahead.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec


def jwt_module() -> ModuleType:
    """pyjwt, imported on first use."""
    import jwt

    return jwt


DEVICE_CODE_PREFIX = "dc"
REFRESH_TOKEN_PREFIX = "rt"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
USER_CODE_LENGTH = 8
SIGNING_ALGORITHM = "ES256"
ACCESS_TOKEN_TYPE = "at+jwt"
_GRANT_ID_HEX = 32
_SECRET_LENGTH = 43  # base64url of 32 bytes, unpadded
_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_HEX = frozenset("0123456789abcdef")


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
    if not _HEX.issuperset(grant_id) or not _B64URL.issuperset(secret):
        return None
    return grant_id


# ---------------------------------------------------------------- refresh tokens

_RT_VERSION = 2
_NONCE = 32
_TAG = 16
_RT_HEAD = struct.Struct(">B16sIB")  # version, grant id (16 bytes), generation, client id length
MAX_GENERATION = 2**32 - 1
_RT_MAX_CHARS = 3 + (_RT_HEAD.size + 255 + _NONCE + _TAG) * 4 // 3 + 4


@dataclass(frozen=True)
class RefreshToken:
    """A well-formed refresh token, parsed. Says nothing of its validity until `Hmac.authentic`."""

    text: str
    grant_id: str
    generation: int
    client_id: str
    signed: bytes  # everything the tag covers
    tag: bytes


def parse_refresh_token(text: str) -> RefreshToken | None:
    """The fields of a well-formed refresh token, or None. Checks shape only, never validity."""
    prefix = REFRESH_TOKEN_PREFIX + "_"
    if not text.startswith(prefix) or len(text) > _RT_MAX_CHARS:
        return None
    body = text[len(prefix) :]
    if not _B64URL.issuperset(body):  # (a set's own loop: a request's hot path parses one of these)
        return None
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, binascii.Error):
        return None
    if _b64url(raw) != body or len(raw) < _RT_HEAD.size:  # one spelling per token
        return None
    version, grant, generation, client_len = _RT_HEAD.unpack_from(raw)
    if version != _RT_VERSION or generation < 1 or len(raw) != _RT_HEAD.size + client_len + _NONCE + _TAG:
        return None
    client = raw[_RT_HEAD.size : _RT_HEAD.size + client_len]
    try:
        client_id = client.decode("ascii")
    except UnicodeDecodeError:
        return None
    if not client_id or not client_id.isprintable():
        return None
    return RefreshToken(text, grant.hex(), generation, client_id, raw[:-_TAG], raw[-_TAG:])


def _refresh_payload(grant_id: str, generation: int, client_id: str, nonce: bytes) -> bytes:
    client = client_id.encode("ascii")
    if len(client) > 255 or not 1 <= generation <= MAX_GENERATION:
        raise ValueError("client id too long or generation out of range")
    return _RT_HEAD.pack(_RT_VERSION, bytes.fromhex(grant_id), generation, len(client)) + client + nonce


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
    _keys: dict[str, bytes] = field(default_factory=dict, init=False, repr=False, compare=False)

    # hmac.digest: OpenSSL's one-shot HMAC-SHA256 (the same value as hmac.new(...).digest(), without
    # building an HMAC object in Python: a refresh computes five)
    def _key(self, purpose: str) -> bytes:
        """The purpose's key, derived once per key set (HMAC(master, purpose))."""
        key = self._keys.get(purpose)
        if key is None:
            key = hmac.digest(self.master, purpose.encode(), "sha256")
            self._keys[purpose] = key
        return key

    def digest(self, secret: str) -> str:
        """What is stored in place of a secret (device code, refresh token, client secret)."""
        return _b64url(hmac.digest(self._key("digest"), secret.encode(), "sha256"))

    def _mint(self, grant_id: str, generation: int, client_id: str, nonce: bytes) -> str:
        payload = _refresh_payload(grant_id, generation, client_id, nonce)
        tag = hmac.digest(self._key("refresh-tag"), payload, "sha256")[:_TAG]
        return f"{REFRESH_TOKEN_PREFIX}_{_b64url(payload + tag)}"

    def first_refresh_token(self, device_code: str, grant_id: str, client_id: str) -> str:
        """Generation 1 of a family: derived from the device code, so a re-sent exchange gets it again."""
        nonce = hmac.digest(self._key("refresh-first"), device_code.encode(), "sha256")
        return self._mint(grant_id, 1, client_id, nonce)

    def successor(self, token: RefreshToken) -> str:
        """The refresh token that replaces this one: the same for every concurrent rotation."""
        nonce = hmac.digest(self._key("rotate"), token.text.encode(), "sha256")
        return self._mint(token.grant_id, token.generation + 1, token.client_id, nonce)

    def authentic(self, token: RefreshToken) -> bool:
        """Was this token minted with our key? One HMAC, compared in constant time."""
        expected = hmac.digest(self._key("refresh-tag"), token.signed, "sha256")[:_TAG]
        return hmac.compare_digest(expected, token.tag)


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
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

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
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

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
    import jwt

    return jwt.encode(claims, keyset.signing_key, algorithm=SIGNING_ALGORITHM, headers=headers)


class InvalidAccessToken(Exception):
    """The token is not one of ours, or no longer valid. The message is safe to log."""


def verify_access_token(
    token: str,
    public_keys: dict[str, ec.EllipticCurvePublicKey],
    *,
    issuer: str,
    audience: str,
    now: int | None = None,
    leeway: int = 0,
) -> dict[str, Any]:
    """Verify with a pinned algorithm and a known kid: never `none`, never a symmetric algorithm.
    Times (``exp``, ``nbf``, ``iat``) are judged against ``now`` (the service's clock; default the wall
    clock), so every expiry in the service is decided by one clock."""
    import jwt

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
            options={
                "require": ["exp", "iat", "iss", "aud", "sub", "jti", "sid", "client_id"],
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidAccessToken(type(exc).__name__) from exc
    at = int(time.time()) if now is None else now
    times = [claims.get(name) for name in ("exp", "iat", "nbf")]
    if any(t is not None and (not isinstance(t, int) or isinstance(t, bool)) for t in times):
        raise InvalidAccessToken("times must be whole seconds")
    exp, iat, nbf = times
    if exp is None or iat is None or exp <= at - leeway:
        raise InvalidAccessToken("ExpiredSignatureError")
    if iat > at + leeway or (nbf is not None and nbf > at + leeway):
        raise InvalidAccessToken("ImmatureSignatureError")
    if not isinstance(claims.get("sid"), str) or not isinstance(claims.get("client_id"), str):
        raise InvalidAccessToken("sid and client_id must be strings")
    return claims
