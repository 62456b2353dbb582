"""JSON over HTTP on urllib, and every way a request can fail turned into one readable line.

The service answers errors in two dialects (see docs/api.md): the product envelope
``{"status", "message", "type", "request_id", ...}`` and the OAuth one ``{"error", "error_description"}``.
Both become an :class:`ApiError` with a ``type`` to branch on. A server that cannot be reached becomes
:class:`Unreachable`; one that answers something other than JSON becomes :class:`BadAnswer`.
"""

from __future__ import annotations

import email.message
import email.utils
import http.client
import ipaddress
import json
import platform
import socket
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from authcli import __version__

TIMEOUT = 15.0  # seconds, per request
MAX_BODY = 1 << 20
USER_AGENT = f"authcli/{__version__} (Python {platform.python_version()}; {sys.platform})"
# The service compares this with the client's configured minimum and answers 426 when it is older.
CLIENT_VERSION_HEADER = "X-Client-Version"


class Failure(Exception):
    """Anything that ends a command. Its text is the one line the user sees; ``exit_code`` the status."""

    exit_code = 1


class Unreachable(Failure):
    """No HTTP answer at all: refused, unknown host, timed out, TLS failure, connection dropped."""


class BadAnswer(Failure):
    """An HTTP answer, but not one the token service would give (not JSON, a redirect, missing fields)."""


class ApiError(Failure):
    """An error answer in one of the service's two dialects."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        retry_after: float | None = None,
        request_id: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.type = type_
        self.message = message
        self.retry_after = retry_after
        self.request_id = request_id
        self.body: Mapping[str, Any] = body or {}
        super().__init__(self.describe())

    @property
    def transient(self) -> bool:
        """Worth trying again later: the server or one of its dependencies failed or was throttled."""
        return self.status >= 500 or self.type in ("temporarily_unavailable", "rate_limited")

    def describe(self) -> str:
        text = self.message.rstrip() or f"HTTP {self.status}"
        if not text.endswith((".", "!", "?")):
            text += "."
        ref = f"HTTP {self.status} {self.type}".rstrip()
        if self.request_id:
            ref += f", request id {self.request_id}"
        return f"{text} ({ref})"


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalize_server(url: str) -> str:
    """``https://Host:443/base/`` -> ``https://host:443/base``; refuses what a token must not be sent to."""
    text = url.strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Failure(f"{text!r} is not a server address; give one like https://auth.example.com.")
    if parts.query or parts.fragment:
        raise Failure(f"{text!r}: a server address has no query string or fragment.")
    check_transport(text)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urllib.parse.urlunsplit((parts.scheme, netloc.lower(), parts.path.rstrip("/"), "", ""))


def check_transport(url: str) -> None:
    """Tokens travel over HTTPS; plain HTTP only to this machine (the local stack)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and is_loopback(parts.hostname or ""):
        return
    raise Failure(
        f"Refusing to send credentials to {url}: use https:// (plain http:// is only allowed to this machine)."
    )


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The service never redirects; following one would drop a POST body or leak it elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener(url: str) -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
    if is_loopback(urllib.parse.urlsplit(url).hostname or ""):
        handlers.append(urllib.request.ProxyHandler({}))  # a proxy cannot reach our own loopback
    return urllib.request.build_opener(*handlers)


def call(
    method: str,
    url: str,
    *,
    json_body: Mapping[str, Any] | None = None,
    form: Mapping[str, str] | None = None,
) -> Reply:
    """One request; a 2xx JSON object back, or an exception saying what went wrong."""
    check_transport(url)
    headers = {
        "Accept": "application/json",
        "User-Agent": USER_AGENT,
        CLIENT_VERSION_HEADER: __version__,
    }
    data: bytes | None = None
    if json_body is not None:
        data = json.dumps(json_body).encode()
        headers["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    # S310: check_transport above admits http(s) only.
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    where = _origin(url)
    response_headers: email.message.Message
    try:
        with _opener(url).open(request, timeout=TIMEOUT) as response:
            status, raw = response.status, _read(response, where)
            response_headers = response.headers
    except urllib.error.HTTPError as err:
        with err:
            status, raw = err.code, _read(err, where)
            response_headers = err.headers
    except urllib.error.URLError as err:
        raise Unreachable(f"Cannot reach the server at {where}: {_reason(err.reason)}.{_hint(url)}") from None
    except http.client.RemoteDisconnected as err:
        raise Unreachable(f"Cannot reach the server at {where}: {_reason(err)}.{_hint(url)}") from None
    except http.client.HTTPException:
        raise BadAnswer(f"The server at {where} did not answer in HTTP; is that the right address?") from None
    except OSError as err:  # timeouts and resets while reading
        raise Unreachable(f"Cannot reach the server at {where}: {_reason(err)}.{_hint(url)}") from None

    if 300 <= status < 400:
        location = response_headers.get("Location", "")
        raise BadAnswer(
            f"The server at {where} redirected {method} {urllib.parse.urlsplit(url).path} to {location or 'elsewhere'}; "
            "give the address it should be reached at."
        )
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise BadAnswer(
            f"The server at {where} answered HTTP {status} with something other than a JSON object; "
            "is that the token service?"
        )
    if 200 <= status < 300:
        return Reply(status, body)
    raise _api_error(status, body, response_headers.get("Retry-After"))


def _read(response: Any, where: str) -> bytes:
    raw: bytes = response.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise BadAnswer(f"The server at {where} answered with more than {MAX_BODY} bytes; giving up.")
    return raw


def _api_error(status: int, body: dict[str, Any], retry_after: str | None) -> ApiError:
    request_id = body.get("request_id")
    if isinstance(body.get("type"), str):  # product dialect
        type_, message = body["type"], body.get("message")
    elif isinstance(body.get("error"), str):  # OAuth dialect
        type_, message = body["error"], body.get("error_description")
    else:  # API Gateway's own answers, e.g. {"message": "Not Found"}
        type_, message = "", body.get("message")
    return ApiError(
        status,
        type_,
        message if isinstance(message, str) else "",
        retry_after=parse_retry_after(retry_after),
        request_id=request_id if isinstance(request_id, str) else None,
        body=body,
    )


def parse_retry_after(value: str | None) -> float | None:
    """Delta-seconds or an HTTP date (RFC 9110 §10.2.3) -> seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def _hint(url: str) -> str:
    if is_loopback(urllib.parse.urlsplit(url).hostname or ""):
        return " Is it running? (`make serve` starts the local stack)"
    return " Check the address and your network."


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, socket.gaierror):
        return "unknown host name"
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {TIMEOUT:g} s"
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"its TLS certificate is not trusted ({reason.verify_message})"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failed ({reason.reason or reason})"
    if isinstance(reason, (ConnectionResetError, ConnectionAbortedError, http.client.RemoteDisconnected)):
        return "the connection was closed before an answer came"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower()
    return str(reason) or type(reason).__name__
