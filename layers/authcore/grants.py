"""The device flow (RFC 8628) and refresh rotation, as plain functions over the store.

Order of work on every path that writes: everything that can fail for reasons of its own (the key
set from Secrets Manager, client checks, new secrets) comes first, then the one conditional write,
then only pure computation (signing). So a fault never consumes a code without giving tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authcore import errors, tokens
from authcore.clients import DEVICE_GRANT, REFRESH_GRANT, ClientRegistry, require_grant, resolve_scope
from authcore.envelopes import (
    ClientOut,
    DeviceAuthorizationResponse,
    IntrospectionResponse,
    LegacySuccess,
    LegacyTokenData,
    OAuthTokenResponse,
    OrganizationChoice,
    OrganizationOut,
    ProductTokenResponse,
    UserOut,
    VerifyInfoResponse,
)
from authcore.observability import audit
from authcore.settings import Settings
from authcore.store import ClientRecord, Grant, Rejected, Store, UserCodeTaken

SLOW_DOWN_STEP = 5  # RFC 8628 §3.5
POLL_JITTER = 1
MAX_ANCESTRY = 200_000


@dataclass
class Context:
    """What one request works with. ``keys`` is called only where a key is needed."""

    store: Store
    settings: Settings
    clients: ClientRegistry
    keys: Callable[[], tokens.KeySet]
    issuer: str
    now: int

    @property
    def audience(self) -> str:
        return self.settings.access_token_audience or self.issuer

    @property
    def verification_uri(self) -> str:
        return self.settings.verification_uri or f"{self.issuer}/device"


@dataclass
class Issued:
    access_token: str
    expires_in: int
    refresh_token: str
    scope: str
    grant: Grant
    issued_at: int

    @property
    def refresh_max_age(self) -> int:
        return max(0, (self.grant.family_expires_at or self.issued_at) - self.issued_at)

    @property
    def user(self) -> UserOut:
        g = self.grant
        return UserOut(id=g.user_id or "", email=g.user_email or "", name=g.user_name or "")

    @property
    def organization(self) -> OrganizationOut:
        g = self.grant
        return OrganizationOut(id=g.org_id or "", name=g.org_name or "", role=g.org_role or "")

    def oauth(self) -> OAuthTokenResponse:
        """RFC 6749 §5.1."""
        return OAuthTokenResponse(
            access_token=self.access_token,
            expires_in=self.expires_in,
            refresh_token=self.refresh_token,
            scope=self.scope,
        )

    def product(self, *, with_refresh_token: bool = True) -> ProductTokenResponse:
        """The product API's answer; without the refresh token when it travels only in the cookie."""
        return ProductTokenResponse(
            **self.oauth().model_dump(exclude={"refresh_token"}),
            refresh_token=self.refresh_token if with_refresh_token else None,
            user=self.user,
            organization=self.organization,
        )

    def legacy(self) -> LegacySuccess:
        """The deprecated GET /oauth/token envelope."""
        return LegacySuccess(
            data=LegacyTokenData(
                access_token=self.access_token,
                refresh_token=self.refresh_token,
                ttl=str(self.expires_in),
                issued_at=iso(self.issued_at),
                expires_at=iso(self.issued_at + self.expires_in),
            )
        )


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- device authorization


def start_device_authorization(
    ctx: Context, client: ClientRecord, scope: str | None
) -> DeviceAuthorizationResponse:
    require_grant(client, DEVICE_GRANT)
    granted = resolve_scope(client, scope)
    hmac = ctx.keys().hmac
    s = ctx.settings
    for _ in range(5):  # a user-code collision is ~1 in 10^10 per live request: retry a few times
        grant_id = tokens.new_grant_id()
        device_code = tokens.new_secret_token(tokens.DEVICE_CODE_PREFIX, grant_id)
        user_code = tokens.new_user_code()
        grant = Grant(
            grant_id=grant_id,
            client_id=client.client_id,
            scope=granted,
            status="pending",
            device_code_digest=hmac.digest(device_code),
            user_code=user_code,
            created_at=ctx.now,
            expires_at=ctx.now + s.device_code_ttl_seconds,
            interval=s.poll_interval_seconds,
            ttl=ctx.now + s.device_code_ttl_seconds,
        )
        try:
            ctx.store.create_device_grant(grant, ctx.now)
        except UserCodeTaken:
            continue
        audit("device_authorized", grant_id=grant_id, client_id=client.client_id)
        shown = tokens.display_user_code(user_code)
        return DeviceAuthorizationResponse(
            device_code=device_code,
            user_code=shown,
            verification_uri=ctx.verification_uri,
            verification_uri_complete=f"{ctx.verification_uri}?user_code={shown}",
            expires_in=s.device_code_ttl_seconds,
            interval=s.poll_interval_seconds,
        )
    raise errors.DependencyFailed("Could not allocate a user code; try again.")


