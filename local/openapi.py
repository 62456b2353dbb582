"""The OpenAPI 3.1 description of the HTTP API, built from the pydantic models of `envelopes`.

`.venv/bin/python -m local.openapi > openapi.json` writes it (`make openapi`); a test fails when the committed
file has drifted from the models, when a route here is not a route of template.yaml, and when a route
of `authcore.routes` has no description here (`build` refuses to describe a different list).

What it says beyond the bodies, so that tools can drive the API (tests/e2e/test_schemathesis.py does):
- the response headers the service sends (`http.BASE_HEADERS`, `http.render_problem`, `http.LEGACY_HEADERS`,
  the session cookie); every error status each route can answer, in its dialect;
- form bodies as a form carries them: a field is a string or absent (never null), sent once, and an empty
  value is an absent one; JSON bodies keep the models' nulls;
- links between operations: device code -> verification, polling and exchange; tokens -> refresh,
  revocation and introspection.

A tool, not part of the layer that ships to Lambda (docs/design.md).
"""

from __future__ import annotations

import copy
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "layers") not in sys.path:  # the layer's modules, as the functions have them
    sys.path.append(str(ROOT / "layers"))

from pydantic import BaseModel  # noqa: E402

from authcore import envelopes as e  # noqa: E402
from authcore import routes  # noqa: E402
from authcore.clients import DEVICE_GRANT, REFRESH_GRANT  # noqa: E402
from authcore.errors import TABLE  # noqa: E402
from authcore.http import BASE_HEADERS, LEGACY_HEADERS, MAX_BODY_BYTES, REFRESH_COOKIE  # noqa: E402

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
HTML = "text/html"
MAX_FORM_FIELDS = 64  # http._form: parse_qsl(max_num_fields=64)

# ---------------------------------------------------------------- links

Link = dict[str, Any]


def _link(operation: str, description: str, *, body: dict[str, Any] | None = None, **query: str) -> Link:
    out: Link = {"operationId": operation, "description": description}
    if query:
        out["parameters"] = dict(query)
    if body is not None:
        out["requestBody"] = body
    return out


def _token_links(access: str, refresh: str, client_id: str | None) -> dict[str, Link]:
    """What a token answer leads to. `client_id`: where the request named its (public) client, for the
    routes that need the client; None when the request named none (the product API's refresh)."""
    links: dict[str, Link] = {}
    if client_id is not None:
        links["RefreshWithTheTokenEndpoint"] = _link(
            "post/oauth/token",
            "Rotate the refresh token (RFC 6749 §6).",
            body={"grant_type": REFRESH_GRANT, "refresh_token": refresh, "client_id": client_id},
        )
    links["RefreshWithTheProductApi"] = _link(
        "post/auth/refresh", "Rotate the refresh token (product API).", body={"refresh_token": refresh}
    )
    if client_id is not None:
        links["RevokeTheRefreshToken"] = _link(
            "post/oauth/revoke",
            "End the session (RFC 7009).",
            body={"token": refresh, "token_type_hint": "refresh_token", "client_id": client_id},
        )
        links["RevokeTheAccessToken"] = _link(
            "post/oauth/revoke",
            "End the session by its access token (RFC 7009).",
            body={"token": access, "token_type_hint": "access_token", "client_id": client_id},
        )
    else:
        links["SignOut"] = _link(
            "post/auth/logout", "End the session (product API).", body={"refresh_token": refresh}
        )
    links["IntrospectTheRefreshToken"] = _link(
        "post/oauth/introspect",
        "Is the refresh token active? (RFC 7662; a confidential client asks)",
        body={"token": refresh, "token_type_hint": "refresh_token"},
    )
    links["IntrospectTheAccessToken"] = _link(
        "post/oauth/introspect",
        "Is the access token active? (RFC 7662; a confidential client asks)",
        body={"token": access, "token_type_hint": "access_token"},
    )
    return links


