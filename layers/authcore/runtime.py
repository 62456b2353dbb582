"""What lives for the whole execution environment: settings, AWS clients, the client cache, the key set
(and, for the discovery function, which may not read the key set, the public key set published beside it).

Created lazily on first use (not at import, to keep cold starts short for routes that need little),
never per request. `reset` is for a process that changes its environment (tests, the local server).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from authcore import errors, keyrotation
from authcore.clients import ClientRegistry
from authcore.identity import Verifier
from authcore.observability import logger
from authcore.settings import Settings, get_settings
from authcore.store import Store
from authcore.tokens import KeySet

BOTO_CONFIG = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"mode": "standard", "total_max_attempts": 3},
    tcp_keepalive=True,
)

_lock = threading.Lock()
_state: dict[str, Any] = {}


def _once(name: str, build: Any) -> Any:
    value = _state.get(name)
    if value is None:
        with _lock:
            value = _state.get(name)
            if value is None:
                value = build()
                _state[name] = value
    return value


def settings() -> Settings:
    return get_settings()


def store() -> Store:
    def build() -> Store:
        return Store(boto3.client("dynamodb", config=BOTO_CONFIG), settings().table_name)

    result: Store = _once("store", build)
    return result


def clients() -> ClientRegistry:
    result: ClientRegistry = _once("clients", lambda: ClientRegistry(settings().client_cache_seconds))
    return result


def identity() -> Verifier:
    """The verifier of people's ID tokens (its JWKS cached for the environment)."""

    def build() -> Verifier:
        s = settings()
        return Verifier(s.auth_issuer, s.auth_audience, s.auth_jwks_uri)

    result: Verifier = _once("identity", build)
    return result


def _secrets_provider() -> parameters.SecretsProvider:
    result: parameters.SecretsProvider = _once(
        "secrets", lambda: parameters.SecretsProvider(boto_config=BOTO_CONFIG)
    )
    return result


def keyset() -> KeySet:
    """The signing key set, from Secrets Manager through Powertools Parameters (cached)."""
    # The stage is AWS's default; naming it also makes moto (whose default ignores moved labels) agree.
    raw = _secrets_provider().get(
        settings().keys_secret_id, max_age=settings().secret_cache_seconds, VersionStage="AWSCURRENT"
    )
    cached = _state.get("keyset")
    if cached is not None and cached[0] == raw:
        return cached[1]  # type: ignore[no-any-return]
    try:
        parsed = KeySet.parse(raw if isinstance(raw, str) else json.dumps(raw))
    except (ValueError, KeyError, TypeError) as exc:
        logger.error("the signing key set is unreadable", extra={"error_type": type(exc).__name__})
        raise errors.DependencyFailed("The signing keys are not available; try again shortly.") from None
    _state["keyset"] = (raw, parsed)
    return parsed


# A JWK of the published set may hold only these members: never a private half ("d") or anything else.
_PUBLIC_JWK_MEMBERS = frozenset({"kty", "crv", "x", "y", "kid", "use", "alg"})


def _checked_jwks(raw: Any) -> dict[str, Any]:
    doc = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
    if not isinstance(doc, dict) or set(doc) != {"keys"} or not isinstance(doc["keys"], list):
        raise ValueError("not a JWKS document")
    keys: list[dict[str, str]] = []
    for key in doc["keys"]:
        if not isinstance(key, dict) or not key.get("kid") or not key.get("kty"):
            raise ValueError("a key without kid or kty")
        if not set(key) <= _PUBLIC_JWK_MEMBERS or not all(isinstance(v, str) for v in key.values()):
            raise ValueError("a key with members a public JWK does not have")
        keys.append(dict(key))
    if not keys:
        raise ValueError("no keys")
    return {"keys": keys}


def public_jwks() -> dict[str, Any]:
    """The public key set (the JWKS document `keyrotation.publish` writes: the public halves of every
    key of the signing set), from its own secret (JWKS_SECRET_ID) through Powertools Parameters, cached
    as `keyset` is. For the discovery function, which is not allowed to read the private set."""
    raw = _secrets_provider().get(
        keyrotation.jwks_secret_id(), max_age=settings().secret_cache_seconds, VersionStage="AWSCURRENT"
    )
    cached = _state.get("jwks")
    if cached is not None and cached[0] == raw:
        return cached[1]  # type: ignore[no-any-return]
    try:
        parsed = _checked_jwks(raw)
    except (ValueError, KeyError, TypeError) as exc:
        logger.error("the public key set is unreadable", extra={"error_type": type(exc).__name__})
        raise errors.DependencyFailed(
            "The public signing keys are not available; try again shortly."
        ) from None
    _state["jwks"] = (raw, parsed)
    return parsed


def reset() -> None:
    """Forget everything built from the environment (tests and the local server change it)."""
    with _lock:
        _state.clear()
    get_settings.cache_clear()
    parameters.clear_caches()  # type: ignore[no-untyped-call]
