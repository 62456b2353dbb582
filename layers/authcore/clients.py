"""Registered clients: lookup (cached per execution environment), authentication, version and grant rules."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from authcore import errors
from authcore.settings import MIN_ROTATION_GRACE_SECONDS, Settings
from authcore.store import ClientRecord, Store
from authcore.tokens import Hmac, same_digest

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
_VSCHAR = re.compile(r"^[\x20-\x7e]{1,256}$")
REFRESH_GRANT = "refresh_token"
GRANT_TYPES = (DEVICE_GRANT, REFRESH_GRANT)


class ClientRegistry:
    """Clients change rarely and are read on every request: a short per-environment cache keeps the
    hot paths at one DynamoDB call. Disabling a client takes effect within ``ttl`` seconds; a client
    created after a failed lookup is found at once (misses are not cached)."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl
        self._cache: dict[str, tuple[float, ClientRecord]] = {}
        self._lock = threading.Lock()

    def get(self, store: Store, client_id: str) -> ClientRecord | None:
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(client_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        client = store.get_client(client_id)
        if self.ttl > 0 and client is not None:  # a miss is not cached: a new client works at once
            with self._lock:
                if len(self._cache) > 1000:
                    self._cache.clear()
                self._cache[client_id] = (now + self.ttl, client)
        return client


def authenticate(
    registry: ClientRegistry,
    store: Store,
    hmac: Callable[[], Hmac],
    *,
    client_id: str | None,
    client_secret: str | None,
    basic: bool = False,
    require_confidential: bool = False,
) -> ClientRecord:
    """RFC 6749 §2.3: a public client names itself; a confidential one proves its secret."""
    if not client_id:
        raise errors.InvalidClient("Client authentication is required (client_id).", basic_auth=basic)
    if not _VSCHAR.match(client_id):  # RFC 6749 A.1; and the only request string that keys a DynamoDB read
        raise errors.InvalidClient("Unknown or disabled client.", basic_auth=basic)
    client = registry.get(store, client_id)
    if client is None or client.disabled:
        raise errors.InvalidClient("Unknown or disabled client.", basic_auth=basic)
    if client.confidential:
        if not client_secret:
            raise errors.InvalidClient("This client must authenticate with its secret.", basic_auth=basic)
        if not same_digest(hmac().digest(client_secret), client.secret_digest):
            raise errors.InvalidClient("Client authentication failed.", basic_auth=basic)
    elif client_secret:
        raise errors.InvalidClient("A public client has no secret.", basic_auth=basic)
    if require_confidential and not client.confidential:
        raise errors.UnauthorizedClient("Only confidential clients may use this endpoint.")
    return client


@dataclass(frozen=True)
class Caller:
    """What a route knows of who is calling: the client it names (body or HTTP Basic), the secret it
    presents, whether that came in HTTP Basic, and its X-Client-Version. Routes pass it; `admit` decides."""

    client_id: str | None = None
    secret: str | None = None
    basic: bool = False
    version: str | None = None

    @property
    def anonymous(self) -> bool:
        return self.client_id is None and self.secret is None


def admit(
    registry: ClientRegistry,
    store: Store,
    hmac: Callable[[], Hmac],
    caller: Caller,
    *,
    grant_type: str | None = None,
    require_confidential: bool = False,
) -> ClientRecord:
    """The one place client policy is decided: authentication (RFC 6749 §2.3), the grant type, and the
    client's minimum version."""
    client = authenticate(
        registry,
        store,
        hmac,
        client_id=caller.client_id,
        client_secret=caller.secret,
        basic=caller.basic,
        require_confidential=require_confidential,
    )
    if grant_type is not None:
        require_grant(client, grant_type)
    check_version(client, caller.version)
    return client


def admit_token_owner(
    registry: ClientRegistry,
    store: Store,
    hmac: Callable[[], Hmac],
    caller: Caller,
    owner_id: str,
    *,
    check_version: bool = True,
) -> ClientRecord:
    """A refresh presented on a route that names no client (the product API): the token names its client,
    and the same rules apply as on the token endpoint. A confidential client must authenticate (HTTP
    Basic); a public one needs nothing more than its token."""
    if caller.client_id is not None and caller.client_id != owner_id:
        raise errors.InvalidClient("The client does not match the refresh token.", basic_auth=caller.basic)
    owner = registry.get(store, owner_id)
    if owner is None or owner.disabled:
        raise errors.InvalidGrant("The client of this session is no longer registered.")
    if owner.confidential and not caller.secret:
        raise errors.InvalidClient(
            "This session belongs to a confidential client: authenticate with HTTP Basic.", basic_auth=True
        )
    return admit(
        registry,
        store,
        hmac,
        Caller(owner_id, caller.secret, caller.basic, caller.version if check_version else None),
        grant_type=REFRESH_GRANT,
    )


def require_grant(client: ClientRecord, grant_type: str) -> None:
    if grant_type not in client.grant_types:
        raise errors.UnauthorizedClient("This client may not use this grant type.")


_VERSION = re.compile(r"^v?(\d{1,6}(?:\.\d{1,6}){0,3})(?:[-+].{0,64})?$")


def _version_tuple(text: str) -> tuple[int, ...] | None:
    match = _VERSION.match(text.strip())
    if not match:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


def check_version(client: ClientRecord, header: str | None) -> None:
    """426 when the client says it is older than the client's configured minimum."""
    if not client.min_version or header is None:
        return
    have, need = _version_tuple(header), _version_tuple(client.min_version)
    if have is None:
        raise errors.InvalidRequest("X-Client-Version must look like 1.2.3.")
    if need is not None and have < need:
        raise errors.UpgradeRequired(
            f"This client version is no longer supported; {client.min_version} or later is required."
        )


def resolve_scope(client: ClientRecord, requested: str | None) -> str:
    """The scope a new grant gets: what was asked, if the client may have all of it; else everything
    the client may have."""
    if requested is None or not requested.strip():
        return " ".join(client.scopes)
    asked = requested.split()
    if any(s not in client.scopes for s in asked):
        raise errors.InvalidScope("The client may not request that scope.")
    return " ".join(dict.fromkeys(asked))


@dataclass(frozen=True)
class Policy:
    """The lifetimes and limits one client's new grants get: the client's own, else the deployment's."""

    access_token_ttl: int
    refresh_token_ttl: int
    refresh_idle_timeout: int  # 0: none
    rotation_grace: int
    device_code_ttl: int
    poll_interval: int
    device_authorizations_per_window: int  # 0: no limit for this client


def policy(client: ClientRecord, settings: Settings) -> Policy:
    def pick(own: int | None, default: int) -> int:
        return default if own is None else own

    return Policy(
        access_token_ttl=pick(client.access_token_ttl_seconds, settings.access_token_ttl_seconds),
        refresh_token_ttl=pick(client.refresh_token_ttl_seconds, settings.refresh_token_ttl_seconds),
        refresh_idle_timeout=pick(client.refresh_idle_timeout_seconds, settings.refresh_idle_timeout_seconds),
        rotation_grace=pick(client.rotation_grace_seconds, settings.rotation_grace_seconds),
        device_code_ttl=pick(client.device_code_ttl_seconds, settings.device_code_ttl_seconds),
        poll_interval=pick(client.poll_interval_seconds, settings.poll_interval_seconds),
        device_authorizations_per_window=pick(
            client.device_authorizations_per_window, settings.device_authorizations_per_client
        ),
    )


# What an operator may set per client (admin clients create|update): the settings' own bounds.
POLICY_BOUNDS: dict[str, tuple[int, int]] = {
    "access_token_ttl_seconds": (60, 86400),
    "refresh_token_ttl_seconds": (3600, 366 * 86400),
    "refresh_idle_timeout_seconds": (0, 366 * 86400),
    "rotation_grace_seconds": (MIN_ROTATION_GRACE_SECONDS, 300),
    "device_code_ttl_seconds": (60, 3600),
    "poll_interval_seconds": (1, 60),
    "device_authorizations_per_window": (0, 10_000_000),
}