DEVICE_CODE_LINKS: dict[str, Link] = {
    "SeeTheRequest": _link(
        "get/oauth/device/verify",
        "The signed-in person looks at the request the user code names.",
        user_code="$response.body#/user_code",
    ),
    "Approve": _link(
        "post/oauth/device/verify",
        "The signed-in person approves the request.",
        body={"user_code": "$response.body#/user_code", "decision": "approve"},
    ),
    "Deny": _link(
        "post/oauth/device/verify",
        "The signed-in person denies the request.",
        body={"user_code": "$response.body#/user_code", "decision": "deny"},
    ),
    "Poll": _link(
        "post/oauth/token",
        "The device polls the token endpoint (RFC 8628 §3.4).",
        body={
            "grant_type": DEVICE_GRANT,
            "device_code": "$response.body#/device_code",
            "client_id": "$request.body#/client_id",
        },
    ),
    "Exchange": _link(
        "post/auth/device/exchange",
        "The product's device exchanges the code for tokens, the user and the organization.",
        body={"device_code": "$response.body#/device_code", "client_id": "$request.body#/client_id"},
    ),
    "PollTheLegacyEndpoint": _link(
        "get/oauth/token",
        "The device polls the deprecated GET token endpoint.",
        grant_type=DEVICE_GRANT,
        device_code="$response.body#/device_code",
        client_id="$request.body#/client_id",
    ),
}

LEGACY_TOKEN_LINKS: dict[str, Link] = {
    "RefreshWithTheLegacyEndpoint": _link(
        "get/oauth/token",
        "Rotate the refresh token with the deprecated GET token endpoint.",
        grant_type=REFRESH_GRANT,
        refresh_token="$response.body#/data/refresh_token",
        client_id="$request.query.client_id",
    ),
    **_token_links(
        "$response.body#/data/access_token",
        "$response.body#/data/refresh_token",
        "$request.query.client_id",
    ),
}

# ---------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    summary: str
    dialect: str  # oauth | product | legacy | html | none (routes.Route.dialect)
    answer: type[BaseModel] | None
    body: type[BaseModel] | None = None
    media: tuple[str, ...] = ()
    query: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    signed_in: bool = False
    deprecated: bool = False
    tags: tuple[str, ...] = field(default=())
    body_required: bool = True
    client_auth: bool = False  # the client may authenticate with HTTP Basic (RFC 6749 §2.3.1)
    issues_tokens: bool = False  # token answers: also `Pragma: no-cache` (RFC 6749 §5.1)
    polls: bool = False  # a device's poll may be answered slow_down, with Retry-After
    cookie: bool = False  # the refresh token may come in the session cookie
    links: dict[str, Link] = field(default_factory=dict)
    description: str = ""
    answer_schema: dict[str, Any] | None = None  # an answer that is no model of envelopes