# ---------------------------------------------------------------- the user's decision


@dataclass(frozen=True)
class SignedInUser:
    id: str
    email: str
    name: str

    @classmethod
    def from_claims(cls, claims: dict[str, Any] | None) -> SignedInUser:
        if not claims or not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise errors.Unauthorized()
        if claims.get("token_use") == "access":  # Cognito: an access token names no person (no email, name)
            raise errors.Unauthorized("Sign in with an ID token, not an access token.")
        email = str(claims.get("email") or "")
        name = str(claims.get("name") or claims.get("cognito:username") or email)
        return cls(id=claims["sub"], email=email, name=name)


def _pending_grant(ctx: Context, user: SignedInUser, user_code: str) -> Grant:
    """The live device request for a user code. Wrong codes are counted per user and limited."""
    s = ctx.settings
    window = ctx.now - ctx.now % s.verify_attempts_window_seconds
    retry_after = window + s.verify_attempts_window_seconds - ctx.now
    if ctx.store.verify_failures(user.id, window) >= s.verify_attempts_limit:
        raise errors.RateLimited("Too many wrong codes; try again later.", retry_after=retry_after)
    code = tokens.normalize_user_code(user_code)
    grant_id = ctx.store.grant_id_for_user_code(code, ctx.now) if code else None
    grant = ctx.store.get_grant(grant_id) if grant_id else None
    if grant is None or grant.expires_at <= ctx.now:
        ctx.store.add_verify_failure(user.id, window, ttl=window + s.verify_attempts_window_seconds)
        raise errors.NotFound("No pending device request has that code; check it and try again.")
    return grant


def describe_device_request(ctx: Context, user: SignedInUser, user_code: str) -> VerifyInfoResponse:
    grant = _pending_grant(ctx, user, user_code)
    client = ctx.clients.get(ctx.store, grant.client_id)
    orgs = ctx.store.memberships(user.id)
    return VerifyInfoResponse(
        user_code=tokens.display_user_code(grant.user_code),
        client=ClientOut(id=grant.client_id, name=client.name if client else grant.client_id),
        scope=grant.scope,
        expires_at=iso(grant.expires_at),
        status=grant.status,
        organizations=[OrganizationChoice(id=m.org_id, name=m.org_name, role=m.role) for m in orgs],
    )


def decide(
    ctx: Context, user: SignedInUser, user_code: str, decision: str, organization_id: str | None
) -> str:
    grant = _pending_grant(ctx, user, user_code)
    if grant.status != "pending":
        raise errors.AlreadyExists()
    approve = decision == "approve"
    org = None
    if approve:
        memberships = ctx.store.memberships(user.id)
        if organization_id is not None:
            org = next((m for m in memberships if m.org_id == organization_id), None)
            if org is None:
                raise errors.AccessDenied("You are not a member of that organization.")
        elif len(memberships) == 1:
            org = memberships[0]
        elif not memberships:
            raise errors.AccessDenied(
                "You do not belong to any organization, so you cannot approve sign-ins."
            )
        else:
            raise errors.ValidationFailed(
                "You belong to several organizations: say which one.",
                details=[{"loc": ["body", "organization_id"], "msg": "Field required", "type": "missing"}],
            )
    snapshot = {"id": user.id, "email": user.email, "name": user.name}
    try:
        ctx.store.decide(grant.grant_id, ctx.now, approve=approve, user=snapshot, org=org)
    except Rejected as rejected:
        old = rejected.old
        if old is None or old.expires_at <= ctx.now:
            raise errors.NotFound(
                "No pending device request has that code; check it and try again."
            ) from None
        raise errors.AlreadyExists() from None
    audit(
        "device_approved" if approve else "device_denied",
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        user_id=user.id,
        org_id=org.org_id if org else None,
    )
    return "approved" if approve else "denied"


