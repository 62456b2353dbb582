"""Configuration, read once per execution environment from the environment and validated."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

# A rotation (or a device-code redemption) whose answer was lost must recognise itself when it comes
# again, within the grace, or the retry looks like reuse and ends the session:
# - botocore retries inside the same invocation, with the request's own `now`: any grace > 0 covers it;
# - botocore's retries end within the function's Timeout (runtime.BOTO_CONFIG: 3 attempts of at most 2 s,
#   plus 1 s and 2 s of back-off: 9 s; Timeout: 10 s), so the function answers; when that answer is lost
#   anyway, the client sends the request again, up to the function's timeout after the write: the grace
#   must be longer than that.
# tests/integration/test_hardening.py checks these bounds against BOTO_CONFIG and template.yaml.
MIN_ROTATION_GRACE_SECONDS = 15
DEFAULT_ROTATION_GRACE_SECONDS = 30
# An idle timeout, when there is one, outlasts the longest rotation grace (300 s): a request re-sent
# within its grace must never find its family idle.
MIN_IDLE_TIMEOUT_SECONDS = 300


class ConfigurationError(RuntimeError):
    """The deployment's environment is wrong. The message names the variables, never their values."""


class Settings(BaseModel):
    # Validated on first use, not at import: the page's function never reads it (bench/README.md).
    model_config = ConfigDict(defer_build=True)

    table_name: str = Field(min_length=3)
    keys_secret_id: str = Field(min_length=1)
    issuer: str = ""
    access_token_audience: str = ""
    verification_uri: str = ""
    device_code_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    poll_interval_seconds: int = Field(default=5, ge=1, le=60)
    access_token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=3600)
    rotation_grace_seconds: int = Field(
        default=DEFAULT_ROTATION_GRACE_SECONDS, ge=MIN_ROTATION_GRACE_SECONDS, le=300
    )
    # A family unused for this long ends (0: none). Per client: ClientRecord.refresh_idle_timeout_seconds.
    refresh_idle_timeout_seconds: int = Field(default=0, ge=0, le=366 * 86400)
    # Device authorization requests per source address (IPv4, or IPv6 /64) per window; 0: no limit.
    device_authorizations_per_ip: int = Field(default=120, ge=0)
    device_authorizations_window_seconds: int = Field(default=600, ge=10, le=86400)
    # ... and per client (ClientRecord.device_authorizations_per_window overrides it); 0: no limit
    device_authorizations_per_client: int = Field(default=60000, ge=0)
    # Shards of each address's counter: 1 is enough while the device-code route stays under ~450/s (one
    # item takes 1,000 writes/s); raise it with the route (docs/capacity.md). A shard's share is rounded up.
    device_authorizations_address_shards: int = Field(default=1, ge=1, le=16)
    allowed_origins: tuple[str, ...] = ()
    client_cache_seconds: int = Field(default=60, ge=0)
    secret_cache_seconds: int = Field(default=300, ge=0)
    verify_attempts_limit: int = Field(default=10, ge=1)
    verify_attempts_window_seconds: int = Field(default=900, ge=10)
    # The identity provider whose ID tokens sign people in to the verify routes (authcore.identity).
    auth_issuer: str = ""
    auth_audience: tuple[str, ...] = ()
    auth_jwks_uri: str = ""
    # A CloudFront distribution is in front: take the viewer's address, country and city from its
    # headers, on a request that proves it came through the distribution: its X-Origin-Verify header (a
    # custom origin header the distribution adds) hashes to edge_origin_secret_sha256. Any other request
    # is taken at its word as API Gateway saw it (its source address, no country): a client that reaches
    # the API around CloudFront cannot claim another address, country or network.
    trust_edge_headers: bool = False
    # (comma-separated: while the distribution's secret is being changed, the current one's and the next's)
    edge_origin_secret_sha256: str = Field(
        default="", pattern=r"^([0-9a-f]{64}(,[0-9a-f]{64}){0,3})?$", validate_default=True
    )

    @field_validator("refresh_idle_timeout_seconds")
    @classmethod
    def _idle_outlasts_any_grace(cls, value: int) -> int:
        if 0 < value < MIN_IDLE_TIMEOUT_SECONDS:  # shorter than a grace, a retried request would be "idle"
            raise ValueError(f"0 (none) or at least {MIN_IDLE_TIMEOUT_SECONDS} seconds")
        return value

    @field_validator("edge_origin_secret_sha256")
    @classmethod
    def _edge_headers_need_the_origin_secret(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("trust_edge_headers") and not value:
            raise ValueError("TRUST_EDGE_HEADERS needs the origin secret's SHA-256")
        return value

    @property
    def edge_origin_secrets(self) -> tuple[str, ...]:
        """The digests of the origin secrets a request through the distribution may carry."""
        return tuple(d for d in self.edge_origin_secret_sha256.split(",") if d)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @field_validator("auth_audience", mode="before")
    @classmethod
    def _split_audiences(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(a.strip() for a in value.split(",") if a.strip())
        return value

    @field_validator("issuer", "verification_uri")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


def from_environ[M: BaseModel](
    environ: Mapping[str, str],
    model: type[M] = Settings,  # type: ignore[assignment]
) -> M:
    """A configuration model from the environment (each field's variable is its name, upper case)."""
    values = {
        name: environ[name.upper()] for name in model.model_fields if environ.get(name.upper(), "") != ""
    }
    try:
        return model.model_validate(values)
    except ValidationError as exc:  # a deployment error: say which variable, never its value
        bad = sorted({str(err["loc"][0]).upper() for err in exc.errors()})
        raise ConfigurationError(
            f"invalid configuration in environment variables: {', '.join(bad)}"
        ) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return from_environ(os.environ)
