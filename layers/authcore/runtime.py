"""What lives for the whole execution environment: settings, AWS clients, the client cache, the key set
(and, for the discovery function, which may not read the key set, the public key set published beside it).

Created lazily on first use, never per request, and each builder imports what it needs (boto3 and
botocore's configuration, Powertools Parameters, the identity verifier and pyjwt): a function imports
only what its requests use, and the page (which uses none of them) no AWS SDK at all.

- `reset` forgets everything built from the environment (tests and the local server change it);
- `prime` builds it ahead, with no request to AWS: registered to run before a SnapStart snapshot, so
  that restored environments start with their clients built and their modules imported;
- `after_restore` drops what environments restored from one snapshot must not share: the cached key
  sets and secrets, the client and identity caches, the connections, the random module's state.
  Registered with Lambda's runtime hooks (`snapshot_restore_py`, present only in Lambda's managed
  runtimes) when it is there.
"""

from __future__ import annotations

import importlib
import json
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from authcore import errors
from authcore.observability import logger
from authcore.settings import Settings, get_settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from botocore.config import Config

    from authcore.clients import ClientRegistry
    from authcore.identity import Verifier
    from authcore.store import Store
    from authcore.tokens import KeySet

    BOTO_CONFIG: Config  # `boto_config()`, built on first use: botocore.config costs ~0.1 s to import

_lock = threading.RLock()
_state: dict[str, Any] = {}  # what is built from the environment: `reset` and `after_restore` drop it
_kept: dict[str, Any] = {}  # what neither changes (the botocore Config)


def _once(name: str, build: Any, *, keep: bool = False) -> Any:
    built = _kept if keep else _state
    value = built.get(name)
    if value is None:
        with _lock:
            value = built.get(name)
            if value is None:
                value = build()
                built[name] = value
    return value


def boto_config() -> Config:
    """The configuration of every AWS client of the functions.

    - timeouts and retries that end within the functions' Timeout (settings.py, test_hardening.py);
    - `parameter_validation=False`: our own code builds every request (store.py), so botocore's
      client-side check of each one against the service model repeats nothing a test has not;
      DynamoDB validates every request anyway (bench/README.md: about 0.1 ms per call);
    - `user_agent`: a fixed User-Agent, so that botocore does not assemble it anew, twice, for every
      request (about a sixth of an UpdateItem's client CPU). It names the service and botocore's version."""

    def build() -> Config:
        import platform

        import botocore
        from botocore.config import Config

        return Config(
            connect_timeout=1,
            read_timeout=2,
            retries={"mode": "standard", "total_max_attempts": 3},
            tcp_keepalive=True,
            parameter_validation=False,
            user_agent=(
                f"token-service Botocore/{botocore.__version__} Python/{platform.python_version()}"
                f" {platform.system()}/{platform.release()}"
            ),
        )

    result: Config = _once("boto_config", build, keep=True)
    return result


if not TYPE_CHECKING:  # mypy sees the declaration above, and no module __getattr__ to hide typos

    def __getattr__(name: str) -> Any:
        if name == "BOTO_CONFIG":
            return boto_config()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def settings() -> Settings:
    return get_settings()


def store() -> Store:
    def build() -> Store:
        import boto3

        from authcore.store import Store

        return Store(boto3.client("dynamodb", config=boto_config()), settings().table_name)

    result: Store = _once("store", build)
    return result


def clients() -> ClientRegistry:
    def build() -> ClientRegistry:
        from authcore.clients import ClientRegistry

        return ClientRegistry(settings().client_cache_seconds)

    result: ClientRegistry = _once("clients", build)
    return result


def identity() -> Verifier:
    """The verifier of people's ID tokens (its JWKS cached for the environment)."""

    def build() -> Verifier:
        from authcore.identity import Verifier

        s = settings()
        return Verifier(s.auth_issuer, s.auth_audience, s.auth_jwks_uri)

    result: Verifier = _once("identity", build)
    return result


def _secrets_provider() -> SecretsProvider:
    def build() -> SecretsProvider:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        return SecretsProvider(boto_config=boto_config())

    result: SecretsProvider = _once("secrets", build)
    return result


def _fresh(name: str, max_age: int) -> Any:
    """What `keyset`/`public_jwks` parsed, while younger than ``max_age`` seconds (0: never): a request
    asks for the key set two or three times, and each ask of Powertools Parameters' own cache (of the
    same age) costs more than the HMAC it is asked for. Its age is counted on the monotonic clock;
    `after_restore` drops it with the rest."""
    cached = _state.get(name)
    if cached is not None and max_age > 0 and time.monotonic() - cached[2] < max_age:
        return cached[1]
    return None


