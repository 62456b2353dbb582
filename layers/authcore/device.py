"""The device authorization grant (RFC 8628): the request, the person's decision, the exchange.

Order of work on every path that writes: everything that can fail for reasons of its own (the key set
from Secrets Manager, client checks, new secrets) comes first, then the one conditional write, then only
pure computation (signing). So a fault never consumes a code without giving tokens, and a refused
request writes nothing.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

from authcore import errors, tokens
from authcore.clients import DEVICE_GRANT, REFRESH_GRANT, Caller, Policy, admit, policy, resolve_scope
from authcore.envelopes import (
    ClientOut,
    DeviceAuthorizationResponse,
    OrganizationChoice,
    VerifyInfoResponse,
)
from authcore.issuance import Context, Issued, device_of, iso, issue
from authcore.observability import audit
from authcore.store import (
    ClientRecord,
    Grant,
    Membership,
    Quota,
    QuotaExceeded,
    Rejected,
    UserCodeTaken,
)

SLOW_DOWN_STEP = 5  # RFC 8628 §3.5
SLOW_DOWN_CEILING = 60  # the interval grows by 5 s per too-fast poll, up to this (or the configured one)
POLL_JITTER = 1


# ---------------------------------------------------------------- device authorization


@dataclass(frozen=True)
class Requester:
    """Where a request came from, as the edge saw it. Kept with a device request for the person who
    decides (against remote phishing: "is this really my laptop?"); never a secret."""

    ip: str | None = None
    user_agent: str | None = None
    client_version: str | None = None
    country: str | None = None
    city: str | None = None
    # the address API Gateway saw (behind CloudFront, an edge server's): the per-address limit counts it
    # when the device's own address is unknown, so that the limit still holds
    source_ip: str | None = None

    def clipped(self) -> Requester:
        """Bounded, printable values: these are shown to a person and stored."""

        def clip(value: str | None, limit: int) -> str | None:
            text = "".join(c for c in (value or "") if c.isprintable())[:limit].strip()
            return text or None

        return Requester(
            ip=clip(self.ip, 45),
            user_agent=clip(self.user_agent, 256),
            client_version=clip(self.client_version, 64),
            country=clip(self.country, 2),
            city=clip(self.city, 64),
            source_ip=self.source_ip,
        )


def same_network(a: str | None, b: str | None) -> bool | None:
    """The same address, or the same /24 (IPv4) or /56 (IPv6); None when either is unknown."""
    try:
        first, second = ipaddress.ip_address(a or ""), ipaddress.ip_address(b or "")
    except ValueError:
        return None
    if first.version != second.version:
        return False
    prefix = 24 if first.version == 4 else 56
    return ipaddress.ip_network(f"{first}/{prefix}", strict=False) == ipaddress.ip_network(
        f"{second}/{prefix}", strict=False
    )


def address_of(ip: str | None) -> str | None:
    """The unit a per-address limit counts: an IPv4 address, or the /64 of an IPv6 one (one host's, or
    one home's, share: a single IPv6 host can use every address of its /64)."""
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return None
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


CLIENT_COUNTER_SHARDS = 8  # a client's counter, spread: each shard takes an eighth of its writes


def _quotas(ctx: Context, requester: Requester, client: ClientRecord, rules: Policy) -> list[Quota]:
    """The counters one more device authorization request takes: its source address's (so that one
    network cannot starve the rest) and a shard of its client's (so that one noisy client cannot)."""
    s = ctx.settings
    window = ctx.now - ctx.now % s.device_authorizations_window_seconds
    end = window + s.device_authorizations_window_seconds
    quotas = []
    address = address_of(requester.ip or requester.source_ip)
    if s.device_authorizations_per_ip and address is not None:
        shards = s.device_authorizations_address_shards
        if shards > 1:  # one address behind which a whole company sits (a NAT): spread its counter too
            counter = f"device#{address}#{secrets.randbelow(shards)}"
            quotas.append(
                Quota(counter, window, -(-s.device_authorizations_per_ip // shards), end, "address")
            )
        else:
            quotas.append(Quota(f"device#{address}", window, s.device_authorizations_per_ip, end, "address"))
    per_client = rules.device_authorizations_per_window
    if per_client:
        # a random shard, each allowed its share: the limit holds within a shard's rounding (a shard may
        # fill a little before the others; with 8 shards, at most 7 requests early)
        shard = secrets.randbelow(CLIENT_COUNTER_SHARDS)
        share = -(-per_client // CLIENT_COUNTER_SHARDS)
        quotas.append(Quota(f"client#{client.client_id}#{shard}", window, share, end, "client"))
    return quotas


def start(
    ctx: Context, caller: Caller, scope: str | None, requester: Requester | None = None
) -> DeviceAuthorizationResponse:
    """A new device request, with where it came from. One transaction writes the request, its user
    code, and one more request on the source address's counter, or nothing at all."""
    client = admit(ctx.clients, ctx.store, ctx.hmac, caller, grant_type=DEVICE_GRANT)
    granted = resolve_scope(client, scope)
    hmac = ctx.hmac()
    rules = policy(client, ctx.settings)
    asked = (requester or Requester()).clipped()
    quotas = _quotas(ctx, requester or Requester(), client, rules)
    for _ in range(5):  # a user-code collision is ~1 in 10^10 per live request: retry a few times
        grant_id = tokens.new_grant_id()
        device_code = tokens.new_secret_token(tokens.DEVICE_CODE_PREFIX, grant_id)
        user_code = tokens.new_user_code()
        grant = Grant(
            grant_id=grant_id,
            client_id=client.client_id,
            scope=granted,
            scope_list=granted.split(),
            status="pending",
            device_code_digest=hmac.digest(device_code),
            user_code=user_code,
            created_at=ctx.now,
            expires_at=ctx.now + rules.device_code_ttl,
            interval=rules.poll_interval,
            ttl=ctx.now + rules.device_code_ttl,
            device_ip=asked.ip,
            device_user_agent=asked.user_agent,
            device_client_version=asked.client_version,
            device_country=asked.country,
            device_city=asked.city,
        )
        try:
            ctx.store.create_device_grant(grant, ctx.now, quotas)
        except UserCodeTaken:
            continue
        except QuotaExceeded as exceeded:
            quota = exceeded.quota
            audit("device_rate_limited", client_id=client.client_id, limit=quota.kind)
            whose = "from this network" if quota.kind == "address" else "for this client"
            raise errors.TooManyRequests(
                f"Too many device authorization requests {whose}; try again later.",
                retry_after=max(1, quota.ttl - ctx.now),
            ) from None
        audit("device_authorized", grant_id=grant_id, client_id=client.client_id)
        shown = tokens.display_user_code(user_code)
        return DeviceAuthorizationResponse(
            device_code=device_code,
            user_code=shown,
            verification_uri=ctx.verification_uri,
            verification_uri_complete=f"{ctx.verification_uri}?user_code={shown}",
            expires_in=rules.device_code_ttl,
            interval=rules.poll_interval,
        )
    raise errors.DependencyFailed("Could not allocate a user code; try again.")


# ---------------------------------------------------------------- the person's decision


def _verified(value: object) -> bool:
    """`email_verified` as an OIDC issuer sends it (a boolean) or as the HTTP API's JWT authorizer passes
    it on (the string "true")."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


@dataclass(frozen=True)
class SignedInUser:
    id: str
    email: str  # "" unless the issuer says the address was verified
    name: str

    @classmethod
    def from_claims(cls, claims: dict[str, Any] | None) -> SignedInUser:
        if not claims or not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise errors.Unauthorized()
        if claims.get("token_use") == "access":  # Cognito: an access token names no person (no email, name)
            raise errors.Unauthorized("Sign in with an ID token, not an access token.")
        email = str(claims.get("email") or "") if _verified(claims.get("email_verified")) else ""
        name = str(claims.get("name") or claims.get("cognito:username") or email)
        return cls(id=claims["sub"], email=email, name=name)


def _standing(ctx: Context, user: SignedInUser) -> list[Membership]:
    """Seeing, approving and denying a request all need the same standing: a membership."""
    memberships = ctx.store.memberships(user.id)
    if not memberships:
        raise errors.AccessDenied("You do not belong to any organization, so you cannot decide sign-ins.")
    return memberships


def _pending_grant(ctx: Context, user: SignedInUser, user_code: str) -> Grant:
    """The live device request for a user code. Every look-up takes one of the user's attempts in one
    conditional increment (so concurrent guesses cannot outrun the limit); a right code gives it back."""
    s = ctx.settings
    window = ctx.now - ctx.now % s.verify_attempts_window_seconds
    end = window + s.verify_attempts_window_seconds
    look_up = secrets.token_hex(8)  # this look-up's id: a retried reservation recognises itself by it
    if not ctx.store.reserve_verify_attempt(
        user.id, window, s.verify_attempts_limit, ttl=end, request_id=look_up
    ):
        raise errors.RateLimited("Too many wrong codes; try again later.", retry_after=end - ctx.now)
    code = tokens.normalize_user_code(user_code)
    grant_id = ctx.store.grant_id_for_user_code(code, ctx.now) if code else None
    grant = ctx.store.get_grant(grant_id) if grant_id else None
    if grant is None or grant.expires_at <= ctx.now:
        raise errors.NotFound("No pending device request has that code; check it and try again.")
    ctx.store.release_verify_attempt(user.id, window, look_up)
    return grant


def describe(
    ctx: Context, user: SignedInUser, user_code: str, viewer: Requester | None = None
) -> VerifyInfoResponse:
    """What the person is about to decide, and where the request came from, compared with where the
    person is (a device on another network than the browser is the phishing case)."""
    orgs = _standing(ctx, user)
    grant = _pending_grant(ctx, user, user_code)
    client = ctx.clients.get(ctx.store, grant.client_id)
    return VerifyInfoResponse(
        user_code=tokens.display_user_code(grant.user_code),
        client=ClientOut(id=grant.client_id, name=client.name if client else grant.client_id),
        scope=grant.scope,
        expires_at=iso(grant.expires_at),
        status=grant.status,
        organizations=[OrganizationChoice(id=m.org_id, name=m.org_name, role=m.role) for m in orgs],
        device=device_of(grant),
        same_network=same_network(grant.device_ip, viewer.ip if viewer else None),
    )


def decide(
    ctx: Context, user: SignedInUser, user_code: str, decision: str, organization_id: str | None
) -> str:
    memberships = _standing(ctx, user)
    grant = _pending_grant(ctx, user, user_code)
    approve = decision == "approve"
    org = None
    if approve:
        if organization_id is not None:
            org = next((m for m in memberships if m.org_id == organization_id), None)
            if org is None:
                raise errors.AccessDenied("You are not a member of that organization.")
        elif len(memberships) == 1:
            org = memberships[0]
        else:
            raise errors.ValidationFailed(
                "You belong to several organizations: say which one.",
                details=[{"loc": ["body", "organization_id"], "msg": "Field required", "type": "missing"}],
            )
    if grant.status != "pending":  # the page sending the same decision again gets the same answer
        if not _own_decision(grant, user, approve, org):
            raise errors.AlreadyExists()
        return "approved" if approve else "denied"
    snapshot = {"id": user.id, "email": user.email, "name": user.name}
    try:
        ctx.store.decide(grant.grant_id, ctx.now, approve=approve, user=snapshot, org=org)
    except Rejected as rejected:
        old = rejected.old
        if old is None or old.expires_at <= ctx.now:
            raise errors.NotFound(
                "No pending device request has that code; check it and try again."
            ) from None
        if not _own_decision(old, user, approve, org):
            raise errors.AlreadyExists() from None
        if old.decided_at != ctx.now:  # decided earlier, and audited then: the same answer, nothing new
            return "approved" if approve else "denied"
        # else: this request's own write, its answer lost and retried: not audited yet
    audit(
        "device_approved" if approve else "device_denied",
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        user_id=user.id,
        org_id=org.org_id if org else None,
    )
    return "approved" if approve else "denied"


def _own_decision(old: Grant, user: SignedInUser, approve: bool, org: Membership | None) -> bool:
    """The request was already decided: by this person, the same way (a retried write whose answer was
    lost, or the page sending again)? Then the answer is theirs, not a conflict."""
    return (
        old.status == ("approved" if approve else "denied")
        and old.user_id == user.id
        and old.org_id == (org.org_id if org else None)
    )


# ---------------------------------------------------------------- the exchange


def exchange(ctx: Context, caller: Caller, device_code: str) -> Issued:
    """approved -> issued in one conditional write. A re-sent exchange of the same code (a retry whose
    answer was lost, at botocore's level or the device's) within the rotation grace, before the family
    first rotates, gets the same refresh token again: one code, one family, never two."""
    client = admit(ctx.clients, ctx.store, ctx.hmac, caller, grant_type=DEVICE_GRANT)
    grant_id = tokens.grant_id_of(device_code, tokens.DEVICE_CODE_PREFIX)
    if grant_id is None:
        raise errors.InvalidGrant("The device code is not recognised.")
    keys = ctx.keys()
    digest = keys.hmac.digest(device_code)
    refresh_token = (
        keys.hmac.first_refresh_token(device_code, grant_id, client.client_id)
        if REFRESH_GRANT in client.grant_types  # RFC 6749 §5.1: a refresh token is optional
        else None
    )
    refresh_digest = keys.hmac.digest(refresh_token) if refresh_token else None
    rules = policy(client, ctx.settings)
    lifetime = rules.refresh_token_ttl if refresh_token else rules.access_token_ttl
    family_expires_at = ctx.now + lifetime
    try:
        grant = ctx.store.redeem_device_code(
            grant_id,
            device_code_digest=digest,
            client_id=client.client_id,
            now=ctx.now,
            refresh_digest=refresh_digest,
            family_expires_at=family_expires_at,
            ttl=family_expires_at + rules.access_token_ttl,
            access_ttl=rules.access_token_ttl,
            idle_timeout=rules.refresh_idle_timeout or None,
            rotation_grace=rules.rotation_grace,
        )
    except Rejected as rejected:
        grant = _redeemed_again(ctx, rejected.old, digest, refresh_digest, client)
        return issue(ctx, keys, grant, refresh_token)
    audit("issued", grant_id=grant_id, client_id=client.client_id, user_id=grant.user_id, org_id=grant.org_id)
    return issue(ctx, keys, grant, refresh_token)


def _redeemed_again(
    ctx: Context, old: Grant | None, digest: str, refresh_digest: str | None, client: ClientRecord
) -> Grant:
    """The redemption's condition failed. The same code redeemed moments ago, with its family untouched
    since, is this request's own success seen again: answer it. Anything else says why there are no
    tokens (pending polls are recorded, or slowed down, here)."""
    if old is None or not tokens.same_digest(old.device_code_digest, digest):
        raise errors.InvalidGrant("The device code is not recognised.")
    if old.client_id != client.client_id:
        raise errors.InvalidGrant("The device code was issued to another client.")
    if old.status == "issued":
        resent = (
            old.revoked_at is None
            and ctx.now
            < (old.issued_at or 0) + (old.rotation_grace or policy(client, ctx.settings).rotation_grace)
            and ctx.now < old.ends_at  # a family that has ended (idle, or its lifetime) is not re-sent
            and (
                old.rt_digest is None
                if refresh_digest is None
                else old.rt_generation == 1 and tokens.same_digest(old.rt_digest, refresh_digest)
            )
        )
        if resent:
            return old
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
    grown = max(min(old.interval + SLOW_DOWN_STEP, SLOW_DOWN_CEILING), old.interval)
    interval = (
        ctx.store.slow_down(old.grant_id, old.interval, grown) if grown > old.interval else old.interval
    )
    raise errors.SlowDown(
        f"Polling too fast; wait {interval} seconds between requests.",
        interval=interval,
        retry_after=interval,
    )
