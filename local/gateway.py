"""The HTTP front of the local stack: what API Gateway (HTTP API, payload format 2.0) does in front of
the functions.

`Gateway.handle` turns one HTTP request into the event API Gateway would send (headers lower-cased,
cookies as an array, raw and parsed query string, body base64-encoded where API Gateway would, a
requestContext with requestId, method, path, sourceIp, domainName, stage `$default` and the route key),
emulates the JWT authorizer and CORS where the template configures them, invokes the function, and turns
its answer back into HTTP (each cookie its own Set-Cookie). Unmatched routes get API Gateway's 404
`{"message":"Not Found"}`; a function that fails gets its 500 `{"message":"Internal Server Error"}`.

`HttpFront` is the threaded HTTP server around it. It logs one access line per request: a JSON object
with the fields of the HTTP API's access log (`ACCESS_LOG_FIELDS`, the same names as the template's
`AccessLogSettings`, docs/operations.md), every value a string and `-` where API Gateway writes `-`, plus
`function` (the function's logical id, which only the local stack knows). Never the query string, the
body, cookies or the Authorization header: they carry codes and tokens.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import re
import socket
import socketserver
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import IO, Any
from urllib.parse import urlsplit

import jwt

from local.lambda_host import http_event

MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
JWKS_REFRESH_SECONDS = 30.0

# The access line's fields: the keys of the HTTP API's access log format (template.yaml, HttpApi
# AccessLogSettings), each from the same `$context` variable. tests/integration/test_operations.py
# checks that the two lists are the same.
ACCESS_LOG_FIELDS = (
    "requestId",  # $context.requestId
    "requestTime",  # $context.requestTime (CLF: 30/Nov/2026:09:00:00 +0000)
    "requestTimeEpoch",  # $context.requestTimeEpoch (milliseconds)
    "httpMethod",  # $context.httpMethod
    "path",  # $context.path (never the query string)
    "routeKey",  # $context.routeKey
    "status",  # $context.status
    "protocol",  # $context.protocol
    "responseLength",  # $context.responseLength
    "responseLatency",  # $context.responseLatency (milliseconds)
    "integrationLatency",  # $context.integrationLatency (milliseconds; - when no function was called)
    "integrationError",  # $context.integrationErrorMessage
    "error",  # $context.error.message (API Gateway's own answers: Not Found, Unauthorized, ...)
    "sourceIp",  # $context.identity.sourceIp
    "userAgent",  # $context.identity.userAgent
    "domainName",  # $context.domainName
)
LOCAL_ACCESS_LOG_FIELDS = ("function",)  # the local stack's addition: the function's logical id


@dataclass(frozen=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    function: str | None = None
    # What the access line says besides the answer itself (API Gateway's $context variables).
    route_key: str | None = None
    integration_ms: float | None = None  # the function's invocation, when one was called
    integration_error: str | None = None  # why the invocation failed
    gateway_error: str | None = None  # the message of API Gateway's own answer

    @classmethod
    def message(cls, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """API Gateway's own answers: a JSON object with a message."""
        body = json.dumps({"message": text}, separators=(",", ":")).encode()
        return cls(status, [("content-type", "application/json"), *headers], body, gateway_error=text)


# ---------------------------------------------------------------- routes


@dataclass(frozen=True)
class Target:
    """One route of the template and the function behind it."""

    method: str
    path: str
    function: str  # the function's logical id
    code_uri: str
    handler: str
    uses_jwt_authorizer: bool

    @property
    def route_key(self) -> str:
        return "$default" if self.path == "$default" else f"{self.method} {self.path}"


