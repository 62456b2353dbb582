"""local.gateway without AWS: the payload-2.0 event it builds from an HTTP request, and the HTTP answer
it builds from a function's result, over a real socket."""

from __future__ import annotations

import base64
import http.client
import io
import json
import re
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from local.gateway import (
    ACCESS_LOG_FIELDS,
    LOCAL_ACCESS_LOG_FIELDS,
    Cors,
    Gateway,
    HttpFront,
    Response,
    Router,
    Target,
    claims_as_strings,
)

ECHO = Target("POST", "/echo/{name}", "EchoFunction", "functions/echo/", "app.lambda_handler", False)
GET = Target("GET", "/things", "ThingsFunction", "functions/things/", "app.lambda_handler", False)
BOOM = Target("GET", "/boom", "BoomFunction", "functions/boom/", "app.lambda_handler", False)
SECURE = Target("GET", "/secure", "SecureFunction", "functions/secure/", "app.lambda_handler", True)


class Recorder:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.result: dict[str, Any] = {
            "statusCode": 200,
            "headers": {"content-type": "application/json"},
            "body": "{}",
        }

    def __call__(self, target: Target, event: dict[str, Any]) -> dict[str, Any]:
        if target is BOOM:
            raise RuntimeError("the function failed")
        self.events.append(event)
        return self.result


@pytest.fixture
def served() -> Iterator[tuple[int, Recorder, io.StringIO]]:
    recorder, log = Recorder(), io.StringIO()
    front = HttpFront("127.0.0.1", 0, log=log)
    front.gateway = Gateway(
        router=Router([ECHO, GET, BOOM, SECURE]),
        invoke=recorder,
        authorizer=None,
        cors=Cors(allow_origins=("http://app.test",), allow_methods=("GET", "POST"), allow_credentials=True),
        errors=io.StringIO(),
    )
    thread = threading.Thread(target=front.serve_forever, daemon=True)
    thread.start()
    try:
        yield front.port, recorder, log
    finally:
        front.shutdown()
        front.server_close()


def request(
    port: int, method: str, target: str, body: bytes | None = None, headers: Sequence[tuple[str, str]] = ()
) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest(method, target, skip_accept_encoding=True)
    for name, value in headers:
        connection.putheader(name, value)
    if body is not None and not any(n.lower() == "transfer-encoding" for n, _ in headers):
        connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body)
    response = connection.getresponse()
    response.read()
    return response


def test_the_event_is_what_api_gateway_sends(served: tuple[int, Recorder, io.StringIO]) -> None:
    port, recorder, _ = served
    response = request(
        port,
        "POST",
        "/echo/ada?b=2&a=1&a=3",
        body=b'{"x": 1}',
        headers=[
            ("Content-Type", "application/json"),
            ("X-Custom", "one"),
            ("X-Custom", "two"),
            ("Cookie", "theme=dark; refresh_token=rt_1"),
            ("Cookie", "lang=en"),
        ],
    )
    assert response.status == 200
    (event,) = recorder.events
    assert event["version"] == "2.0"
    assert event["routeKey"] == "POST /echo/{name}"
    assert event["rawPath"] == "/echo/ada"
    assert event["rawQueryString"] == "b=2&a=1&a=3"
    assert event["queryStringParameters"] == {"a": "1,3", "b": "2"}
    assert event["pathParameters"] == {"name": "ada"}
    assert event["headers"]["x-custom"] == "one,two"
    assert event["headers"]["content-type"] == "application/json"
    assert "cookie" not in event["headers"]
    assert event["cookies"] == ["theme=dark", "refresh_token=rt_1", "lang=en"]
    assert event["body"] == '{"x": 1}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["http"]["method"] == "POST"
    assert context["http"]["path"] == "/echo/ada"
    assert context["http"]["sourceIp"] == "127.0.0.1"
    assert context["stage"] == "$default"
    assert context["routeKey"] == "POST /echo/{name}"
    assert context["domainName"] == f"127.0.0.1:{port}"
    assert context["requestId"] == response.getheader("apigw-requestid")
    assert "authorizer" not in context


