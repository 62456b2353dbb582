"""HTTP plumbing shared by every function: the resolver, request parsing, responses, error dialects.

Handlers stay thin: route, parse (here), call one function of a flow (`device`, `sessions`), answer (here).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import ipaddress
import json
import traceback
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from pydantic import BaseModel, ValidationError

from authcore import clock, errors, routes, runtime
from authcore.envelopes import ErrorDetail, LegacyError, OAuthError, ProductError
from authcore.observability import logger, tracer
from authcore.settings import ConfigurationError

# The flows' types are imported where a request needs them, not here: every function imports this
# module, and they bring the store, boto3 and the key handling, which the page, for one, never uses.
# A function that uses them has them already (its handler imports `device` or `sessions`).
if TYPE_CHECKING:
    from authcore.clients import Caller
    from authcore.device import Requester
    from authcore.envelopes import RefreshRequest
    from authcore.issuance import Context

MAX_BODY_BYTES = 16 * 1024
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
REFRESH_COOKIE = "refresh_token"
COOKIE_PATH = "/auth"
# RFC 9745 (Deprecation: @<epoch>) and RFC 8288 (Link) for the legacy GET /oauth/token.
LEGACY_HEADERS = {"Deprecation": "@1767225600", "Link": '</oauth/token>; rel="successor-version"'}
BASE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache"}

Dialect = Literal["oauth", "product", "legacy"]


def dialect_of(route_key: str | None, method: str, path: str) -> Dialect:
    """How errors are spoken on this route (routes.ROUTES); a route with no error dialect of its own
    (the public documents, the page) answers its rare errors with the product envelope."""
    spoken = routes.dialect(route_key, method, path)
    return spoken if spoken in ("oauth", "legacy") else "product"


# ---------------------------------------------------------------- responses


def json_response(
    body: BaseModel | dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    cookies: list[Cookie] | None = None,
) -> Response[str]:
    if isinstance(body, BaseModel):
        text = body.model_dump_json(exclude_none=not getattr(body, "keep_nulls", False))
    else:
        text = json.dumps(body)
    return Response(
        status_code=status,
        content_type=JSON,
        body=text,
        headers={**BASE_HEADERS, **(headers or {})},
        cookies=cookies,
    )


def public_document(app: APIGatewayHttpResolver, body: dict[str, Any], max_age: int) -> Response[str]:
    """A public document (the metadata, the JWKS): cacheable by anyone for ``max_age`` seconds, with an
    ETag, so that resource servers' caches and CDNs answer most fetches without reaching a function; a
    request that names the current ETag (If-None-Match) gets 304 and no body. Everything else this
    service answers is no-store."""
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
    headers = {"Cache-Control": f"public, max-age={max_age}", "ETag": etag}
    asked = header(app, "if-none-match") or ""
    if etag in {tag.strip().removeprefix("W/") for tag in asked.split(",")} or asked.strip() == "*":
        return Response(status_code=304, content_type=JSON, body="", headers=headers)
    return Response(status_code=200, content_type=JSON, body=text, headers=headers)


def refresh_cookie(value: str, max_age: int) -> Cookie:
    """HttpOnly; Secure; SameSite=Strict; Path=/auth; Max-Age = the family's remaining lifetime."""
    return Cookie(
        name=REFRESH_COOKIE,
        value=value,
        path=COOKIE_PATH,
        secure=True,
        http_only=True,
        max_age=max_age,
        same_site=SameSite.STRICT_MODE,
    )