class Router:
    """Matches like API Gateway: literal paths before `{param}` paths before `{proxy+}`; a method
    before ANY."""

    def __init__(self, targets: Iterable[Target]) -> None:
        self._routes: list[tuple[tuple[int, int, int], re.Pattern[str], Target]] = []
        self.default: Target | None = None  # the $default route: every request no other route matches
        seen: set[str] = set()
        for target in targets:
            if target.route_key in seen:
                raise ValueError(f"route {target.route_key} is defined twice")
            seen.add(target.route_key)
            if target.route_key == "$default":
                self.default = target
                continue
            pattern, params, greedy = _compile(target.path)
            rank = (1 if greedy else 0, params, 1 if target.method == "ANY" else 0)
            self._routes.append((rank, pattern, target))
        self._routes.sort(key=lambda route: route[0])

    @property
    def targets(self) -> list[Target]:
        return [target for _, _, target in self._routes]

    def match(self, method: str, path: str) -> tuple[Target, dict[str, str]] | None:
        for _, pattern, target in self._routes:
            if target.method not in (method, "ANY"):
                continue
            found = pattern.fullmatch(path)
            if found:
                return target, found.groupdict()
        return (self.default, {}) if self.default is not None else None


def _compile(path: str) -> tuple[re.Pattern[str], int, bool]:
    regex, params, greedy = "", 0, False
    for part in re.split(r"(\{[^}]+\})", path):
        if part.startswith("{") and part.endswith("}"):
            name = part[1:-1]
            params += 1
            if name.endswith("+"):
                greedy = True
                regex += f"(?P<{name[:-1]}>.+)"
            else:
                regex += f"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(regex), params, greedy


# ---------------------------------------------------------------- the JWT authorizer


class JwtAuthorizer:
    """API Gateway's JWT authorizer: the token from `Authorization` (a `Bearer ` prefix is dropped),
    an RS256 signature by a key of the issuer's JWKS (by `kid`), `iss` equal to the issuer, `exp` (and
    `nbf`, `iat`) valid, and `aud` (or, without one, `client_id`) among the audiences."""

    def __init__(self, issuer: str, audiences: Iterable[str], jwks_url: str) -> None:
        self.issuer = issuer
        self.audiences = frozenset(audiences)
        self.jwks_url = jwks_url
        self._keys: dict[str, Any] = {}
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def load_keys(self) -> None:
        with urllib.request.urlopen(self.jwks_url, timeout=5) as response:  # noqa: S310 - the local endpoint
            document = json.load(response)
        keys = {}
        for key in jwt.PyJWKSet.from_dict(document).keys:
            if key.key_id:
                keys[key.key_id] = key.key
        with self._lock:
            self._keys = keys
            self._fetched_at = time.monotonic()

    def _key(self, kid: str) -> Any:
        with self._lock:
            key = self._keys.get(kid)
            stale = time.monotonic() - self._fetched_at > JWKS_REFRESH_SECONDS
        if key is None and stale:  # a key the issuer rotated in: refetch, at most every 30 s
            try:
                self.load_keys()
            except (OSError, ValueError, jwt.PyJWTError):
                return None
            with self._lock:
                key = self._keys.get(kid)
        return key

    def claims(self, authorization: str | None) -> dict[str, Any] | None:
        """The token's verified claims, or None: API Gateway answers 401 and never calls the function."""
        token = (authorization or "").strip()
        if token[:7].lower() == "bearer ":
            token = token[7:].strip()
        if not token:
            return None
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(str(header.get("kid", "")))
            if key is None:
                return None
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.PyJWTError:
            return None
        audience = claims.get("aud")
        presented = set(audience if isinstance(audience, list) else [audience]) if audience else set()
        if not presented and isinstance(claims.get("client_id"), str):
            presented = {claims["client_id"]}
        if not presented & self.audiences:
            return None
        return claims