# ---------------------------------------------------------------- tokens


def _issue(
    ctx: Context, keys: tokens.KeySet, grant: Grant, refresh_token: str, scope: str | None = None
) -> Issued:
    ttl = ctx.settings.access_token_ttl_seconds
    granted = scope or grant.scope
    access = tokens.sign_access_token(
        keys,
        issuer=ctx.issuer,
        audience=ctx.audience,
        subject=grant.user_id or "",
        client_id=grant.client_id,
        scope=granted,
        org_id=grant.org_id or "",
        grant_id=grant.grant_id,
        now=ctx.now,
        ttl=ttl,
    )
    return Issued(access, ttl, refresh_token, granted, grant, ctx.now)


def exchange_device_code(ctx: Context, client: ClientRecord, device_code: str) -> Issued:
    require_grant(client, DEVICE_GRANT)
    grant_id = tokens.grant_id_of(device_code, tokens.DEVICE_CODE_PREFIX)
    if grant_id is None:
        raise errors.InvalidGrant("The device code is not recognised.")
    keys = ctx.keys()
    digest = keys.hmac.digest(device_code)
    refresh_token = tokens.new_secret_token(tokens.REFRESH_TOKEN_PREFIX, grant_id)
    family_expires_at = ctx.now + ctx.settings.refresh_token_ttl_seconds
    try:
        grant = ctx.store.redeem_device_code(
            grant_id,
            device_code_digest=digest,
            client_id=client.client_id,
            now=ctx.now,
            refresh_digest=keys.hmac.digest(refresh_token),
            family_expires_at=family_expires_at,
            ttl=family_expires_at + ctx.settings.access_token_ttl_seconds,
        )
    except Rejected as rejected:
        _explain_unredeemable(ctx, rejected.old, digest, client)
        raise  # unreachable: _explain_unredeemable always raises
    audit("issued", grant_id=grant_id, client_id=client.client_id, user_id=grant.user_id, org_id=grant.org_id)
    return _issue(ctx, keys, grant, refresh_token)


def _explain_unredeemable(ctx: Context, old: Grant | None, digest: str, client: ClientRecord) -> None:
    """Why the code gave no tokens, read from the item as the failed write saw it; pending polls are
    recorded (or slowed down) here."""
    if old is None or not tokens.same_digest(old.device_code_digest, digest):
        raise errors.InvalidGrant("The device code is not recognised.")
    if old.client_id != client.client_id:
        raise errors.InvalidGrant("The device code was issued to another client.")
    if old.status == "issued":
        raise errors.InvalidGrant("The device code has already been used.")
    if old.expires_at <= ctx.now:
        raise errors.ExpiredToken()
    if old.status == "denied":
        raise errors.AccessDenied("The user denied the request.")
    if old.status != "pending":
        raise errors.InvalidGrant("The device code cannot be used now; try again.")
    too_fast = old.last_poll_at is not None and ctx.now < old.last_poll_at + old.interval - POLL_JITTER
    if not too_fast and ctx.store.record_poll(old.grant_id, ctx.now, old.last_poll_at):
        raise errors.AuthorizationPending(interval=old.interval)
    interval = ctx.store.slow_down(old.grant_id, old.interval, old.interval + SLOW_DOWN_STEP)
    raise errors.SlowDown(
        f"Polling too fast; wait {interval} seconds between requests.",
        interval=interval,
        retry_after=interval,
    )