def test_a_binary_or_chunked_body_arrives_base64_encoded(served: tuple[int, Recorder, io.StringIO]) -> None:
    port, recorder, _ = served
    request(
        port,
        "POST",
        "/echo/x",
        body=b"5\r\n\x00\xff\x01\x02\x03\r\n0\r\n\r\n",
        headers=[("Content-Type", "application/octet-stream"), ("Transfer-Encoding", "chunked")],
    )
    (event,) = recorder.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xff\x01\x02\x03"


def test_the_answer_is_written_back_with_one_set_cookie_each(
    served: tuple[int, Recorder, io.StringIO],
) -> None:
    port, recorder, _ = served
    recorder.result = {
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-One": "1"},
        "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
        "body": base64.b64encode(b"hello").decode(),
        "isBase64Encoded": True,
    }
    response = request(port, "GET", "/things")
    assert response.status == 201
    assert response.getheader("content-type") == "text/plain"
    assert response.getheader("x-one") == "1"
    assert response.headers.get_all("set-cookie") == ["a=1; Path=/", "b=2; HttpOnly"]
    assert response.getheader("content-length") == "5"


def test_api_gateways_own_answers(served: tuple[int, Recorder, io.StringIO]) -> None:
    port, recorder, _ = served
    for method, path in [("GET", "/nope"), ("DELETE", "/things"), ("GET", "/echo/x")]:
        response = request(port, method, path)
        assert response.status == 404
    response = request(port, "GET", "/boom")
    assert response.status == 500
    response = request(port, "GET", "/secure", headers=[("Authorization", "Bearer x")])
    assert response.status == 401  # no authorizer configured: nobody gets in
    assert recorder.events == []


def test_cors_preflight_and_decoration(served: tuple[int, Recorder, io.StringIO]) -> None:
    port, recorder, _ = served
    recorder.result = {"statusCode": 200, "headers": {"access-control-allow-origin": "*"}, "body": ""}
    preflight = request(
        port,
        "OPTIONS",
        "/things",
        headers=[("Origin", "http://app.test"), ("Access-Control-Request-Method", "GET")],
    )
    assert preflight.status == 204
    assert preflight.getheader("access-control-allow-origin") == "http://app.test"
    assert preflight.getheader("access-control-allow-methods") == "GET,POST"
    assert recorder.events == []
    allowed = request(port, "GET", "/things", headers=[("Origin", "http://app.test")])
    assert allowed.getheader("access-control-allow-origin") == "http://app.test"
    assert allowed.getheader("access-control-allow-credentials") == "true"
    other = request(port, "GET", "/things", headers=[("Origin", "http://evil.test")])
    assert other.getheader("access-control-allow-origin") is None  # the function's "*" is replaced


def access_lines(log: io.StringIO) -> list[dict[str, str]]:
    """The access lines so far: one JSON object per line, every value a string."""
    entries = [json.loads(line) for line in log.getvalue().splitlines()]
    for entry in entries:
        assert list(entry) == [*ACCESS_LOG_FIELDS, *LOCAL_ACCESS_LOG_FIELDS]
        assert all(isinstance(value, str) for value in entry.values()), entry
    return entries