OAUTH_ERRORS = (400, 401, 500, 503)
SIGNED_OUT: dict[str, Any] = {
    "type": "object",
    "properties": {"status": {"type": "string", "const": "signed_out"}},
    "required": ["status"],
}
REVOKED: dict[str, Any] = {
    "type": "object",
    "maxProperties": 0,
    "description": "An empty object (RFC 7009 §2.2).",
}
ROUTES = (
    Route("POST", "/oauth/device/code", "Device authorization request (RFC 8628 §3.1)", "oauth",
          e.DeviceAuthorizationResponse, e.DeviceCodeRequest, (FORM, JSON), errors=(*OAUTH_ERRORS, 429),
          client_auth=True, links=DEVICE_CODE_LINKS),
    Route("GET", "/oauth/device/verify", "What the signed-in user is about to approve", "product",
          e.VerifyInfoResponse, query=("user_code",), errors=(401, 403, 404, 422, 429, 500, 502, 504),
          signed_in=True),
    Route("POST", "/oauth/device/verify", "Approve or deny a device request", "product",
          e.VerifyDecisionResponse, e.VerifyDecisionRequest, (JSON,),
          errors=(400, 401, 403, 404, 409, 422, 429, 500, 502, 504), signed_in=True),
    Route("POST", "/auth/device/exchange", "Exchange a device code for tokens, the user and organization", "product",
          e.ProductTokenResponse, e.DeviceExchangeRequest, (JSON,),
          errors=(400, 401, 403, 422, 426, 429, 500, 502, 504), issues_tokens=True, polls=True,
          links=_token_links("$response.body#/access_token", "$response.body#/refresh_token",
                             "$request.body#/client_id")),
    Route("POST", "/oauth/token", "Token endpoint: device_code and refresh_token grants (RFC 6749 §3.2)", "oauth",
          e.OAuthTokenResponse, e.TokenRequest, (FORM, JSON), errors=OAUTH_ERRORS, client_auth=True,
          issues_tokens=True, polls=True,
          links=_token_links("$response.body#/access_token", "$response.body#/refresh_token",
                             "$request.body#/client_id")),
    Route("GET", "/oauth/token", "Deprecated: the token endpoint with parameters in the query string", "legacy",
          e.LegacySuccess, query=("grant_type", "device_code", "refresh_token", "scope", "client_id", "client_secret"),
          errors=(400, 401, 500), deprecated=True, client_auth=True, issues_tokens=True, polls=True,
          links=LEGACY_TOKEN_LINKS,
          description="Every answer carries `Deprecation` and `Link: </oauth/token>; rel=\"successor-version\"`. "
          "A `client_secret` in the query string is refused (400 invalid_request, RFC 6749 §2.3.1): "
          "a confidential client authenticates with HTTP Basic, or uses POST /oauth/token."),
    Route("POST", "/auth/refresh", "Rotate the refresh token (JSON body or the refresh_token cookie)", "product",
          e.ProductTokenResponse, e.RefreshRequest, (JSON,), errors=(400, 401, 403, 422, 426, 429, 500, 502, 504),
          body_required=False, issues_tokens=True, cookie=True,
          links=_token_links("$response.body#/access_token", "$response.body#/refresh_token", None),
          description="The refresh token comes in the JSON body or in the `refresh_token` cookie (from an "
          "allowed Origin only). Its successor goes back the same way: in the body, or only in Set-Cookie. "
          "A body with `\"set_cookie\": true` (from an allowed Origin only, else 403) moves the session "
          "into the cookie: the successor only in Set-Cookie, none in the body."),
    Route("POST", "/auth/logout", "Revoke the session and clear the cookie", "product",
          None, e.RefreshRequest, (JSON,), errors=(400, 401, 403, 422, 429, 500, 502, 504),
          body_required=False, cookie=True, answer_schema=SIGNED_OUT,
          description="Always signs out: an unknown, expired or already revoked token is no error. The "
          "refresh token comes in the JSON body or in the cookie (from an allowed Origin only)."),
    Route("GET", "/auth/sessions", "The signed-in person's live sessions, newest first", "product",
          e.SessionsResponse, query=("cursor",), errors=(400, 401, 422, 429, 500, 502, 504), signed_in=True,
          description="A session is a sign-in that has tokens (a refresh family). Live ones only (not "
          "revoked, not expired), at most 100 a page; `next` is the `cursor` of the next page, null on the "
          "last. `expires_at` is the earlier of the absolute lifetime and the idle timeout."),
    Route("DELETE", "/auth/sessions/{id}", "Sign one of the person's sessions out", "product",
          e.SessionRevokedResponse, errors=(401, 404, 429, 500, 502, 504), signed_in=True,
          description="Its refresh token is refused from now on (invalid_grant), and introspection "
          "answers active: false. Someone else's session, or an unknown id, is 404 not_found; one of the "
          "person's own that has already ended answers 200 again."),
    Route("POST", "/auth/sessions/revoke-all", "Sign out everywhere: end every live session of the person",
          "product", e.SessionsRevokedResponse, errors=(401, 429, 500, 502, 504), signed_in=True,
          description="`count` is how many sessions this request ended."),
    Route("POST", "/oauth/revoke", "Revoke a token and its whole family (RFC 7009)", "oauth",
          None, e.TokenHintRequest, (FORM, JSON), errors=OAUTH_ERRORS, client_auth=True, answer_schema=REVOKED,
          description="200 for any well-formed request from an authenticated client, known token or not."),
    Route("POST", "/oauth/introspect", "Introspect a token (RFC 7662), confidential clients", "oauth",
          e.IntrospectionResponse, e.TokenHintRequest, (FORM, JSON), errors=OAUTH_ERRORS, client_auth=True),
    Route("GET", "/.well-known/oauth-authorization-server", "Authorization server metadata (RFC 8414)", "none",
          None, errors=(500,)),
    Route("GET", "/.well-known/jwks.json", "Public signing keys (JWKS)", "none", None,
          errors=(429, 500, 502, 504)),
    Route("GET", "/device", "The verification page (HTML)", "html", None, query=("user_code",), errors=(500,)),
    Route("GET", "/device/sessions", "Your devices: the signed-in person's sessions (HTML)", "html", None,
          errors=(500,)),
)  # fmt: skip