def claims_as_strings(claims: dict[str, Any]) -> dict[str, str]:
    """API Gateway hands the function every claim as a string: numbers and booleans as text, arrays as
    `[a b]`."""

    def text(value: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + " ".join(text(item) for item in value) + "]"
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    return {name: text(value) for name, value in claims.items()}


# ---------------------------------------------------------------- CORS


@dataclass(frozen=True)
class Cors:
    allow_origins: tuple[str, ...] = ()
    allow_methods: tuple[str, ...] = ()
    allow_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    allow_credentials: bool = False
    max_age: int | None = None

    @classmethod
    def from_template(cls, config: dict[str, Any]) -> Cors:
        def strings(key: str) -> tuple[str, ...]:
            return tuple(str(item) for item in config.get(key) or ())

        max_age = config.get("MaxAge")
        return cls(
            allow_origins=tuple(o.rstrip("/") for o in strings("AllowOrigins")),
            allow_methods=strings("AllowMethods"),
            allow_headers=strings("AllowHeaders"),
            expose_headers=strings("ExposeHeaders"),
            allow_credentials=bool(config.get("AllowCredentials", False)),
            max_age=int(max_age) if max_age is not None else None,
        )

    def allows(self, origin: str) -> bool:
        return "*" in self.allow_origins or origin.rstrip("/") in self.allow_origins

    def _origin_headers(self, origin: str) -> list[tuple[str, str]]:
        allowed = "*" if "*" in self.allow_origins and not self.allow_credentials else origin
        headers = [("access-control-allow-origin", allowed)]
        if self.allow_credentials:
            headers.append(("access-control-allow-credentials", "true"))
        if allowed != "*":
            headers.append(("vary", "origin"))
        return headers

    def preflight(self, origin: str) -> Response:
        headers: list[tuple[str, str]] = []
        if self.allows(origin):
            headers = self._origin_headers(origin)
            if self.allow_methods:
                headers.append(("access-control-allow-methods", ",".join(self.allow_methods)))
            if self.allow_headers:
                headers.append(("access-control-allow-headers", ",".join(self.allow_headers)))
            if self.max_age is not None:
                headers.append(("access-control-max-age", str(self.max_age)))
        return Response(204, headers, b"")

    def decorate(self, response: Response, origin: str | None) -> Response:
        """API Gateway replaces whatever CORS headers the function sent with its own."""
        headers = [(k, v) for k, v in response.headers if not k.lower().startswith("access-control-")]
        if origin and self.allows(origin):
            headers += self._origin_headers(origin)
            if self.expose_headers:
                headers.append(("access-control-expose-headers", ",".join(self.expose_headers)))
        return dataclasses.replace(response, headers=headers)


# ---------------------------------------------------------------- the gateway


@dataclass
class Request:
    method: str
    target: str  # the request target as sent: path and query string
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    protocol: str = "HTTP/1.1"
    server_port: int = 80

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name]
        return ",".join(values) if values else None


Invoke = Callable[[Target, dict[str, Any]], dict[str, Any]]


