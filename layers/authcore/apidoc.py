"""The OpenAPI 3.1 description of the HTTP API, built from the pydantic models of `envelopes`.

`python -m authcore.apidoc > openapi.json` writes it (`make openapi`); a test fails when the committed
file has drifted from the models, or when a route here is not a route of template.yaml.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from authcore import envelopes as e
from authcore.errors import TABLE

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    dialect: str  # oauth | product | legacy | html | none
    answer: type[BaseModel] | None
    body: type[BaseModel] | None = None
    media: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    signed_in: bool = False
    deprecated: bool = False
    tags: tuple[str, ...] = field(default=())


OAUTH_ERRORS = (400, 401, 503)
ROUTES = (
    Route("POST", "/oauth/device/code", "Device authorization request (RFC 8628 §3.1)", "oauth",
          e.DeviceAuthorizationResponse, e.DeviceCodeRequest, (FORM, JSON), errors=OAUTH_ERRORS),
    Route("GET", "/oauth/device/verify", "What the signed-in user is about to approve", "product",
          e.VerifyInfoResponse, query=("user_code",), errors=(401, 404, 422, 429, 502, 504), signed_in=True),
    Route("POST", "/oauth/device/verify", "Approve or deny a device request", "product",
          e.VerifyDecisionResponse, e.VerifyDecisionRequest, (JSON,),
          errors=(400, 401, 403, 404, 409, 422, 429, 502, 504), signed_in=True),
    Route("POST", "/auth/device/exchange", "Exchange a device code for tokens, the user and organization", "product",
          e.ProductTokenResponse, e.DeviceExchangeRequest, (JSON,),
          errors=(400, 401, 403, 422, 426, 429, 500, 502, 504)),
    Route("POST", "/oauth/token", "Token endpoint: device_code and refresh_token grants (RFC 6749 §3.2)", "oauth",
          e.OAuthTokenResponse, e.TokenRequest, (FORM, JSON), errors=OAUTH_ERRORS),
    Route("GET", "/oauth/token", "Deprecated: the token endpoint with parameters in the query string", "legacy",
          e.LegacySuccess, query=("grant_type", "device_code", "refresh_token", "scope", "client_id", "client_secret"),
          errors=(400, 401, 500), deprecated=True),
    Route("POST", "/auth/refresh", "Rotate the refresh token (JSON body or the refresh_token cookie)", "product",
          e.ProductTokenResponse, e.RefreshRequest, (JSON,), errors=(400, 401, 403, 422, 426, 429, 500, 502, 504)),
    Route("POST", "/auth/logout", "Revoke the session and clear the cookie", "product",
          None, e.RefreshRequest, (JSON,), errors=(400, 403, 422, 502, 504)),
    Route("POST", "/oauth/revoke", "Revoke a token and its whole family (RFC 7009)", "oauth",
          None, e.TokenHintRequest, (FORM, JSON), errors=OAUTH_ERRORS),
    Route("POST", "/oauth/introspect", "Introspect a token (RFC 7662), confidential clients", "oauth",
          e.IntrospectionResponse, e.TokenHintRequest, (FORM, JSON), errors=OAUTH_ERRORS),
    Route("GET", "/.well-known/oauth-authorization-server", "Authorization server metadata (RFC 8414)", "none", None),
    Route("GET", "/.well-known/jwks.json", "Public signing keys (JWKS)", "none", None),
    Route("GET", "/device", "The verification page (HTML)", "html", None, query=("user_code",)),
)  # fmt: skip

ERROR_MODEL: dict[str, type[BaseModel]] = {
    "oauth": e.OAuthError,
    "product": e.ProductError,
    "legacy": e.LegacyError,
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _error_types(status: int, dialect: str) -> list[str]:
    if dialect == "product":
        return sorted({s.product_type for s in TABLE.values() if s.product_status == status})
    return sorted({s.oauth_error for s in TABLE.values() if s.oauth_status == status})


def build(version: str = "0.1.0") -> dict[str, Any]:
    models: set[type[BaseModel]] = set()
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        op: dict[str, Any] = {"summary": route.summary, "operationId": f"{route.method.lower()}{route.path}"}
        if route.deprecated:
            op["deprecated"] = True
        if route.signed_in:
            op["security"] = [{"signedInUser": []}]
        if route.query:
            op["parameters"] = [
                {
                    "name": q,
                    "in": "query",
                    "required": q == "user_code" and route.signed_in,
                    "schema": {"type": "string"},
                }
                for q in route.query
            ]
        if route.body is not None:
            models.add(route.body)
            op["requestBody"] = {
                "required": True,
                "content": {m: {"schema": _ref(route.body)} for m in route.media},
            }
        responses: dict[str, Any] = {}
        if route.dialect == "html":
            responses["200"] = {
                "description": "The page",
                "content": {"text/html": {"schema": {"type": "string"}}},
            }
        else:
            schema = _ref(route.answer) if route.answer else {"type": "object"}
            if route.answer:
                models.add(route.answer)
            responses["200"] = {"description": "Success", "content": {JSON: {"schema": schema}}}
        if route.dialect in ERROR_MODEL:
            err = ERROR_MODEL[route.dialect]
            models.add(err)
            for status in route.errors:
                kinds = _error_types(status, "product" if route.dialect == "product" else "oauth")
                responses[str(status)] = {
                    "description": ", ".join(kinds) or "error",
                    "content": {JSON: {"schema": _ref(err)}},
                }
        op["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = op
    schemas: dict[str, Any] = {}
    for model in sorted(models, key=lambda m: m.__name__):
        generated: dict[str, Any] = model.model_json_schema(ref_template="#/components/schemas/{model}")
        defs = generated.pop("$defs", {})
        schemas.update(defs if isinstance(defs, dict) else {})
        schemas[model.__name__] = generated
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Device token service",
            "version": version,
            "description": "OAuth 2.0 device authorization grant, refresh rotation and JWT access tokens. "
            "Errors under /oauth/ use RFC 6749 §5.2; under /auth/ and /oauth/device/verify the canonical envelope.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "signedInUser": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT (the identity provider's ID token)",
                }
            },
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