ERROR_MODEL: dict[str, type[BaseModel]] = {
    "oauth": e.OAuthError,
    "product": e.ProductError,
    "legacy": e.LegacyError,
    "none": e.ProductError,  # a route with no dialect of its own answers its rare errors in the envelope
    "html": e.ProductError,
}


class UndescribedRoute(Exception):
    """authcore.routes and the routes described here are not the same list."""


def named_routes() -> list[routes.Route]:
    """The routes of authcore.routes that a client can name: not API Gateway's catch-all `$default`."""
    return [r for r in routes.ROUTES if r.path.startswith("/")]


def check_routes() -> None:
    described = [(r.method, r.path, r.dialect, r.signed_in) for r in ROUTES]
    served = [(r.method, r.path, r.dialect, r.signed_in) for r in named_routes()]
    if described != served:
        missing = [s for s in served if s not in described]
        extra = [d for d in described if d not in served]
        raise UndescribedRoute(
            f"local.openapi.ROUTES must describe authcore.routes.ROUTES, in order: not described {missing}, "
            f"not served {extra}"
        )


# ---------------------------------------------------------------- schemas


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _not_null(prop: dict[str, Any]) -> dict[str, Any]:
    """`X | None` without the None: what a form (or an answer with its Nones left out) can carry."""
    options = prop.get("anyOf")
    if not isinstance(options, list):
        return prop
    kept = [o for o in options if o != {"type": "null"}]
    out = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    if len(kept) == 1:
        out.update(kept[0])
    else:
        out["anyOf"] = kept
    return out


# The document may say more than a model checks: what the handler then decides.
REQUEST_FIELDS: dict[tuple[str, str], dict[str, Any]] = {
    ("TokenRequest", "grant_type"): {
        "enum": [DEVICE_GRANT, REFRESH_GRANT],
        "description": "Any other grant type is answered unsupported_grant_type.",
    },
    ("TokenRequest", "client_id"): {"description": "Public clients; or HTTP Basic (confidential clients)."},
    ("TokenHintRequest", "client_id"): {
        "description": "Public clients; or HTTP Basic (confidential clients)."
    },
    ("DeviceCodeRequest", "client_id"): {
        "description": "Public clients; or HTTP Basic (confidential clients)."
    },
    ("TokenRequest", "scope"): {"description": "refresh_token grant: narrow the scope (RFC 6749 §6)."},
}


def _request_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = copy.deepcopy(model.model_json_schema(ref_template="#/components/schemas/{model}"))
    for name, prop in schema.get("properties", {}).items():
        prop.update(REQUEST_FIELDS.get((model.__name__, name), {}))
    return schema