def render_problem(problem: errors.Problem, dialect: Dialect, request_id: str) -> Response[str]:
    spoken = problem.spoken
    headers: dict[str, str] = {}
    retry_after = problem.retry_after
    if retry_after is None and (spoken.product_status in (429, 503) or spoken.oauth_status == 503):
        retry_after = 1  # the contract: 429 and 503 always say when to come back
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if dialect == "product":
        body: BaseModel = ProductError(
            status=spoken.product_status,
            message=problem.message,
            type=spoken.product_type,
            details=[ErrorDetail.model_validate(d) for d in problem.details],
            request_id=request_id,
        )
        return json_response(body, status=spoken.product_status, headers=headers)
    if spoken.oauth_error == "invalid_client" and problem.basic_auth:
        headers["WWW-Authenticate"] = 'Basic realm="token", charset="UTF-8"'
    if dialect == "legacy":
        status = spoken.oauth_status if spoken.oauth_status < 500 else 500
        body = LegacyError(
            errorMessage=spoken.title,
            errorDetails=problem.notes or [problem.message],
            errorCode=spoken.oauth_error,
        )
        return json_response(body, status=status, headers={**headers, **LEGACY_HEADERS})
    body = OAuthError(error=spoken.oauth_error, error_description=problem.message, interval=problem.interval)
    return json_response(body, status=spoken.oauth_status, headers=headers)


# ---------------------------------------------------------------- the resolver


def make_app(*, typed_parameters: bool = False) -> APIGatewayHttpResolver:
    """A function's resolver. ``typed_parameters``: its routes declare query parameters with
    Powertools' ``Query`` (validated by its OpenAPI middleware, errors through ``_invalid`` below).
    Bodies are parsed here (``json_body``, ``oauth_params``), so the others leave the middleware out:
    it costs every request of theirs the work of a route signature it would find empty."""
    app = APIGatewayHttpResolver(enable_validation=typed_parameters)

    def current() -> tuple[Dialect, str]:
        event = app.current_event
        spoken = dialect_of(event.get("routeKey"), event.request_context.http.method, event.raw_path)
        return spoken, event.request_context.request_id

    @app.exception_handler(errors.Problem)  # type: ignore[untyped-decorator]
    def _problem(exc: errors.Problem) -> Response[str]:
        dialect, request_id = current()
        if exc.spoken.product_status >= 500:
            logger.warning("answered with a fault", extra={"problem": exc.kind})
        return render_problem(exc, dialect, request_id)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    def _invalid(exc: RequestValidationError) -> Response[str]:
        dialect, request_id = current()
        return render_problem(validation_problem(exc.errors(), dialect), dialect, request_id)

    @app.exception_handler(NotFoundError)  # type: ignore[untyped-decorator]
    def _not_found(exc: NotFoundError) -> Response[str]:
        dialect, request_id = current()
        return render_problem(errors.NotFound("No such route."), dialect, request_id)

    @app.exception_handler(Exception)  # type: ignore[untyped-decorator]
    def _unexpected(exc: Exception) -> Response[str]:
        dialect, request_id = current()
        problem = errors.dependency_problem(exc)
        if isinstance(exc, ConfigurationError):
            problem = errors.InternalError()
            logger.error(
                "invalid configuration", extra={"error_type": type(exc).__name__, "detail": str(exc)}
            )
        elif problem is None:
            problem = errors.InternalError()
            # type and stack only: an exception's text may quote input, and input may hold a secret
            frames = [
                f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}:{f.name}"
                for f in traceback.extract_tb(exc.__traceback__)
            ]
            logger.error("unexpected error", extra={"error_type": type(exc).__name__, "frames": frames})
        else:
            logger.warning(
                "dependency fault", extra={"problem": problem.kind, "error_type": type(exc).__name__}
            )
        return render_problem(problem, dialect, request_id)

    return app