def refresh(
    ctx: Context,
    refresh_token: str,
    *,
    client: ClientRecord | None = None,
    scope: str | None = None,
    before_answer: Callable[[ClientRecord], None] | None = None,
) -> Issued:
    """Rotate: the presented token's successor becomes current, in one conditional write.

    ``client`` is the authenticated client (token endpoint), or None when the token alone speaks for
    itself (product API, where the client is the grant's). ``before_answer`` checks the grant's client
    (version, status). Checks that need the family (its scope, its client) run after the write; when
    one refuses, the rotation is undone, so a refused request never costs the user their session.
    """
    grant_id = tokens.grant_id_of(refresh_token, tokens.REFRESH_TOKEN_PREFIX)
    if grant_id is None:
        raise errors.InvalidGrant("The refresh token is not recognised.")
    if client is not None:
        require_grant(client, REFRESH_GRANT)
    keys = ctx.keys()
    digest = keys.hmac.digest(refresh_token)
    successor = keys.hmac.successor(refresh_token)
    successor_digest = keys.hmac.digest(successor)
    try:
        grant = ctx.store.rotate_refresh(
            grant_id,
            presented_digest=digest,
            successor_digest=successor_digest,
            client_id=client.client_id if client else None,
            now=ctx.now,
        )
        rotated = True
    except Rejected as rejected:
        grant = _within_grace(ctx, rejected.old, refresh_token, digest, successor_digest, client, keys)
        rotated = False
    try:  # refusals that depend on the family: the refused request must cost the user nothing
        narrowed = _narrow(grant.scope, scope)
        if before_answer is not None:
            owner = ctx.clients.get(ctx.store, grant.client_id)
            if owner is None or owner.disabled:
                raise errors.InvalidGrant("The client of this session is no longer registered.")
            before_answer(owner)
    except errors.Problem:
        if rotated:
            ctx.store.undo_rotation(grant, presented_digest=digest, successor_digest=successor_digest)
        raise
    if rotated:
        audit("rotated", grant_id=grant_id, client_id=grant.client_id, generation=grant.rt_generation)
    return _issue(ctx, keys, grant, successor, narrowed)


def _narrow(granted: str, requested: str | None) -> str | None:
    """RFC 6749 §6: a refresh may ask for less than was granted, never more."""
    if requested is None or not requested.strip():
        return None
    asked = requested.split()
    if any(s not in granted.split() for s in asked):
        raise errors.InvalidScope("The requested scope exceeds what was granted.")
    return " ".join(dict.fromkeys(asked))


def _is_ancestor(keys: tokens.KeySet, token: str, current_digest: str | None, generation: int) -> bool:
    """Was this token ever current in the family? Walk the successor chain forward to the current one."""
    cursor = token
    for _ in range(min(generation, MAX_ANCESTRY)):
        cursor = keys.hmac.successor(cursor)
        if tokens.same_digest(keys.hmac.digest(cursor), current_digest):
            return True
    return False


def _within_grace(
    ctx: Context,
    old: Grant | None,
    token: str,
    digest: str,
    successor_digest: str,
    client: ClientRecord | None,
    keys: tokens.KeySet,
) -> Grant:
    """The rotation's condition failed. Either the token was just rotated by a concurrent request and
    is inside the grace period (answer with the same successor, write nothing), or it was rotated out
    earlier: that is reuse, and the whole family ends."""
    if old is None or old.status != "issued":
        raise errors.InvalidGrant("The refresh token is not recognised.")
    if client is not None and old.client_id != client.client_id:
        raise errors.InvalidGrant("The refresh token was issued to another client.")
    if old.revoked_at is not None:
        raise errors.InvalidGrant("The refresh token has been revoked.")
    if (old.family_expires_at or 0) <= ctx.now:
        raise errors.InvalidGrant("The refresh token has expired; sign in again.")
    is_previous = tokens.same_digest(old.rt_prev_digest, digest)
    in_grace = ctx.now < (old.rt_rotated_at or 0) + ctx.settings.rotation_grace_seconds
    if is_previous and in_grace and tokens.same_digest(old.rt_digest, successor_digest):
        return old
    if is_previous or _is_ancestor(keys, token, old.rt_digest, old.rt_generation):
        _end_family(ctx, old, "reuse")
        audit("reuse_detected", grant_id=old.grant_id, client_id=old.client_id, user_id=old.user_id)
        raise errors.InvalidGrant("The refresh token was already used; the session has been revoked.")
    raise errors.InvalidGrant("The refresh token is not recognised.")