def _form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model as a form body carries it (http._form): every field a string or absent, never null; an
    empty value is an absent one; a parameter at most once; unknown parameters ignored (RFC 6749 §3.2)."""
    schema = _request_schema(model)
    required = set(schema.get("required", []))
    props = {name: _not_null(prop) for name, prop in schema.get("properties", {}).items()}
    for name, prop in props.items():
        if name not in required:  # `client_secret=` is no secret at all: it is absent (RFC 6749 §3.2)
            prop.pop("minLength", None)
    schema["properties"] = props
    schema["title"] = f"{schema.get('title', model.__name__)} (form)"
    schema["additionalProperties"] = {"type": "string"}  # ignored, but each at most once
    schema["maxProperties"] = MAX_FORM_FIELDS
    schema["description"] = (
        "application/x-www-form-urlencoded: each parameter at most once; a parameter without a value is "
        f"absent; at most {MAX_FORM_FIELDS} parameters and {MAX_BODY_BYTES // 1024} KiB."
    )
    return schema


def _answer_schema(model: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """An answer's schema and the schemas it refers to. http.json_response leaves the Nones out of an
    answer, so a member is absent rather than null; unless the model keeps them (`keep_nulls`)."""
    generated = copy.deepcopy(
        model.model_json_schema(mode="serialization", ref_template="#/components/schemas/{model}")
    )
    defs = generated.pop("$defs", {})
    if not getattr(model, "keep_nulls", False):
        for schema in (generated, *defs.values()):
            props = schema.get("properties", {})
            for name in list(props):
                props[name] = _not_null(props[name])
    return generated, defs


# ---------------------------------------------------------------- headers


def _header(description: str, schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


HEADERS: dict[str, dict[str, Any]] = {
    "CacheControl": _header("Never cached.", {"type": "string", "const": BASE_HEADERS["Cache-Control"]}),
    "Pragma": _header("Never cached (RFC 6749 §5.1).", {"type": "string", "const": BASE_HEADERS["Pragma"]}),
    "RetryAfter": _header("Seconds to wait before trying again.", {"type": "integer", "minimum": 0}),
    "RetryAfterOptional": _header(
        "Seconds to wait before trying again: with slow_down (the new interval) and with a dependency's "
        "fault.",
        {"type": "integer", "minimum": 0},
        required=False,
    ),
    "WWWAuthenticate": _header(
        "When the client authenticated with HTTP Basic (RFC 6749 §5.2).",
        {"type": "string", "pattern": "^Basic "},
        required=False,
    ),
    "Deprecation": _header(
        "RFC 9745: this endpoint is deprecated.", {"type": "string", "const": LEGACY_HEADERS["Deprecation"]}
    ),
    "Link": _header("RFC 8288: its successor.", {"type": "string", "const": LEGACY_HEADERS["Link"]}),
}
COOKIE_PATTERN = f"^{REFRESH_COOKIE}="
SET_COOKIE_REFRESH = _header(
    "When the refresh token came in the cookie: its successor, HttpOnly; Secure; SameSite=Strict; "
    "Path=/auth; Max-Age = the session's remaining lifetime. Never when it came in the body.",
    {"type": "string", "pattern": COOKIE_PATTERN},
    required=False,
)
SET_COOKIE_CLEARED = _header(
    "The session cookie, cleared (empty, Max-Age=0).", {"type": "string", "pattern": COOKIE_PATTERN}
)
PAGE_HEADERS = {
    "Content-Security-Policy": _header("Scripts and styles by hash only; no framing.", {"type": "string"}),
    "X-Frame-Options": _header("Never framed.", {"type": "string", "const": "DENY"}),
    "X-Content-Type-Options": _header("No sniffing.", {"type": "string", "const": "nosniff"}),
    "Referrer-Policy": _header("The user code never leaks.", {"type": "string", "const": "no-referrer"}),
}


def _hdr(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _headers(route: Route, status: int) -> dict[str, Any]:
    """The headers the service sends on this answer (http.json_response, http.render_problem)."""
    out: dict[str, Any] = {}
    if route.dialect == "none" and status in (200, 304):
        # the public documents are cacheable, with an ETag (functions/discovery/app.py)
        out["Cache-Control"] = _header(
            "Cacheable: the JWKS for 300 s, the metadata for 3600 s.",
            {"type": "string", "pattern": "^public, max-age=[0-9]+$"},
        )
        out["ETag"] = _header(
            "The document's version: send it back in If-None-Match (304).", {"type": "string"}
        )
    else:
        out["Cache-Control"] = _hdr("CacheControl")
    if route.issues_tokens or (route.dialect == "html" and status == 200):
        out["Pragma"] = _hdr("Pragma")
    dialect = "product" if route.dialect in ("none", "html") else route.dialect
    if (dialect == "product" and status == 429) or (dialect == "oauth" and status in (429, 503)):
        out["Retry-After"] = _hdr("RetryAfter")
    elif (
        (dialect == "product" and status in (502, 504))
        or (dialect == "legacy" and status == 500)
        or (route.polls and status == 400 and dialect in ("oauth", "legacy"))
    ):
        out["Retry-After"] = _hdr("RetryAfterOptional")
    if status == 401 and dialect in ("oauth", "legacy"):
        out["WWW-Authenticate"] = _hdr("WWWAuthenticate")
    if dialect == "legacy":
        out["Deprecation"] = _hdr("Deprecation")
        out["Link"] = _hdr("Link")
    if status == 200 and route.cookie:
        out["Set-Cookie"] = SET_COOKIE_CLEARED if route.answer_schema is SIGNED_OUT else SET_COOKIE_REFRESH
    if status == 200 and route.dialect == "html":
        out.update(PAGE_HEADERS)
    return out


# ---------------------------------------------------------------- parameters


def _query_parameters(route: Route) -> list[dict[str, Any]]:
    if route.path == "/oauth/device/verify":
        # functions/device_verification/app.py: Query(min_length=1, max_length=64)
        return [
            {
                "name": "user_code",
                "in": "query",
                "required": True,
                "description": "As shown to the user (case and hyphens do not matter).",
                "schema": {"type": "string", "minLength": 1, "maxLength": 64},
            }
        ]
    if route.path == "/auth/sessions":
        # functions/sessions/app.py: Query(min_length=1, max_length=80)
        return [
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "The `next` of the previous page.",
                "schema": {"type": "string", "minLength": 1, "maxLength": 80},
            }
        ]
    if route.path == "/device":
        return [
            {
                "name": "user_code",
                "in": "query",
                "required": False,
                "description": "Pre-fills the code (ignored when longer than 64 characters).",
                "schema": {"type": "string"},
            }
        ]
    # the legacy GET: the query string is read as a form is (http.oauth_params)
    fields = _form_schema(e.TokenRequest)["properties"]
    params = []
    for name in route.query:
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name == "grant_type",
            "schema": {k: v for k, v in fields[name].items() if k != "title"},
        }
        if name == "client_secret":
            param["description"] = (
                "Refused: a client_secret in the query string is answered 400 invalid_request (secrets never "
                "travel in a URL, RFC 6749 §2.3.1). Authenticate with HTTP Basic, or use POST /oauth/token."
            )
            param["schema"] = {"type": "string", "maxLength": 0}  # only its absence (an empty one is absent)
        params.append(param)
    return params


# ---------------------------------------------------------------- the document


def _error_types(status: int, dialect: str) -> list[str]:
    if dialect == "product":
        return sorted({s.product_type for s in TABLE.values() if s.product_status == status})
    if dialect == "legacy" and status == 500:  # the legacy envelope says 503's faults as 500
        return sorted({s.oauth_error for s in TABLE.values() if s.oauth_status >= 500})
    return sorted({s.oauth_error for s in TABLE.values() if s.oauth_status == status})


def _error_description(route: Route, status: int) -> str:
    dialect = {"oauth": "oauth", "legacy": "legacy"}.get(route.dialect, "product")
    kinds = _error_types(status, dialect)
    if dialect == "oauth" and status == 429:  # docs/api.md: too many device requests from one source IP
        kinds = ["temporarily_unavailable (too many requests from one source)"]
    if route.signed_in and status == 401:  # authcore.identity: the function checks the ID token
        return "unauthorized: no ID token, or not a valid one (the canonical envelope)"
    return ", ".join(kinds) or "error"


def build(version: str = "0.1.0") -> dict[str, Any]:
    check_routes()
    schemas: dict[str, Any] = {}

    nullable: set[str] = set()  # schemas that an answer keeping its nulls refers to

    def answer(model: type[BaseModel]) -> dict[str, str]:
        generated, defs = _answer_schema(model)
        keeps_nulls = bool(getattr(model, "keep_nulls", False))
        for name, schema in defs.items():
            if keeps_nulls or name not in nullable:  # a schema shared with such an answer keeps null
                schemas[name] = schema
        if keeps_nulls:
            nullable.update(defs)
        schemas[model.__name__] = generated
        return _ref(model.__name__)

    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        op: dict[str, Any] = {"summary": route.summary, "operationId": f"{route.method.lower()}{route.path}"}
        if route.description:
            op["description"] = route.description
        if route.deprecated:
            op["deprecated"] = True
        if route.signed_in:
            op["security"] = [{"signedInUser": []}]
        elif route.client_auth:
            op["security"] = [{}, {"clientBasic": []}]  # public clients name themselves in the body
        params = _query_parameters(route) if route.query else []
        if "{id}" in route.path:
            params.append(
                {
                    "name": "id",
                    "in": "path",
                    "required": True,
                    "description": "The session's id (`id` in GET /auth/sessions; `sid` in its access tokens).",
                    "schema": {"type": "string", "minLength": 1},
                }
            )
        if route.cookie:
            params.append(
                {
                    "name": REFRESH_COOKIE,
                    "in": "cookie",
                    "required": False,
                    "description": "The session's refresh token (browsers); honoured only from an allowed "
                    "Origin, else 403.",
                    "schema": {"type": "string"},
                }
            )
        if params:
            op["parameters"] = params
        if route.body is not None:
            content: dict[str, Any] = {}
            for media in route.media:
                if media == FORM:
                    name = f"{route.body.__name__}Form"
                    schemas[name] = _form_schema(route.body)
                else:
                    name = route.body.__name__
                    generated = _request_schema(route.body)
                    schemas.update(generated.pop("$defs", {}))
                    schemas[name] = generated
                content[media] = {"schema": _ref(name)}
            op["requestBody"] = {"required": route.body_required, "content": content}
        responses: dict[str, Any] = {}
        if route.dialect == "html":
            ok: dict[str, Any] = {
                "description": "The page",
                "content": {HTML: {"schema": {"type": "string"}}},
            }
        else:
            schema = answer(route.answer) if route.answer else route.answer_schema or {"type": "object"}
            ok = {"description": "Success", "content": {JSON: {"schema": schema}}}
        ok["headers"] = _headers(route, 200)
        if route.links:
            ok["links"] = route.links
        responses["200"] = ok
        if route.dialect == "none":  # If-None-Match naming the current ETag: not modified, no body
            responses["304"] = {"description": "Not modified", "headers": _headers(route, 304)}
        err = ERROR_MODEL[route.dialect]
        for status in route.errors:
            responses[str(status)] = {
                "description": _error_description(route, status),
                "headers": _headers(route, status),
                "content": {JSON: {"schema": answer(err)}},
            }
        op["responses"] = responses
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Device token service",
            "version": version,
            "description": "OAuth 2.0 device authorization grant, refresh rotation and JWT access tokens. "
            "Errors under /oauth/ use RFC 6749 §5.2; under /auth/ and /oauth/device/verify the canonical "
            "envelope. Every JSON answer carries Cache-Control: no-store but the public documents (the "
            "metadata and the JWKS: public, max-age, with an ETag); token answers also Pragma: no-cache.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "headers": HEADERS,
            "securitySchemes": {
                "signedInUser": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT (the identity provider's ID token)",
                    "description": "A signed-in person. A missing or bad ID token is answered 401 "
                    "unauthorized in the canonical envelope.",
                },
                "clientBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Client authentication (RFC 6749 §2.3.1): client_id and client_secret, "
                    "form-urlencoded. Confidential clients; or client_id and client_secret in the body.",
                },
            },
        },
    }


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