def entrypoint(app: APIGatewayHttpResolver) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda handler: correlation id from the request id, tracing without payloads. The event is
    never logged: it holds codes, tokens and cookies. (Metrics are in the audit lines themselves:
    observability.audit; nothing is left to flush after the request.)"""

    @logger.inject_lambda_context(log_event=False)
    @tracer.capture_lambda_handler(capture_response=False, capture_error=False)
    def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        # the correlation id: API Gateway's request id (correlation_paths.API_GATEWAY_HTTP, read here
        # rather than by a JMESPath search per request)
        context_of_request = event.get("requestContext")
        logger.set_correlation_id(
            context_of_request.get("requestId") if isinstance(context_of_request, dict) else None
        )
        return app.resolve(event, context)

    return lambda_handler


def context(app: APIGatewayHttpResolver) -> Context:
    from authcore.issuance import Context

    settings = runtime.settings()
    issuer = settings.issuer
    if not issuer:
        rc = app.current_event.request_context
        stage = "" if rc.stage in ("$default", "", None) else f"/{rc.stage}"
        issuer = f"https://{rc.domain_name}{stage}"
    return Context(
        store=runtime.store(),
        settings=settings,
        clients=runtime.clients(),
        keys=runtime.keyset,
        issuer=issuer,
        now=clock.now(),
    )


# ---------------------------------------------------------------- requests


def validation_problem(errs: Any, dialect: Dialect, prefix: str | None = None) -> errors.Problem:
    """pydantic errors -> 422 with details (product) or invalid_request naming the fields (OAuth).
    Inputs are never echoed: they may be secrets."""
    details = []
    for err in errs:
        loc = [str(p) if not isinstance(p, int) else p for p in err.get("loc", ())]
        if prefix is not None:
            loc = [prefix, *loc]
        details.append({"loc": loc, "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))})
    if dialect == "product":
        where = {d["loc"][0] for d in details if d["loc"]}
        message = "Query parameters failed validation." if where == {"query"} else None
        return errors.ValidationFailed(message, details=details)
    fields = ", ".join(f"{'.'.join(str(p) for p in d['loc'][1:] or d['loc'])}: {d['msg']}" for d in details)
    return errors.InvalidRequest(f"Invalid parameters ({fields}).")


def _media_type(app: APIGatewayHttpResolver) -> str:
    raw = header(app, "content-type") or ""
    return raw.split(";", 1)[0].strip().lower()


def _raw_body(app: APIGatewayHttpResolver) -> str:
    event = app.current_event
    body = event.body or ""
    if event.is_base64_encoded:
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise errors.InvalidRequest("The body is not valid base64.") from None
    else:
        raw = body.encode("utf-8", "surrogatepass")
    if len(raw) > MAX_BODY_BYTES:
        raise errors.InvalidRequest(f"The body is larger than {MAX_BODY_BYTES // 1024} KiB.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.InvalidRequest("The body is not valid UTF-8.") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (RFC 8259)")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # json.loads would build one per call


def _json_object(text: str) -> dict[str, Any]:
    try:
        data = _DECODER.decode(text)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser allows
        raise errors.InvalidRequest("The body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise errors.InvalidRequest("The body must be a JSON object.")
    return data


def _form(text: str) -> dict[str, str]:
    """RFC 6749 §3.2: parameters without a value are omitted; none may appear twice."""
    try:
        pairs = urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=64, errors="strict"
        )
    except (ValueError, UnicodeDecodeError):
        raise errors.InvalidRequest("The form body is malformed.") from None
    out: dict[str, str] = {}
    for name, value in pairs:
        if name in out:
            raise errors.InvalidRequest(f"The parameter {name!r} appears more than once.")
        if value != "":
            out[name] = value
    return out


def json_body[M: BaseModel](app: APIGatewayHttpResolver, model: type[M]) -> M:
    """A product-API JSON body: 400 when it is not a JSON object, 422 when it fails the schema."""
    if _media_type(app) != JSON:
        raise errors.InvalidRequest("Send the body as application/json.")
    data = _json_object(_raw_body(app))
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc.errors(), "product", prefix="body") from None


def oauth_params[M: BaseModel](app: APIGatewayHttpResolver, model: type[M]) -> M:
    """OAuth parameters: a form body (the standard), JSON (accepted too), or the query string for the
    legacy GET. Errors in the OAuth dialect."""
    event = app.current_event
    if event.request_context.http.method.upper() == "GET":
        data: dict[str, Any] = _form(event.raw_query_string or "")
        if "client_secret" in data:  # RFC 6749 §2.3.1: never in a URL (logs, proxies and history keep it)
            raise errors.InvalidRequest(
                "A client_secret may not be sent in the query string; use HTTP Basic, or POST /oauth/token."
            )
    else:
        media = _media_type(app)
        text = _raw_body(app)
        if media == FORM:
            data = _form(text)
        elif media == JSON:
            data = _json_object(text)
        else:
            raise errors.InvalidRequest("Send parameters as application/x-www-form-urlencoded.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        absent = [str(e["loc"][0]) for e in exc.errors() if e.get("type") == "missing" and e.get("loc")]
        if absent and len(absent) == len(exc.errors()):  # list every one (the legacy errorDetails does)
            if (
                "client_id" in model.model_fields
                and not data.get("client_id")
                and basic_credentials(app) is None
            ):
                absent.append("client_id")
            raise errors.missing_parameters(absent) from None
        raise validation_problem(exc.errors(), "oauth") from None


def basic_credentials(app: APIGatewayHttpResolver) -> tuple[str, str] | None:
    """RFC 6749 §2.3.1: HTTP Basic with form-urlencoded id and secret."""
    scheme, _, value = (header(app, "authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise errors.InvalidClient("Malformed HTTP Basic credentials.", basic_auth=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise errors.InvalidClient("Malformed HTTP Basic credentials.", basic_auth=True)
    return urllib.parse.unquote_plus(client_id), urllib.parse.unquote_plus(secret)


def client_credentials(
    app: APIGatewayHttpResolver, client_id: str | None, client_secret: str | None
) -> tuple[str | None, str | None, bool]:
    """(client_id, client_secret, used_basic). One authentication method per request."""
    basic = basic_credentials(app)
    if basic is None:
        return client_id, client_secret, False
    if client_secret is not None:
        raise errors.InvalidRequest("Use one client authentication method, not two.")
    if client_id is not None and client_id != basic[0]:
        raise errors.InvalidClient(
            "The client_id does not match the HTTP Basic credentials.", basic_auth=True
        )
    return basic[0], basic[1] or None, True


def caller(
    app: APIGatewayHttpResolver, client_id: str | None = None, client_secret: str | None = None
) -> Caller:
    """What this request says of its client: id and secret (body or HTTP Basic) and X-Client-Version.
    The flows decide what that admits (clients.admit)."""
    from authcore.clients import Caller

    cid, secret, basic = client_credentials(app, client_id, client_secret)
    return Caller(client_id=cid, secret=secret, basic=basic, version=header(app, "x-client-version"))


@dataclass(frozen=True)
class PresentedToken:
    token: str
    in_body: bool
    in_cookie: bool
    set_cookie: bool = False  # the body asked for its successor in the cookie (a browser app's first one)

    @property
    def to_cookie(self) -> bool:
        """The successor goes only into the HttpOnly cookie: the token came in it, or the body asked."""
        return self.in_cookie or self.set_cookie


def presented_refresh_token(
    app: APIGatewayHttpResolver, model: type[RefreshRequest], *, required: bool = True, moves: bool = True
) -> PresentedToken:
    """The refresh token from the JSON body or the cookie (both, and different: 400). A cookie is
    honoured only from an allowed Origin: the cookie rides along on any request the browser sends. A
    body with `"set_cookie": true` moves the session into the cookie (a browser app's first refresh
    after signing in), from an allowed Origin only as well."""
    from_body, set_cookie = None, False
    if (app.current_event.body or "") != "":
        body = json_body(app, model)
        from_body, set_cookie = body.refresh_token, body.set_cookie and moves  # sign-out moves nothing
    from_cookie = cookie(app, REFRESH_COOKIE)
    if from_body and from_cookie and from_body != from_cookie:
        raise errors.InvalidRequest("The refresh token in the body and in the cookie differ; send one.")
    if from_cookie or set_cookie:
        origin = (header(app, "origin") or "").rstrip("/")
        if origin not in runtime.settings().allowed_origins:
            raise errors.AccessDenied("This origin may not use the session cookie.")
    if set_cookie and not from_body:
        raise errors.InvalidRequest("set_cookie moves a refresh token sent in the body into the cookie.")
    token = from_body or from_cookie
    if not token and required:
        raise errors.InvalidGrant("No refresh token was presented.")
    return PresentedToken(
        token or "", in_body=bool(from_body), in_cookie=bool(from_cookie), set_cookie=set_cookie
    )


ORIGIN_VERIFY = "x-origin-verify"  # the custom origin header a CloudFront distribution in front adds


def requester(app: APIGatewayHttpResolver) -> Requester:
    """Who sent this request, as far as the edge says: source IP (API Gateway's, not a header a client
    could set), User-Agent, X-Client-Version, and, behind CloudFront (TRUST_EDGE_HEADERS), the viewer's
    address, country and city from CloudFront's headers, on a request that came through it."""
    from authcore.device import Requester

    event = app.current_event
    source = event.request_context.http.source_ip or None
    edge = through_the_edge(app)
    ip = source
    if edge:
        # behind CloudFront, API Gateway's source address is an edge server's: the viewer's is in its
        # header. Without a readable one (an origin request policy that leaves it out), the device's
        # address is unknown (never the edge server's: two people behind one edge server are not "the
        # same network"), and the per-address limit counts the edge server's: it fails closed.
        ip = _viewer_address(header(app, "cloudfront-viewer-address"))
        if ip is None:
            _warn_no_viewer_address()
    return Requester(
        ip=ip,
        source_ip=source,
        user_agent=header(app, "user-agent"),
        client_version=header(app, "x-client-version"),
        country=header(app, "cloudfront-viewer-country") if edge else None,
        city=header(app, "cloudfront-viewer-city") if edge else None,
    )