def _end_family(ctx: Context, grant: Grant, reason: str) -> None:
    try:
        ctx.store.revoke_family(grant.grant_id, ctx.now, reason)
    except Rejected:
        return  # already revoked (or gone): nothing left to end
    audit("family_revoked", grant_id=grant.grant_id, client_id=grant.client_id, user_id=grant.user_id)


# ---------------------------------------------------------------- revocation and introspection


def revoke(ctx: Context, token: str, client: ClientRecord | None) -> None:
    """RFC 7009: end the family of a refresh token (or of an access token's grant). Unknown tokens,
    and tokens of other clients, are silently ignored. ``client`` None: the token speaks for itself."""
    keys = ctx.keys()
    grant_id = tokens.grant_id_of(token, tokens.REFRESH_TOKEN_PREFIX)
    if grant_id is None:
        claims = _access_claims(ctx, keys, token)
        if claims is None or (client is not None and claims.get("client_id") != client.client_id):
            return
        grant = ctx.store.get_grant(str(claims["sid"]))
        if grant is not None and grant.revoked_at is None:
            _end_family(ctx, grant, "revoked")
        return
    digest = keys.hmac.digest(token)
    try:
        revoked = ctx.store.revoke_family(
            grant_id, ctx.now, "revoked", if_digest=digest, client_id=client.client_id if client else None
        )
    except Rejected as rejected:
        old = rejected.old
        if (
            old is not None
            and old.revoked_at is None
            and old.status == "issued"
            and (client is None or old.client_id == client.client_id)
            and _is_ancestor(keys, token, old.rt_digest, old.rt_generation)
        ):
            _end_family(ctx, old, "revoked")
        return
    audit("family_revoked", grant_id=grant_id, client_id=revoked.client_id, user_id=revoked.user_id)


def _access_claims(ctx: Context, keys: tokens.KeySet, token: str) -> dict[str, Any] | None:
    try:
        return tokens.verify_access_token(token, keys.public_keys, issuer=ctx.issuer, audience=ctx.audience)
    except tokens.InvalidAccessToken:
        return None


def _alive(ctx: Context, grant: Grant | None) -> bool:
    return (
        grant is not None
        and grant.status == "issued"
        and grant.revoked_at is None
        and (grant.family_expires_at or 0) > ctx.now
    )


def introspect(ctx: Context, token: str) -> IntrospectionResponse:
    """RFC 7662. Inactive for anything expired, revoked, rotated out, or from a revoked family."""
    keys = ctx.keys()
    grant_id = tokens.grant_id_of(token, tokens.REFRESH_TOKEN_PREFIX)
    if grant_id is not None:
        grant = ctx.store.get_grant(grant_id)
        if not _alive(ctx, grant) or grant is None:
            return IntrospectionResponse(active=False)
        if not tokens.same_digest(grant.rt_digest, keys.hmac.digest(token)):
            return IntrospectionResponse(active=False)
        return IntrospectionResponse(
            active=True,
            scope=grant.scope,
            client_id=grant.client_id,
            username=grant.user_email,
            token_type="refresh_token",
            exp=grant.family_expires_at,
            iat=grant.rt_rotated_at,
            sub=grant.user_id,
            iss=ctx.issuer,
            sid=grant.grant_id,
            org_id=grant.org_id,
        )
    claims = _access_claims(ctx, keys, token)
    if claims is None or not _alive(ctx, ctx.store.get_grant(str(claims["sid"]))):
        return IntrospectionResponse(active=False)
    return IntrospectionResponse(
        active=True,
        scope=claims.get("scope"),
        client_id=claims.get("client_id"),
        token_type="Bearer",
        exp=claims.get("exp"),
        iat=claims.get("iat"),
        sub=claims.get("sub"),
        aud=claims.get("aud"),
        iss=claims.get("iss"),
        jti=claims.get("jti"),
        sid=claims.get("sid"),
        org_id=claims.get("org_id"),
    )


def now() -> int:
    return int(time.time())
