"""What every grant ends in: the request's context, and issued tokens in their three answer shapes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from authcore import tokens
from authcore.clients import ClientRegistry
from authcore.envelopes import (
    DeviceOut,
    LegacySuccess,
    LegacyTokenData,
    OAuthTokenResponse,
    ProductTokenResponse,
)
from authcore.settings import Settings
from authcore.store import Grant, Store


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

    def hmac(self) -> tokens.Hmac:
        return self.keys().hmac


@dataclass
class Issued:
    access_token: str
    expires_in: int
    refresh_token: str | None  # None: the client has no refresh grant
    scope: str
    grant: Grant
    issued_at: int

    @property
    def refresh_max_age(self) -> int:
        """The cookie lives as long as the session can: the earlier of its absolute and idle limits."""
        return max(0, (self.grant.ends_at or self.issued_at) - self.issued_at)

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
        g = self.grant
        return ProductTokenResponse.model_validate(  # one validation, not one per nested model
            {
                "access_token": self.access_token,
                "expires_in": self.expires_in,
                "refresh_token": self.refresh_token if with_refresh_token else None,
                "scope": self.scope,
                "user": {"id": g.user_id or "", "email": g.user_email or "", "name": g.user_name or ""},
                "organization": {"id": g.org_id or "", "name": g.org_name or "", "role": g.org_role or ""},
            }
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


def device_of(grant: Grant) -> DeviceOut:
    """The device that asked for a grant, as the page and the session list show it (RFC 8628 §5.4)."""
    return DeviceOut(
        ip=grant.device_ip,
        user_agent=grant.device_user_agent,
        client_version=grant.device_client_version,
        country=grant.device_country,
        requested_at=iso(grant.created_at),
    )


def issue(
    ctx: Context, keys: tokens.KeySet, grant: Grant, refresh_token: str | None, scope: str | None = None
) -> Issued:
    """Sign the access token of a grant whose write is done: pure computation, nothing can be lost."""
    ttl = grant.access_ttl or ctx.settings.access_token_ttl_seconds  # the client's, when the session began
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