def through_the_edge(app: APIGatewayHttpResolver) -> bool:
    """Whether this request came through the CloudFront distribution the deployment says is in front:
    its X-Origin-Verify header (which the distribution adds, and a client that goes around it does not
    know) hashes to one of EDGE_ORIGIN_SECRET_SHA256 (a comma-separated list: the current secret and,
    while it is being changed, the next). Only then are CloudFront's viewer headers believed; any
    other request, sent to the API directly, is taken as API Gateway saw it. (Only the secret's digest
    is configured, so the functions' configuration holds no secret.)"""
    settings = runtime.settings()
    if not settings.trust_edge_headers:
        return False
    presented = header(app, ORIGIN_VERIFY)
    if presented is None:
        return False
    digest = hashlib.sha256(presented.encode("utf-8", "surrogatepass")).hexdigest()
    # every accepted digest compared (the current secret and, while it is being changed, the next)
    matches = [hmac.compare_digest(digest, accepted) for accepted in settings.edge_origin_secrets]
    return any(matches)


@functools.cache  # once per execution environment: a misconfigured distribution, not a client's doing
def _warn_no_viewer_address() -> None:
    logger.warning(
        "a request through CloudFront without a readable CloudFront-Viewer-Address: add it to the"
        " distribution's origin request policy (docs/capacity.md); until then the device's address is"
        " unknown and the per-address limit counts CloudFront's edge servers"
    )


