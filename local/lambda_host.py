"""Run a Lambda function's handler in this process the way the HTTP API would call it.

Shared by the tests (which invoke every handler with `events/*.json`, as `sam local invoke -e` does)
and by the local server. It builds API Gateway HTTP API payload-2.0 events and Lambda contexts.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
_TEXT_TYPES = ("application/json", "application/x-www-form-urlencoded", "text/")
_modules: dict[str, ModuleType] = {}
_lock = threading.Lock()


def load_function(code_uri: str, handler: str = "app.lambda_handler") -> Any:
    """Import a function's handler from its CodeUri, once per process, under a unique module name."""
    module_name, _, attr = handler.rpartition(".")
    path = (ROOT / code_uri / f"{module_name.replace('.', '/')}.py").resolve()
    key = str(path)
    with _lock:
        module = _modules.get(key)
        if module is None:
            unique = f"fn_{path.parent.name}_{module_name.replace('.', '_')}"
            spec = importlib.util.spec_from_file_location(unique, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot load {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[unique] = module
            spec.loader.exec_module(module)
            _modules[key] = module
    return getattr(module, attr)


@dataclass
class LambdaContext:
    function_name: str = "local"
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _deadline: float = field(default_factory=lambda: time.monotonic() + 10)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:000000000000:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


SIGN_IN: Callable[[dict[str, Any]], str] | None = None  # claims -> an Authorization header value


def http_event(
    method: str,
    path: str,
    *,
    route_key: str | None = None,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | str | None = None,
    body: str | bytes | dict[str, Any] | None = None,
    form: dict[str, str] | None = None,
    cookies: list[str] | None = None,
    claims: dict[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
    domain: str = "auth.example.test",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event, as API Gateway builds it.

    ``claims``: sign a person in, with an ID token for these claims made by ``SIGN_IN`` (the tests install
    their identity provider there) in `Authorization`, as the verification page sends it."""
    hdrs = {k.lower(): v for k, v in (headers or {}).items()}
    if claims is not None:
        if SIGN_IN is None:
            raise RuntimeError("http_event(claims=...) needs an identity provider: set lambda_host.SIGN_IN")
        hdrs.setdefault("authorization", SIGN_IN(claims))
    raw_body: bytes | None = None
    if form is not None:
        raw_body = urlencode(form).encode()
        hdrs.setdefault("content-type", "application/x-www-form-urlencoded")
    elif isinstance(body, dict):
        raw_body = json.dumps(body).encode()
        hdrs.setdefault("content-type", "application/json")
    elif isinstance(body, str):
        raw_body = body.encode("utf-8", "surrogatepass")
    elif isinstance(body, bytes):
        raw_body = body
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    from authcore import routes  # the layer is on the path wherever functions run

    matched = routes.match(method, path) if route_key is None else None
    if matched is not None:  # as API Gateway matches it: the route's key, and its path parameters
        route_key = matched[0].key
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key or f"{method.upper()} {path}",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": {"host": domain, "user-agent": "local", **hdrs},
        "requestContext": {
            "accountId": "000000000000",
            "apiId": "local",
            "domainName": domain,
            "domainPrefix": domain.split(".")[0],
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": hdrs.get("user-agent", "local"),
            },
            "requestId": uuid.uuid4().hex[:16] + "=",
            "routeKey": route_key or f"{method.upper()} {path}",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": False,
    }
    if raw_query:
        params: dict[str, str] = {}
        from urllib.parse import parse_qsl

        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            params[key] = f"{params[key]},{value}" if key in params else value  # API Gateway joins repeats
        event["queryStringParameters"] = params
    if matched is not None and matched[1]:
        event["pathParameters"] = matched[1]
    if cookies:
        event["cookies"] = cookies
    if raw_body is not None:
        content_type = hdrs.get("content-type", "")
        if content_type.startswith(_TEXT_TYPES):
            try:
                event["body"] = raw_body.decode("utf-8")
            except UnicodeDecodeError:
                event["body"] = base64.b64encode(raw_body).decode()
                event["isBase64Encoded"] = True
        else:  # API Gateway base64-encodes bodies it does not consider text
            event["body"] = base64.b64encode(raw_body).decode()
            event["isBase64Encoded"] = True
    return event


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    cookies: list[str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def invoke(handler: Any, event: dict[str, Any], function_name: str = "local") -> HttpResult:
    """Call a handler with an event and turn its payload-2.0 answer into an HTTP result."""
    out = handler(event, LambdaContext(function_name=function_name))
    body = out.get("body") or ""
    if out.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    headers = {k.lower(): v for k, v in (out.get("headers") or {}).items()}
    for k, values in (out.get("multiValueHeaders") or {}).items():
        headers[k.lower()] = ", ".join(values)
    return HttpResult(int(out["statusCode"]), headers, list(out.get("cookies") or []), body)
