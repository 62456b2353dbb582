"""Authorization server metadata (RFC 8414): every endpoint the service answers."""

from __future__ import annotations

from typing import Any

from authcore.clients import DEVICE_GRANT, REFRESH_GRANT
from authcore.tokens import SIGNING_ALGORITHM


def metadata(issuer: str, verification_uri: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "device_authorization_endpoint": f"{issuer}/oauth/device/code",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "grant_types_supported": [DEVICE_GRANT, REFRESH_GRANT],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "access_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
        # The product's own endpoints (non-standard members, RFC 8414 §2 allows them).
        "device_verification_endpoint": f"{issuer}/oauth/device/verify",
        "device_verification_page": verification_uri,
        "device_exchange_endpoint": f"{issuer}/auth/device/exchange",
        "refresh_endpoint": f"{issuer}/auth/refresh",
        "logout_endpoint": f"{issuer}/auth/logout",
        "legacy_token_endpoint": f"{issuer}/oauth/token",
    }
