"""Every route of the HTTP API, once: its function, its error dialect, and the metadata name it is
published under. The resolver takes a route's dialect from here (never from its path), discovery
publishes the endpoints from here, and the OpenAPI generator and the template tests check against it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Dialect = Literal["oauth", "product", "legacy", "none", "html"]
DEFAULT = "$default"  # API Gateway's route for every request that no other route matches


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: str  # the directory under functions/
    resource: str  # the function's logical id in template.yaml
    dialect: Dialect
    metadata: str | None = None  # the RFC 8414 member (or our own) that publishes it
    signed_in: bool = False  # needs a signed-in person (an ID token)

    @property
    def key(self) -> str:
        """API Gateway's route key, as in the event's `routeKey`."""
        return DEFAULT if self.path == DEFAULT else f"{self.method} {self.path}"


ROUTES: tuple[Route, ...] = (
    Route("POST", "/oauth/device/code", "device_authorization", "DeviceAuthorizationFunction", "oauth",
          "device_authorization_endpoint"),
    Route("GET", "/oauth/device/verify", "device_verification", "DeviceVerificationFunction", "product",
          "device_verification_endpoint", signed_in=True),
    Route("POST", "/oauth/device/verify", "device_verification", "DeviceVerificationFunction", "product",
          signed_in=True),
    Route("POST", "/auth/device/exchange", "device_exchange", "DeviceExchangeFunction", "product",
          "device_exchange_endpoint"),
    Route("POST", "/oauth/token", "token", "TokenFunction", "oauth", "token_endpoint"),
    Route("GET", "/oauth/token", "token", "TokenFunction", "legacy", "legacy_token_endpoint"),
    Route("POST", "/auth/refresh", "refresh", "RefreshFunction", "product", "refresh_endpoint"),
    Route("POST", "/auth/logout", "refresh", "RefreshFunction", "product", "logout_endpoint"),
    Route("GET", "/auth/sessions", "sessions", "SessionsFunction", "product", "sessions_endpoint", signed_in=True),
    Route("DELETE", "/auth/sessions/{id}", "sessions", "SessionsFunction", "product", signed_in=True),
    Route("POST", "/auth/sessions/revoke-all", "sessions", "SessionsFunction", "product", signed_in=True),
    Route("POST", "/oauth/revoke", "revocation", "RevocationFunction", "oauth", "revocation_endpoint"),
    Route("POST", "/oauth/introspect", "revocation", "RevocationFunction", "oauth", "introspection_endpoint"),
    Route("GET", "/.well-known/oauth-authorization-server", "discovery", "DiscoveryFunction", "none"),
    Route("GET", "/.well-known/jwks.json", "discovery", "DiscoveryFunction", "none", "jwks_uri"),
    Route("GET", "/device", "web", "WebFunction", "html"),
    Route("GET", "/device/sessions", "web", "WebFunction", "html"),
    # Unknown paths and methods: 404 not_found in the dialect of where they were sent, never API
    # Gateway's {"message":"Not Found"}.
    Route("ANY", DEFAULT, "discovery", "DiscoveryFunction", "product"),
)  # fmt: skip
DOCUMENTED = tuple(r for r in ROUTES if r.path != DEFAULT)  # the routes a client can name

BY_KEY: dict[str, Route] = {r.key: r for r in ROUTES}


def match(method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route API Gateway would match for a request, and its path parameters (literal paths before
    `{param}` paths, as API Gateway orders them); None: the `$default` route's."""
    method = method.upper()
    exact = BY_KEY.get(f"{method} {path}")
    if exact is not None and exact.path != DEFAULT:
        return exact, {}
    asked = path.split("/")
    for route in ROUTES:
        if route.method != method or "{" not in route.path:
            continue
        parts = route.path.split("/")
        if len(parts) != len(asked):
            continue
        params = {}
        for want, got in zip(parts, asked, strict=True):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    break
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            return route, params
    return None


def dialect(route_key: str | None, method: str, path: str) -> Dialect:
    """The dialect of the route API Gateway matched. A request no route matched (the `$default` route,
    or an unknown method) answers in the dialect of where it was sent: OAuth under /oauth/ (but the
    verify routes), the product envelope elsewhere."""
    matched = match(method, path)
    route = BY_KEY.get(route_key or "") or (matched[0] if matched else None)
    if route is not None and route.path != DEFAULT:
        return route.dialect
    if path.startswith("/oauth/") and not path.startswith("/oauth/device/verify"):
        return "oauth"
    return "product"