def _viewer_address(value: str | None) -> str | None:
    """CloudFront-Viewer-Address: `198.51.100.7:46532` or `2001:db8::1:46532` (the port always last).
    A repeated header (API Gateway joins the values with commas) is not read: which value the
    distribution added is not something to guess."""
    if not value or ":" not in value or "," in value:
        return None
    address = value.rsplit(":", 1)[0].strip("[]")
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def header(app: APIGatewayHttpResolver, name: str) -> str | None:
    """A request header. API Gateway's payload 2.0 names headers in lower case; the event's raw map is
    read as it is (Powertools' ``headers`` builds a case-insensitive copy of every header on each
    access), and a name in another case is still found (an event written by hand)."""
    raw: dict[str, str] = app.current_event.get("headers") or {}
    wanted = name.lower()
    value = raw.get(wanted)
    if value is None:
        value = next((v for k, v in raw.items() if k.lower() == wanted), None)
    return value if value else None


def cookie(app: APIGatewayHttpResolver, name: str) -> str | None:
    for raw in app.current_event.cookies or []:
        key, sep, value = raw.strip().partition("=")
        if sep and key.strip() == name:
            return value.strip() or None
    return None


def signed_in_claims(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """The claims of the person's ID token (`Authorization: Bearer`), verified here rather than by an
    API Gateway authorizer, so that a missing or bad token is the envelope's 401 (authcore.identity)."""
    return runtime.identity().claims(header(app, "authorization"), clock.now())
