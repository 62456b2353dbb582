"""The session lifecycle: refresh with rotation and reuse detection, revocation (RFC 7009), introspection
(RFC 7662).

A refresh token names its grant, its generation and its client, under a tag only our key can make
(tokens.RefreshToken). So every check of a presented token costs a fixed handful of HMACs: a forgery is
refused by its tag before any call to DynamoDB, and reuse is exact without history: an authentic token
of an earlier generation than the family's current one was really issued, and was rotated out.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from authcore import errors, tokens
from authcore.clients import REFRESH_GRANT, Caller, admit, admit_token_owner
from authcore.envelopes import (
    IntrospectionResponse,
    NamedOut,
    SessionOut,
    SessionsResponse,
)
from authcore.issuance import Context, Issued, device_of, iso, issue
from authcore.observability import audit, refused, session_revoked
from authcore.store import ClientRecord, Grant, Rejected, Store

MAX_SCOPES = 32  # distinct scopes one refresh may narrow to


def _authentic(ctx: Context, text: str) -> tokens.RefreshToken:
    """The presented refresh token, if it is well formed and was minted with our key (one HMAC)."""
    token = tokens.parse_refresh_token(text)
    if token is None:
        refused("malformed", kind="refresh_token")
        raise errors.InvalidGrant("The refresh token is not recognised.")
    if not ctx.hmac().authentic(token):
        refused("forged", kind="refresh_token", grant_id=token.grant_id)
        raise errors.InvalidGrant("The refresh token is not recognised.")
    return token


def refresh(ctx: Context, presented: str, caller: Caller, scope: str | None = None) -> Issued:
    """Rotate: the presented token's successor becomes current, in one conditional write whose condition
    holds every reason to refuse. A route that names its client (the token endpoint) authenticates it
    first (RFC 6749: a bad client is `invalid_client` whatever the token); a route that names none (the
    product API) is held to the token's own client's rules."""
    client = (
        None
        if caller.anonymous
        else admit(ctx.clients, ctx.store, ctx.hmac, caller, grant_type=REFRESH_GRANT)
    )
    token = _authentic(ctx, presented)
    if client is None:
        client = admit_token_owner(ctx.clients, ctx.store, ctx.hmac, caller, token.client_id)
    elif token.client_id != client.client_id:
        refused("other_client", kind="refresh_token", grant_id=token.grant_id, client_id=client.client_id)
        raise errors.InvalidGrant("The refresh token was issued to another client.")
    asked = _asked_scopes(scope)
    if asked is not None and (len(asked) > MAX_SCOPES or any(s not in client.scopes for s in asked)):
        # what the client may never have was never granted: refused before the write, which also
        # bounds the condition (DynamoDB refuses expressions over 4 KB or 300 operators)
        raise errors.InvalidScope("The requested scope exceeds what was granted.")
    if token.generation >= tokens.MAX_GENERATION:
        raise errors.InvalidGrant("The refresh token has expired; sign in again.")
    keys = ctx.keys()
    digest = keys.hmac.digest(presented)
    successor = keys.hmac.successor(token)
    successor_digest = keys.hmac.digest(successor)
    rotation = {
        "presented_digest": digest,
        "generation": token.generation,
        "successor_digest": successor_digest,
        "client_id": client.client_id,
        "now": ctx.now,
    }
    try:
        grant = ctx.store.rotate_refresh(token.grant_id, scopes=asked or [], **rotation)  # type: ignore[arg-type]
    except Rejected as rejected:
        old = rejected.old
        if not _narrowing_a_grant_without_scope_list(old, token, digest, asked):
            grant = _not_rotated(ctx, old, token, digest, successor_digest, asked)
        else:  # a grant written before scope_list: its scope string, checked here, pinned in the condition
            assert old is not None
            try:
                grant = ctx.store.rotate_refresh(
                    token.grant_id,
                    scopes=[],
                    pinned_scope=old.scope,
                    **rotation,  # type: ignore[arg-type]
                )
            except Rejected as again:
                grant = _not_rotated(ctx, again.old, token, digest, successor_digest, asked)
            else:
                audit(
                    "rotated",
                    grant_id=grant.grant_id,
                    client_id=grant.client_id,
                    generation=grant.rt_generation,
                )
    else:
        audit("rotated", grant_id=grant.grant_id, client_id=grant.client_id, generation=grant.rt_generation)
    return issue(ctx, keys, grant, successor, " ".join(asked) if asked else None)


def _narrowing_a_grant_without_scope_list(
    old: Grant | None, token: tokens.RefreshToken, digest: str, asked: list[str] | None
) -> bool:
    """The write refused only because the grant (a device request started before scope_list existed)
    has no list to check the narrowed scopes against, though its scope string grants them."""
    return (
        old is not None
        and asked is not None
        and old.scope_list is None
        and old.status == "issued"
        and old.revoked_at is None
        and old.rt_generation == token.generation
        and tokens.same_digest(old.rt_digest, digest)
        and not _narrowing_refused(old, asked)
    )


def _asked_scopes(requested: str | None) -> list[str] | None:
    """RFC 6749 §6: a refresh may ask for less than was granted, never more (checked in the write)."""
    if requested is None or not requested.strip():
        return None
    return list(dict.fromkeys(requested.split()))


def _narrowing_refused(grant: Grant, asked: list[str] | None) -> bool:
    granted = grant.scope_list if grant.scope_list is not None else grant.scope.split()
    return asked is not None and any(s not in granted for s in asked)


def _not_rotated(
    ctx: Context,
    old: Grant | None,
    token: tokens.RefreshToken,
    digest: str,
    successor_digest: str,
    asked: list[str] | None,
) -> Grant:
    """The rotation's condition failed and nothing was written; the item as it was says why. The token
    may have just been rotated by a concurrent (or retried) request and be inside the grace: answer
    with the same successor. An authentic token of an earlier generation is reuse: the family ends."""
    if old is None or old.status != "issued" or old.rt_digest is None or old.client_id != token.client_id:
        refused("unknown", kind="refresh_token", grant_id=token.grant_id)
        raise errors.InvalidGrant("The refresh token is not recognised.")
    if old.revoked_at is not None:
        refused("revoked", kind="refresh_token", grant_id=old.grant_id, client_id=old.client_id)
        raise errors.InvalidGrant("The refresh token has been revoked.")
    if (old.family_expires_at or 0) <= ctx.now:
        refused("expired", kind="refresh_token", grant_id=old.grant_id, client_id=old.client_id)
        raise errors.InvalidGrant("The refresh token has expired; sign in again.")
    if old.idle_expires_at is not None and old.idle_expires_at <= ctx.now:
        refused("idle", kind="refresh_token", grant_id=old.grant_id, client_id=old.client_id)
        raise errors.InvalidGrant(
            f"The session ended after {_duration(old.idle_timeout or 0)} without use; sign in again."
        )
    current = token.generation == old.rt_generation and tokens.same_digest(old.rt_digest, digest)
    previous = token.generation + 1 == old.rt_generation and tokens.same_digest(old.rt_prev_digest, digest)
    if (current or previous) and _narrowing_refused(old, asked):
        raise errors.InvalidScope("The requested scope exceeds what was granted.")
    grace = old.rotation_grace or ctx.settings.rotation_grace_seconds  # the client's, when the session began
    in_grace = ctx.now < (old.rt_rotated_at or 0) + grace
    if previous and in_grace and tokens.same_digest(old.rt_digest, successor_digest):
        return old
    if token.generation < old.rt_generation:
        audit("reuse_detected", grant_id=old.grant_id, client_id=old.client_id, user_id=old.user_id)
        _end_family(ctx, old, "reuse")
        raise errors.InvalidGrant("The refresh token was already used; the session has been revoked.")
    refused("unknown", kind="refresh_token", grant_id=old.grant_id, client_id=old.client_id)
    raise errors.InvalidGrant("The refresh token is not recognised.")


def _duration(seconds: int) -> str:
    if seconds % 86400 == 0 and seconds >= 86400:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0 and seconds >= 3600:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    minutes = max(1, seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _end_family(ctx: Context, grant: Grant, by: str) -> Grant | None:
    """End a session; None when it had already ended."""
    try:
        ended = ctx.store.revoke_family(grant.grant_id, ctx.now, by)
    except Rejected:
        return None  # already revoked (or gone): nothing left to end
    session_revoked(
        by, grant_id=ended.grant_id, client_id=ended.client_id, user_id=ended.user_id, org_id=ended.org_id
    )
    return ended


# ---------------------------------------------------------------- revocation and introspection


def logout(ctx: Context, presented: str, caller: Caller) -> None:
    """The product API's sign-out: only a refresh token ends a session here, under its client's rules as
    on /auth/refresh (a confidential client's needs HTTP Basic). An access token never does: every
    resource server sees those. Anything unknown is ignored: signing out always succeeds."""
    if not presented.startswith(tokens.REFRESH_TOKEN_PREFIX + "_"):
        return
    try:
        token = _authentic(ctx, presented)
        admit_token_owner(ctx.clients, ctx.store, ctx.hmac, caller, token.client_id, check_version=False)
    except errors.InvalidGrant:  # unknown, forged, or its client is gone: nothing to end
        return
    _revoke_refresh(ctx, token)


def revoke(ctx: Context, presented: str, caller: Caller) -> None:
    """RFC 7009: end the family of a refresh token (or of an access token's grant). Unknown tokens, and
    tokens of other clients, are silently ignored."""
    client = admit(ctx.clients, ctx.store, ctx.hmac, caller)
    if not presented.startswith(tokens.REFRESH_TOKEN_PREFIX + "_"):
        claims = _access_claims(ctx, presented)
        if claims is None or claims.get("client_id") != client.client_id:
            return
        grant = ctx.store.get_grant(str(claims["sid"]))
        if grant is not None and grant.revoked_at is None:
            _end_family(ctx, grant, "logout")
        return
    try:
        token = _authentic(ctx, presented)
    except errors.InvalidGrant:
        return
    if token.client_id != client.client_id:
        refused("other_client", kind="refresh_token", grant_id=token.grant_id, client_id=client.client_id)
        return
    _revoke_refresh(ctx, token)


def _revoke_refresh(ctx: Context, token: tokens.RefreshToken) -> None:
    try:  # the token is authentic: it ends its family if the family ever reached its generation
        revoked = ctx.store.revoke_family(
            token.grant_id, ctx.now, "logout", up_to_generation=token.generation, client_id=token.client_id
        )
    except Rejected:
        return
    session_revoked(
        "logout",
        grant_id=revoked.grant_id,
        client_id=revoked.client_id,
        user_id=revoked.user_id,
        org_id=revoked.org_id,
    )


def _access_claims(ctx: Context, token: str) -> dict[str, Any] | None:
    try:
        return tokens.verify_access_token(
            token, ctx.keys().public_keys, issuer=ctx.issuer, audience=ctx.audience, now=ctx.now
        )
    except tokens.InvalidAccessToken:
        return None


def live(grant: Grant | None, now: int) -> bool:
    """A session that still works: issued, not revoked, and neither its lifetime nor its idle deadline
    passed (DynamoDB returns expired items until it collects them)."""
    return grant is not None and grant.status == "issued" and grant.revoked_at is None and grant.ends_at > now


def _may_introspect(client: ClientRecord, owner_id: object) -> bool:
    """RFC 7662 §4: a client sees its own tokens; only a client registered for introspection (a resource
    server) sees other clients' tokens."""
    return client.introspection or owner_id == client.client_id


def _owner_live(ctx: Context, owner_id: object) -> bool:
    """A disabled (or deleted) client's tokens are no longer good anywhere, introspection included."""
    owner = ctx.clients.get(ctx.store, owner_id) if isinstance(owner_id, str) else None
    return owner is not None and not owner.disabled


def introspect(ctx: Context, presented: str, caller: Caller) -> IntrospectionResponse:
    """RFC 7662. Inactive for anything expired, revoked, rotated out, from a revoked family, or not this
    client's to see."""
    client = admit(ctx.clients, ctx.store, ctx.hmac, caller, require_confidential=True)
    if presented.startswith(tokens.REFRESH_TOKEN_PREFIX + "_"):
        try:
            token = _authentic(ctx, presented)
        except errors.InvalidGrant:
            return IntrospectionResponse(active=False)
        if not _may_introspect(client, token.client_id) or not _owner_live(ctx, token.client_id):
            return IntrospectionResponse(active=False)
        grant = ctx.store.get_grant(token.grant_id)
        if grant is None or not live(grant, ctx.now):
            return IntrospectionResponse(active=False)
        if grant.rt_generation != token.generation or not tokens.same_digest(
            grant.rt_digest, ctx.hmac().digest(presented)
        ):
            return IntrospectionResponse(active=False)
        return IntrospectionResponse(
            active=True,
            scope=grant.scope,
            client_id=grant.client_id,
            username=grant.user_email or None,
            token_type="refresh_token",
            exp=grant.ends_at,
            iat=grant.rt_rotated_at,
            sub=grant.user_id,
            iss=ctx.issuer,
            sid=grant.grant_id,
            org_id=grant.org_id,
        )
    claims = _access_claims(ctx, presented)
    if claims is None or not _may_introspect(client, claims.get("client_id")):
        return IntrospectionResponse(active=False)
    if not _owner_live(ctx, claims.get("client_id")):
        return IntrospectionResponse(active=False)
    if not live(ctx.store.get_grant(str(claims["sid"])), ctx.now):
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


# ---------------------------------------------------------------- a person's sessions

_GRANT_ID = re.compile(r"^[0-9a-f]{32}$")
_CURSOR = re.compile(r"^(\d{1,12}):([0-9a-f]{32})$")


def _encode_cursor(after: tuple[int, str] | None) -> str | None:
    if after is None:
        return None
    return base64.urlsafe_b64encode(f"{after[0]}:{after[1]}".encode()).rstrip(b"=").decode()


def _decode_cursor(cursor: str | None) -> tuple[int, str] | None:
    """Where a listing resumes: a position we handed out, checked, so that it can only ever name a place
    in the caller's own list (the index key is rebuilt from the signed-in person, never from here)."""
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    match = _CURSOR.fullmatch(text) if len(cursor) <= 80 else None
    if match is None:
        raise errors.InvalidRequest(
            "The cursor is not valid; use the `next` of the previous page.",
            details=[{"loc": ["query", "cursor"], "msg": "Invalid cursor", "type": "value_error"}],
        )
    return int(match.group(1)), match.group(2)


def list_sessions(ctx: Context, user_id: str, cursor: str | None = None) -> SessionsResponse:
    """The person's live sessions, newest first, a page at a time: one Query of the (keys-only) index
    and one BatchGetItem of what it found. Revoked sessions have left the index; expired ones that
    DynamoDB has not collected yet are left out here."""
    ids, after = ctx.store.session_ids("user", user_id, after=_decode_cursor(cursor))
    grants = [g for g in ctx.store.get_grants(ids) if g.user_id == user_id and live(g, ctx.now)]
    return SessionsResponse(sessions=[_session_out(ctx, g) for g in grants], next=_encode_cursor(after))


def _session_out(ctx: Context, grant: Grant) -> SessionOut:
    client = ctx.clients.get(ctx.store, grant.client_id)
    issued = grant.issued_at or grant.created_at
    return SessionOut(
        id=grant.grant_id,
        client=NamedOut(id=grant.client_id, name=client.name if client else grant.client_id),
        organization=NamedOut(id=grant.org_id or "", name=grant.org_name or ""),
        scope=grant.scope,
        created_at=iso(issued),
        last_used_at=iso(max(issued, grant.rt_rotated_at or issued)),
        expires_at=iso(grant.ends_at),
        device=device_of(grant),
    )


def end_session(ctx: Context, user_id: str, session_id: str) -> None:
    """The person signs one of their sessions out. Someone else's, or one that does not exist, is not
    found (the same answer, so ids cannot be probed); their own that has already ended is ended."""
    if not _GRANT_ID.fullmatch(session_id):
        raise errors.NotFound("No session of yours has that id.")
    try:
        ended = ctx.store.revoke_family(session_id, ctx.now, "user", user_id=user_id)
    except Rejected as rejected:
        old = rejected.old
        if old is None or old.user_id != user_id or old.status != "issued" or old.revoked_at is None:
            raise errors.NotFound("No session of yours has that id.") from None
        if not _own_revocation(old, ctx.now, "user", {"user_id": user_id}):
            return  # already ended (another tab, an earlier request): the same answer, audited then
        ended = old  # this request's own write, its answer lost and retried: not audited yet
    session_revoked(
        "user", grant_id=ended.grant_id, client_id=ended.client_id, user_id=user_id, org_id=ended.org_id
    )


def end_all_sessions(ctx: Context, user_id: str) -> int:
    """ "Sign out everywhere": every session of the person's that is live now; how many were ended."""
    return len(sweep(ctx.store, "user", user_id, ctx.now, "user"))


def _own_revocation(old: Grant | None, now: int, revoker: str, owner: dict[str, str]) -> bool:
    """A revocation refused because the session had just been ended by this very request (its write
    applied, the answer lost, botocore's retry refused): the same instant, the same revoker and owner."""
    return (
        old is not None
        and old.revoked_at == now
        and old.revoke_reason == revoker
        and all(getattr(old, field) == value for field, value in owner.items())
    )


def sweep(store: Store, by: str, key: str, now: int, revoker: str) -> list[Grant]:
    """End every session of a user, organization or client (``by``); the ones that were ended. A session
    revoked meanwhile by someone else is not counted twice; expired ones are left to expire."""
    ended: list[Grant] = []
    after: tuple[int, str] | None = None
    owner = {"user_id": key} if by == "user" else {"org_id": key} if by == "org" else {"client_id": key}
    while True:
        ids, after = store.session_ids(by, key, after=after)
        read = {g.grant_id: g for g in store.get_grants(ids)}
        for grant_id in ids:
            grant = read.get(grant_id)
            # expired ones are left to expire; one the batch read could not read (throttled) is ended
            # all the same: its write's condition decides, so none is left alive unseen
            if grant is not None and not live(grant, now):
                continue
            try:  # the index named it; the item decides (the condition holds it to the same owner)
                revoked = store.revoke_family(
                    grant_id,
                    now,
                    revoker,
                    user_id=owner.get("user_id"),
                    org_id=owner.get("org_id"),
                    client_id=owner.get("client_id"),
                )
            except Rejected as rejected:
                if rejected.old is None or not _own_revocation(rejected.old, now, revoker, owner):
                    continue
                revoked = rejected.old  # this sweep's own write, its answer lost and retried
            session_revoked(
                revoker,
                grant_id=revoked.grant_id,
                client_id=revoked.client_id,
                user_id=revoked.user_id,
                org_id=revoked.org_id,
            )
            ended.append(revoked)
        if after is None:
            return ended
