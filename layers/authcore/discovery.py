"""Authorization server metadata (RFC 8414): every endpoint the service answers."""

from __future__ import annotations

from typing import Any

from authcore.clients import DEVICE_GRANT, REFRESH_GRANT
from authcore.routes import DOCUMENTED
from authcore.tokens import SIGNING_ALGORITHM


def metadata(issuer: str, verification_uri: str) -> dict[str, Any]:
    # every published route (routes.ROUTES); the product's own under non-standard names (RFC 8414 §2)
    endpoints = {r.metadata: f"{issuer}{r.path}" for r in DOCUMENTED if r.metadata}
    return {
        "issuer": issuer,
        **endpoints,
        "grant_types_supported": [DEVICE_GRANT, REFRESH_GRANT],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "access_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
        "device_verification_page": verification_uri,
    }