def keyset() -> KeySet:
    """The signing key set, from Secrets Manager through Powertools Parameters (cached)."""
    max_age = settings().secret_cache_seconds
    fresh: KeySet | None = _fresh("keyset", max_age)
    if fresh is not None:
        return fresh
    # The stage is AWS's default; naming it also makes moto (whose default ignores moved labels) agree.
    raw = _secrets_provider().get(settings().keys_secret_id, max_age=max_age, VersionStage="AWSCURRENT")
    cached = _state.get("keyset")
    if cached is not None and cached[0] == raw:
        _state["keyset"] = (raw, cached[1], time.monotonic())
        return cached[1]  # type: ignore[no-any-return]
    from authcore.tokens import KeySet

    try:
        parsed = KeySet.parse(raw if isinstance(raw, str) else json.dumps(raw))
    except (ValueError, KeyError, TypeError) as exc:
        logger.error("the signing key set is unreadable", extra={"error_type": type(exc).__name__})
        raise errors.DependencyFailed("The signing keys are not available; try again shortly.") from None
    _state["keyset"] = (raw, parsed, time.monotonic())
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
    from authcore import keyrotation

    max_age = settings().secret_cache_seconds
    fresh: dict[str, Any] | None = _fresh("jwks", max_age)
    if fresh is not None:
        return fresh
    raw = _secrets_provider().get(keyrotation.jwks_secret_id(), max_age=max_age, VersionStage="AWSCURRENT")
    cached = _state.get("jwks")
    if cached is not None and cached[0] == raw:
        _state["jwks"] = (raw, cached[1], time.monotonic())
        return cached[1]  # type: ignore[no-any-return]
    try:
        parsed = _checked_jwks(raw)
    except (ValueError, KeyError, TypeError) as exc:
        logger.error("the public key set is unreadable", extra={"error_type": type(exc).__name__})
        raise errors.DependencyFailed(
            "The public signing keys are not available; try again shortly."
        ) from None
    _state["jwks"] = (raw, parsed, time.monotonic())
    return parsed


def reset() -> None:
    """Forget everything built from the environment (tests and the local server change it)."""
    with _lock:
        _state.clear()
    get_settings.cache_clear()
    parameters = _loaded("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:
        parameters.clear_caches()


def _loaded(module: str) -> Any:
    """The module if something imported it already, else None (never imports it)."""
    return sys.modules.get(module)


# ---------------------------------------------------------------- SnapStart


def prime() -> None:
    """Build, ahead of the first request, what the functions build on it: settings, the AWS clients, the
    client registry, the identity verifier, and the modules they import (pyjwt among them). No request
    to AWS: the key sets and clients are fetched by the first request that needs them. Run before a
    SnapStart snapshot, so that every environment restored from it starts with this done."""
    from authcore import envelopes, keyrotation, tokens  # noqa: F401 - imported into the snapshot

    tokens.jwt_module()
    envelopes.build_all()
    configured = settings()
    store()
    clients()
    _secrets_provider()
    if configured.auth_issuer and configured.auth_audience:  # the functions that sign people in
        identity()


def after_restore() -> None:
    """After a SnapStart restore: drop what environments restored from one snapshot must not share.

    - the cached key set, public key set and the secrets provider (its cache and its client): fetched
      again by the first request that needs them, as a cold start would;
    - the client registry and the identity verifier (its JWKS): their ages are counted on a clock that
      did not run while the snapshot waited, so they could pass for fresh however old they are;
    - every connection the AWS clients hold (the clients themselves are kept: building one is most of
      a cold start's first request);
    - the random module's state, seeded once at init and the same in every restored environment
      (botocore's retry jitter draws from it). Secrets, codes and nonces come from `secrets`, i.e. the
      operating system, and need nothing."""
    random.seed()
    with _lock:
        dropped = [_state.pop(name, None) for name in ("keyset", "jwks", "secrets", "clients", "identity")]
        kept = _state.get("store")
    parameters = _loaded("aws_lambda_powertools.utilities.parameters")
    if parameters is not None:
        parameters.clear_caches()
    if kept is not None:
        kept.client.close()  # botocore: closes the connection pool; the next call opens a new one
    secrets = dropped[2]
    if secrets is not None:
        secrets.client.close()


def register_snapstart_hooks(hooks: Any) -> None:
    """`prime` before the snapshot, `after_restore` after each restore (``hooks``: snapshot_restore_py)."""
    hooks.register_before_snapshot(prime)
    hooks.register_after_restore(after_restore)


def _snapshot_hooks() -> Any:
    """Lambda's runtime hooks library, present only in Lambda's managed runtimes (None elsewhere)."""
    try:
        return importlib.import_module("snapshot_restore_py")
    except ImportError:
        return None


_hooks = _snapshot_hooks()
if _hooks is not None:
    register_snapstart_hooks(_hooks)


def on_snapstart(before: Callable[[], object], after: Callable[[], object], hooks: Any = None) -> None:
    """A function's own SnapStart hooks, beside `prime` and `after_restore`: ``before`` builds what only
    that function uses (into the snapshot), ``after`` drops what restored environments must not share
    (its clients' connections). Registered with Lambda's hooks library where it exists (``hooks``:
    another registry, for tests), a no-op elsewhere."""
    registry = _hooks if hooks is None else hooks
    if registry is not None:
        registry.register_before_snapshot(before)
        registry.register_after_restore(after)