@dataclass
class Gateway:
    router: Router
    invoke: Invoke
    authorizer: JwtAuthorizer | None = None
    cors: Cors | None = None
    default_domain: str = "localhost"
    errors: IO[str] = field(default_factory=lambda: sys.stderr)

    def handle(self, request: Request) -> Response:
        request_id = new_request_id()
        response = self._handle(request, request_id)
        if self.cors is not None and response.status != 204:
            response = self.cors.decorate(response, request.header("origin"))
        headers = [(k, v) for k, v in response.headers if k != "apigw-requestid"]
        headers.append(("apigw-requestid", request_id))
        return dataclasses.replace(response, headers=headers)

    def _handle(self, request: Request, request_id: str) -> Response:
        split = urlsplit(request.target)
        path = split.path or "/"
        method = request.method.upper()
        origin = request.header("origin")
        if (
            self.cors is not None
            and method == "OPTIONS"
            and origin
            and request.header("access-control-request-method")
        ):
            return self.cors.preflight(origin)
        matched = self.router.match(method, path)
        if matched is None:
            return Response.message(404, "Not Found")
        target, path_parameters = matched
        claims: dict[str, str] | None = None
        if target.uses_jwt_authorizer:
            verified = self.authorizer.claims(request.header("authorization")) if self.authorizer else None
            if verified is None:
                denied = Response.message(401, "Unauthorized", [("www-authenticate", "Bearer")])
                return dataclasses.replace(denied, route_key=target.route_key)
            claims = claims_as_strings(verified)
        event = self.event(request, target, path, split.query, path_parameters, claims)
        event["requestContext"]["requestId"] = request_id
        started = time.monotonic()
        try:
            result = self.invoke(target, event)
        except Exception as exc:  # the function failed: API Gateway answers 500 and says nothing more
            elapsed = (time.monotonic() - started) * 1000
            print(f"local stack: {target.function} failed: {exc}", file=self.errors, flush=True)
            timed_out = type(exc).__name__ == "InvocationTimeout"  # API Gateway: 503 on a function timeout
            failed = (
                Response.message(503, "Service Unavailable")
                if timed_out
                else Response.message(500, "Internal Server Error")
            )
            # The access line names the failure's type only: an exception's text can quote anything.
            return dataclasses.replace(
                failed,
                function=target.function,
                route_key=target.route_key,
                integration_ms=elapsed,
                integration_error=f"{target.function} failed: {type(exc).__name__}",
            )
        elapsed = (time.monotonic() - started) * 1000
        answered = _http_response(result, target.function)
        return dataclasses.replace(answered, route_key=target.route_key, integration_ms=elapsed)

    def event(
        self,
        request: Request,
        target: Target,
        path: str,
        raw_query: str,
        path_parameters: dict[str, str],
        claims: dict[str, str] | None,
    ) -> dict[str, Any]:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for name, value in request.headers:
            key = name.lower()
            if key == "cookie":  # payload 2.0 moves cookies out of the headers
                cookies += [c.strip() for c in value.split(";") if c.strip()]
            else:
                headers[key] = f"{headers[key]},{value}" if key in headers else value
        host = headers.get("host") or self.default_domain
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {request.source_ip}" if forwarded else request.source_ip
        headers["x-forwarded-port"] = str(request.server_port)
        headers["x-forwarded-proto"] = "http"
        event = http_event(
            request.method.upper(),
            path,
            route_key=target.route_key,
            headers=headers,
            query=raw_query,
            body=request.body or None,
            cookies=cookies or None,
            claims=claims,
            source_ip=request.source_ip,
            domain=host,
        )
        event["requestContext"]["http"]["protocol"] = request.protocol
        event["requestContext"]["apiId"] = "local"
        if path_parameters:
            event["pathParameters"] = path_parameters
        return event


def new_request_id() -> str:
    """Shaped like API Gateway's (base64 of 10 random bytes, e.g. `JKJaXmPLvHcESHA=`)."""
    return base64.b64encode(os.urandom(10)).decode()


def _http_response(result: dict[str, Any], function: str) -> Response:
    if "statusCode" not in result:  # API Gateway's inferred format: the whole answer is a JSON body
        return Response(200, [("content-type", "application/json")], json.dumps(result).encode(), function)
    headers: list[tuple[str, str]] = []
    for name, value in (result.get("headers") or {}).items():
        headers.append((str(name).lower(), str(value)))
    for name, values in (result.get("multiValueHeaders") or {}).items():
        headers.append((str(name).lower(), ", ".join(str(v) for v in values)))
    headers = [(k, v) for k, v in headers if k not in ("content-length", "connection", "transfer-encoding")]
    headers += [("set-cookie", str(cookie)) for cookie in result.get("cookies") or []]
    body = result.get("body")
    if body is None:
        raw = b""
    elif result.get("isBase64Encoded"):
        raw = base64.b64decode(body)
    else:
        raw = str(body).encode("utf-8")
    return Response(int(result["statusCode"]), headers, raw, function)