def test_the_access_log_names_the_path_only(served: tuple[int, Recorder, io.StringIO]) -> None:
    port, _, log = served
    response = request(
        port,
        "POST",
        "/echo/x?code=SECRET1",
        body=b"SECRET2",
        headers=[
            ("Cookie", "refresh_token=SECRET3"),
            ("Authorization", "Bearer SECRET4"),
            ("User-Agent", "demo-cli/1.0"),
        ],
    )
    assert "SECRET" not in log.getvalue()
    (entry,) = access_lines(log)
    assert entry["requestId"] == response.getheader("apigw-requestid")
    assert (entry["httpMethod"], entry["path"], entry["routeKey"]) == ("POST", "/echo/x", "POST /echo/{name}")
    assert (entry["status"], entry["responseLength"], entry["protocol"]) == ("200", "2", "HTTP/1.1")
    assert (entry["sourceIp"], entry["userAgent"]) == ("127.0.0.1", "demo-cli/1.0")
    assert entry["domainName"] == f"127.0.0.1:{port}"
    assert int(entry["responseLatency"]) >= int(entry["integrationLatency"]) >= 0
    assert (entry["integrationError"], entry["error"], entry["function"]) == ("-", "-", "EchoFunction")
    assert re.fullmatch(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000", entry["requestTime"])
    assert abs(int(entry["requestTimeEpoch"]) / 1000 - time.time()) < 3600  # milliseconds, not seconds


def test_the_access_log_tells_the_gateways_own_answers_and_failures(
    served: tuple[int, Recorder, io.StringIO],
) -> None:
    port, _, log = served
    request(port, "GET", "/nope?user_code=SECRET1")
    request(port, "GET", "/secure", headers=[("Authorization", "Bearer SECRET2")])
    request(port, "GET", "/boom")
    missing, unauthorized, failed = access_lines(log)
    assert (missing["status"], missing["routeKey"], missing["error"]) == ("404", "-", "Not Found")
    assert (missing["integrationLatency"], missing["function"]) == ("-", "-")  # no function was called
    assert (unauthorized["status"], unauthorized["routeKey"]) == ("401", "GET /secure")
    assert (unauthorized["error"], unauthorized["integrationLatency"]) == ("Unauthorized", "-")
    assert (failed["status"], failed["error"], failed["function"]) == (
        "500",
        "Internal Server Error",
        "BoomFunction",
    )
    # The failure's type, never its text (an exception's message can quote anything).
    assert failed["integrationError"] == "BoomFunction failed: RuntimeError"
    assert failed["integrationLatency"] != "-"
    assert "SECRET" not in log.getvalue() and "the function failed" not in log.getvalue()


def test_a_request_the_server_cannot_read_is_one_access_line_without_its_target(
    served: tuple[int, Recorder, io.StringIO],
) -> None:
    port, recorder, log = served
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(b"GET /echo/x?code=SECRET1 HTTP/9.9\r\nHost: x\r\n\r\n")
        assert b"505" in connection.recv(4096)  # the standard library's own page
    (entry,) = access_lines(log)
    assert (entry["status"], entry["error"], entry["path"]) == ("505", "Bad Request", "-")
    assert "SECRET" not in log.getvalue()
    assert recorder.events == []


def test_claims_reach_the_function_as_strings() -> None:
    claims = {"sub": "u", "exp": 1700000000, "email_verified": True, "groups": ["a", "b"], "x": {"k": 1}}
    assert claims_as_strings(claims) == {
        "sub": "u",
        "exp": "1700000000",
        "email_verified": "true",
        "groups": "[a b]",
        "x": '{"k":1}',
    }


def test_routes_match_literal_before_parameter_before_greedy() -> None:
    routes = [
        Target("ANY", "/{proxy+}", "Any", "f/", "app.h", False),
        Target("GET", "/items/{id}", "Item", "f/", "app.h", False),
        Target("GET", "/items/new", "New", "f/", "app.h", False),
    ]
    router = Router(routes)

    def function(method: str, path: str) -> str | None:
        matched = router.match(method, path)
        return matched[0].function if matched else None

    assert function("GET", "/items/new") == "New"
    assert function("GET", "/items/7") == "Item"
    assert function("POST", "/items/7") == "Any"
    assert function("GET", "/a/b/c") == "Any"
    with pytest.raises(ValueError, match="twice"):
        Router([*routes, routes[0]])


def test_response_message_is_api_gateways_json() -> None:
    assert Response.message(404, "Not Found").body == b'{"message":"Not Found"}'
