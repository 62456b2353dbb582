"""Every request and response body, as pydantic models. Handlers parse into and answer from these."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

Short = Annotated[str, StringConstraints(min_length=1, max_length=256)]
Secretish = Annotated[str, StringConstraints(min_length=1, max_length=512)]
ScopeText = Annotated[str, StringConstraints(max_length=1024)]


class _Envelope(BaseModel):
    """Every envelope's validator and serializer are built on its first use (pydantic's defer_build),
    not when this module is imported: a function builds only the envelopes it parses and answers with
    (bench/README.md). `runtime.prime` builds them all ahead of a SnapStart snapshot."""

    model_config = ConfigDict(defer_build=True)


class _In(_Envelope):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)


# ---------------------------------------------------------------- requests


class DeviceCodeRequest(_In):
    client_id: Short | None = None  # may come in HTTP Basic instead
    client_secret: Secretish | None = None
    scope: ScopeText | None = None


class VerifyDecisionRequest(_In):
    user_code: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    decision: Literal["approve", "deny"]
    organization_id: Short | None = None


class DeviceExchangeRequest(_In):
    device_code: Secretish
    client_id: Short


class TokenRequest(_In):
    grant_type: Short
    device_code: Secretish | None = None
    refresh_token: Secretish | None = None
    scope: ScopeText | None = None
    client_id: Short | None = None
    client_secret: Secretish | None = None


class RefreshRequest(_In):
    refresh_token: Secretish | None = None
    # a browser app's first refresh after signing in: the successor only in the HttpOnly cookie
    set_cookie: StrictBool = False


class TokenHintRequest(_In):
    """RFC 7009 revocation and RFC 7662 introspection."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=4096)]
    token_type_hint: Short | None = None
    client_id: Short | None = None
    client_secret: Secretish | None = None


# ---------------------------------------------------------------- responses


class DeviceAuthorizationResponse(_Envelope):
    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int


class ClientOut(_Envelope):
    id: str
    name: str


class OrganizationChoice(_Envelope):
    id: str
    name: str
    role: str


class DeviceOut(_Envelope):
    """The device that asked, as the service saw it (RFC 8628 §5.4: let the person check it is theirs).
    A member is null when it is not known."""

    ip: str | None = None
    user_agent: str | None = None
    client_version: str | None = None
    country: str | None = None
    requested_at: str | None = None


class VerifyInfoResponse(_Envelope):
    keep_nulls: ClassVar[bool] = True  # device members and same_network are null when unknown

    user_code: str
    client: ClientOut
    scope: str
    expires_at: str
    status: Literal["pending", "approved", "denied", "issued"]
    organizations: list[OrganizationChoice] = Field(default_factory=list)
    device: DeviceOut = Field(default_factory=DeviceOut)
    same_network: bool | None = None  # the approving browser and the device: same address, /24 or /56


class NamedOut(_Envelope):
    id: str
    name: str


class SessionOut(_Envelope):
    """One live session (a refresh family): what it is, whose, and the device that started it."""

    id: str
    client: NamedOut
    organization: NamedOut
    scope: str
    created_at: str
    last_used_at: str
    expires_at: str  # the earlier of the absolute lifetime and the idle timeout
    device: DeviceOut = Field(default_factory=DeviceOut)


class SessionsResponse(_Envelope):
    keep_nulls: ClassVar[bool] = True  # `next` is null on the last page; device members when unknown

    sessions: list[SessionOut]
    next: str | None = None


class SessionRevokedResponse(_Envelope):
    status: Literal["revoked"] = "revoked"


class SessionsRevokedResponse(_Envelope):
    status: Literal["revoked"] = "revoked"
    count: int


class VerifyDecisionResponse(_Envelope):
    status: Literal["approved", "denied"]


class UserOut(_Envelope):
    id: str
    email: str
    name: str


class OrganizationOut(_Envelope):
    id: str
    name: str
    role: str


class OAuthTokenResponse(_Envelope):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_token: str | None = None
    scope: str


class ProductTokenResponse(OAuthTokenResponse):
    user: UserOut
    organization: OrganizationOut


class LegacyTokenData(_Envelope):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    refresh_token: str | None = None
    ttl: str
    issued_at: str
    expires_at: str


class LegacySuccess(_Envelope):
    success: Literal[True] = True
    data: LegacyTokenData


class IntrospectionResponse(_Envelope):
    model_config = ConfigDict(extra="forbid")
    active: bool
    scope: str | None = None
    client_id: str | None = None
    username: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    aud: str | list[str] | None = None
    iss: str | None = None
    jti: str | None = None
    sid: str | None = None
    org_id: str | None = None


class ErrorDetail(_Envelope):
    loc: list[str | int]
    msg: str
    type: str


class ProductError(_Envelope):
    status: int
    message: str
    type: str
    details: list[ErrorDetail] = Field(default_factory=list)
    request_id: str


class OAuthError(_Envelope):
    error: str
    error_description: str
    interval: int | None = None


class LegacyError(_Envelope):
    success: Literal[False] = False
    errorMessage: str
    errorDetails: list[str]
    errorCode: str


def build_all() -> None:
    """Build every envelope's validator and serializer now (`runtime.prime`, ahead of a snapshot)."""
    for value in list(globals().values()):
        if isinstance(value, type) and issubclass(value, _Envelope) and value not in (_Envelope, _In):
            value.model_rebuild(force=True)