# ---------------------------------------------------------------- the HTTP server


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer has a Content-Length
    # Headers and body go out in two sends; with Nagle on, the body waits for the client's delayed ACK
    # (~40 ms on every kept-alive request).
    disable_nagle_algorithm = True

    timeout = 120  # an idle keep-alive connection is closed after this long

    def version_string(self) -> str:
        return "local-http-api"

    server: HttpFront

    def handle_one_request(self) -> None:
        self._started = time.monotonic()
        self._started_at = time.time()
        super().handle_one_request()

    def _read_body(self) -> bytes | None:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY_BYTES:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        if length > MAX_BODY_BYTES:
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _serve(self) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self._send(Response.message(400, "Bad Request"), close=True)
            return
        if body is None:
            self._send(Response.message(413, "Request Entity Too Large"), close=True)
            return
        request = Request(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            server_port=self.server.server_address[1],
        )
        gateway = self.server.gateway
        try:
            response = gateway.handle(request) if gateway else Response.message(503, "Service Unavailable")
        except Exception as exc:
            print(
                f"local stack: the gateway failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True
            )
            response = Response.message(500, "Internal Server Error")
        self._send(response)

    def _send(self, response: Response, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        if close:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        self._access_line(response)  # before the body: a client that has its answer finds the line
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _access_line(self, response: Response) -> None:
        # The path only: the query string, body, cookies and Authorization header can hold secrets.
        gateway = self.server.gateway
        fields = _access_fields(
            self._started_at,
            source_ip=self.client_address[0],
            status=response.status,
            method=self.command,
            path=urlsplit(self.path).path or "/",
            protocol=self.request_version,
            user_agent=self.headers.get("user-agent"),
            domain=self.headers.get("host") or (gateway.default_domain if gateway else None),
        )
        fields["requestId"] = next((v for k, v in response.headers if k == "apigw-requestid"), "-")
        fields["routeKey"] = response.route_key or "-"
        fields["responseLength"] = str(len(response.body))
        fields["responseLatency"] = str(round((time.monotonic() - self._started) * 1000))
        if response.integration_ms is not None:
            fields["integrationLatency"] = str(round(response.integration_ms))
        fields["integrationError"] = response.integration_error or "-"
        fields["error"] = response.gateway_error or "-"
        fields["function"] = response.function or "-"
        self.server.access_log(json.dumps(fields, separators=(",", ":")))

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _serve

    def __getattr__(self, name: str) -> Any:
        """Any other method (TRACE, PROPFIND, ...) goes to the routes too, as API Gateway sends it to the
        $default route, rather than the standard library's 501 page."""
        if name.startswith("do_") and name[3:].isalpha() and name[3:].isupper():
            return self._serve
        raise AttributeError(name)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # replaced by _access_line

    def log_error(self, format: str, *args: Any) -> None:
        # The default quotes the request line, query string included: say only what went wrong (the
        # access line of a request that never reached the gateway, without its path).
        code = args[0] if args and isinstance(args[0], int) else "-"
        started = getattr(self, "_started_at", time.time())
        fields = _access_fields(started, source_ip=self.client_address[0], status=code)
        fields["error"] = "Bad Request"
        fields["function"] = "-"
        self.server.access_log(json.dumps(fields, separators=(",", ":")))


def _access_fields(
    started_at: float,
    *,
    source_ip: str,
    status: int | str,
    method: str | None = None,
    path: str | None = None,
    protocol: str | None = None,
    user_agent: str | None = None,
    domain: str | None = None,
) -> dict[str, str]:
    """An access line's fields in `ACCESS_LOG_FIELDS` order, `-` for what is not known (as API Gateway
    writes them): the caller fills in what it knows of the answer."""
    fields = dict.fromkeys(ACCESS_LOG_FIELDS, "-")
    fields["requestTime"] = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(started_at))
    fields["requestTimeEpoch"] = str(int(started_at * 1000))
    fields["httpMethod"] = method or "-"
    fields["path"] = path or "-"
    fields["status"] = str(status)
    fields["protocol"] = protocol or "-"
    fields["sourceIp"] = source_ip
    fields["userAgent"] = user_agent or "-"
    fields["domainName"] = domain or "-"
    return fields


class HttpFront(ThreadingHTTPServer):
    """A threaded HTTP server in front of a Gateway. It binds in the constructor (port 0: any free
    port), so the caller learns the port, and sets `gateway` before serving."""

    daemon_threads = True
    request_queue_size = 128  # socketserver's default backlog of 5 stalls a burst of new connections
    gateway: Gateway | None

    def __init__(self, host: str, port: int, log: IO[str] | None = None) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.gateway = None
        self._log = log if log is not None else sys.stderr
        self._log_lock = threading.Lock()
        super().__init__((host, port), _RequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks the host name up (getfqdn), which can stall: not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away is not worth a traceback; anything else is worth one line."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            return
        self.access_log(f"local stack: the HTTP server failed: {type(error).__name__}")

    def access_log(self, line: str) -> None:
        with self._log_lock:
            print(line, file=self._log, flush=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])
