"""Configuration, read once per execution environment from the environment and validated."""

from __future__ import annotations

import os
from functools import lru_cache

from pydantic import BaseModel, Field, ValidationError, field_validator

# A rotation (or a device-code redemption) whose answer is lost is retried by botocore and must then
# recognise itself as its own first success, within the grace. With runtime.BOTO_CONFIG (3 attempts,
# 3 s read timeout, standard back-off of at most 1 s then 2 s) the last retry is sent at most 9 s after
# the first attempt; a shorter grace would make a retried request look like reuse and end the session.
# tests/unit/test_settings.py checks this bound against BOTO_CONFIG itself.
MIN_ROTATION_GRACE_SECONDS = 10


class Settings(BaseModel):
    table_name: str = Field(min_length=3)
    keys_secret_id: str = Field(min_length=1)
    issuer: str = ""
    access_token_audience: str = ""
    verification_uri: str = ""
    device_code_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    poll_interval_seconds: int = Field(default=5, ge=1, le=60)
    access_token_ttl_seconds: int = Field(default=3600, ge=60, le=86400)
    refresh_token_ttl_seconds: int = Field(default=30 * 86400, ge=3600)
    rotation_grace_seconds: int = Field(default=10, ge=MIN_ROTATION_GRACE_SECONDS, le=300)
    allowed_origins: tuple[str, ...] = ()
    client_cache_seconds: int = Field(default=60, ge=0)
    secret_cache_seconds: int = Field(default=300, ge=0)
    verify_attempts_limit: int = Field(default=10, ge=1)
    verify_attempts_window_seconds: int = Field(default=900, ge=10)

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())
        return value

    @field_validator("issuer", "verification_uri")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


_FIELDS = tuple(Settings.model_fields)


def from_environ(environ: dict[str, str] | os._Environ[str]) -> Settings:
    values = {name: environ[name.upper()] for name in _FIELDS if environ.get(name.upper(), "") != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:  # a deployment error: say which variable, never its value
        bad = sorted({str(err["loc"][0]).upper() for err in exc.errors()})
        raise RuntimeError(f"invalid configuration in environment variables: {', '.join(bad)}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return from_environ(os.environ)
