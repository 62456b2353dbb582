"""The local stack (`make serve`) over real HTTP: routes from template.yaml, signing in with an ID token, the
issuer, a whole device flow, CORS, cookies, the access log, and the server's life cycle."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import jwt
import psutil
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from local import template as tpl
from local.cfn import Resolver
from local.stack import LocalStack, PortUnavailable, StackInfo
from tests.e2e.conftest import AccessLog, ClockedStack, cognito_id_token
from tests.e2e.flows import rotation_grace_seconds
from tests.support import jwt_check

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SERVE_JSON_KEYS = {
    "api_url",
    "aws_endpoint_url",
    "region",
    "user_pool_id",
    "user_pool_client_id",
    "demo.username",
    "demo.password",
    "demo.organization_id",
    "clients.public.client_id",
    "clients.confidential.client_id",
    "clients.confidential.client_secret",
}
TIMEOUT = 10


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def device_code(stack: StackInfo, scope: str = "read write") -> dict[str, Any]:
    response = requests.post(
        f"{stack.api_url}/oauth/device/code",
        data={"client_id": stack.clients.public.client_id, "scope": scope},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def approve(stack: StackInfo, id_token: str, user_code: str) -> None:
    response = requests.post(
        f"{stack.api_url}/oauth/device/verify",
        json={"user_code": user_code, "decision": "approve"},
        headers=bearer(id_token),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "approved"}


def signed_in(stack: StackInfo, id_token: str) -> dict[str, Any]:
    """A device flow ending on the product exchange: its answer."""
    started = device_code(stack)
    approve(stack, id_token, started["user_code"])
    response = requests.post(
        f"{stack.api_url}/auth/device/exchange",
        json={"device_code": started["device_code"], "client_id": stack.clients.public.client_id},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def verified_access_token(stack: StackInfo, token: str, now: float | None = None) -> dict[str, Any]:
    """The access token's claims, checked against the service's own JWKS, issuer and audience."""
    return jwt_check.verify_over_http(token, stack.api_url, now=now)


def exchange_over_oauth(stack: StackInfo, device_code: str) -> requests.Response:
    return requests.post(
        f"{stack.api_url}/oauth/token",
        data={
            "grant_type": DEVICE_GRANT,
            "device_code": device_code,
            "client_id": stack.clients.public.client_id,
        },
        timeout=TIMEOUT,
    )


# ---------------------------------------------------------------- discovery and routes


def test_the_issuer_is_the_api_url(stack: StackInfo) -> None:
    response = requests.get(f"{stack.api_url}/.well-known/oauth-authorization-server", timeout=TIMEOUT)
    assert response.status_code == 200
    metadata = response.json()
    assert metadata["issuer"] == stack.api_url
    assert metadata["token_endpoint"] == f"{stack.api_url}/oauth/token"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "public, max-age=3600"  # a public document: cacheable


def test_the_stack_info_has_every_serve_json_key(stack: StackInfo) -> None:
    values = flatten(stack.to_dict())
    assert set(values) >= SERVE_JSON_KEYS
    assert all(values[key] for key in SERVE_JSON_KEYS)
    assert stack.api_url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize(
    ("method", "path", "dialect"),
    [
        ("GET", "/nope", "product"),
        ("GET", "/oauth", "product"),
        ("DELETE", "/oauth/token", "oauth"),
        ("GET", "/oauth/device/code", "oauth"),
        ("TRACE", "/auth/refresh", "product"),
        ("PROPFIND", "/oauth/revoke", "oauth"),
    ],
)
def test_an_unknown_route_or_method_reaches_the_default_route(
    stack: StackInfo, access_log: AccessLog, method: str, path: str, dialect: str
) -> None:
    """As API Gateway does, every request no route matches goes to the $default route (the discovery
    function), which answers the contract's 404, never {"message":"Not Found"} nor a 501 page."""
    response = requests.request(method, f"{stack.api_url}{path}", timeout=TIMEOUT)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    if dialect == "oauth":
        assert body["error"] == "invalid_request"
    else:
        assert body["type"] == "not_found" and body["request_id"] == response.headers["apigw-requestid"]
    last = json.loads(access_log.lines()[-1])
    assert (last["httpMethod"], last["path"], last["status"]) == (method, path, "404")
    assert (last["routeKey"], last["function"]) == ("$default", "DiscoveryFunction")


def test_every_template_route_is_served(stack: StackInfo, access_log: AccessLog) -> None:
    """Each route reaches its own function (the access line names it), never API Gateway's 404."""
    for spec in tpl.functions(tpl.load_template()):
        for route in spec.routes:
            if route.path == tpl.DEFAULT_ROUTE:  # every other request: test_an_unknown_route_or_method...
                continue
            headers = bearer("x") if route.uses_jwt_authorizer else {}
            response = requests.request(
                route.method, f"{stack.api_url}{route.path}", headers=headers, timeout=TIMEOUT
            )
            if route.uses_jwt_authorizer:
                assert response.status_code == 401
                continue
            assert response.content != b'{"message":"Not Found"}', route
            last = json.loads(access_log.lines()[-1])
            assert last["function"] == spec.logical_id, (route, last)


def test_a_route_added_to_the_template_is_routed_without_other_code() -> None:
    template = copy.deepcopy(tpl.load_template())
    template["Resources"]["ExtraFunction"] = {
        "Type": "AWS::Serverless::Function",
        "Properties": {
            "CodeUri": "functions/extra/",
            "Events": {
                "Ping": {
                    "Type": "HttpApi",
                    "Properties": {"ApiId": {"Ref": "HttpApi"}, "Method": "GET", "Path": "/ping/{name}"},
                }
            },
        },
    }
    targets = LocalStack._targets(template, Resolver(template))
    from local.gateway import Router

    matched = Router(targets).match("GET", "/ping/world")
    assert matched is not None
    target, parameters = matched
    assert (target.function, target.route_key, parameters) == (
        "ExtraFunction",
        "GET /ping/{name}",
        {"name": "world"},
    )


def test_the_verify_function_trusts_the_issuer_moto_puts_in_its_tokens(
    stack: StackInfo, id_token: str
) -> None:
    """template.yaml's AUTH_ISSUER, resolved for the local pool, is the `iss` of moto's Cognito ID tokens."""
    template = tpl.load_template()
    resolver = Resolver(template, refs={"UserPool": stack.user_pool_id})  # parameters default: Cognito
    env = template["Resources"]["DeviceVerificationFunction"]["Properties"]["Environment"]["Variables"]
    issuer = resolver.resolve(env["AUTH_ISSUER"])
    assert (
        jwt.decode(id_token, options={"verify_signature": False})["iss"] == issuer == stack.user_pool_issuer
    )


# ---------------------------------------------------------------- the device flow over HTTP


def test_a_whole_device_flow_over_http(stack: StackInfo, id_token: str) -> None:
    api = stack.api_url
    started = device_code(stack, scope="read")
    assert started["verification_uri"] == f"{api}/device"
    assert started["verification_uri_complete"] == f"{api}/device?user_code={started['user_code']}"

    described = requests.get(
        f"{api}/oauth/device/verify",
        params={"user_code": started["user_code"]},
        headers=bearer(id_token),
        timeout=TIMEOUT,
    )
    assert described.status_code == 200, described.text
    assert described.json()["client"]["id"] == stack.clients.public.client_id
    assert described.json()["status"] == "pending"
    approve(stack, id_token, started["user_code"])

    token = exchange_over_oauth(stack, started["device_code"])
    assert token.status_code == 200, token.text
    assert token.headers["cache-control"] == "no-store"
    assert token.headers["pragma"] == "no-cache"
    body = token.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "read"
    claims = verified_access_token(stack, body["access_token"])
    assert claims["sub"] == stack.demo.sub
    assert claims["org_id"] == stack.demo.organization_id
    assert claims["client_id"] == stack.clients.public.client_id

    # Re-sent at once (its answer lost): the same family, the same refresh token, not a second one.
    again = exchange_over_oauth(stack, started["device_code"])
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] == body["refresh_token"]

    introspected = requests.post(
        f"{api}/oauth/introspect",
        data={"token": body["refresh_token"]},
        auth=(stack.clients.confidential.client_id, stack.clients.confidential.client_secret),
        timeout=TIMEOUT,
    )
    assert introspected.status_code == 200, introspected.text
    assert introspected.json()["active"] is True


def test_the_clock_file_moves_the_functions_time(clocked_stack: ClockedStack) -> None:
    """`LocalStack(clock_file=...)`: a test moves the functions' clock instead of waiting. A re-sent
    exchange of a device code is the same family within the rotation grace, and a used code once the
    grace has passed, by the stack's clock; the tokens it issues are dated by that clock."""
    stack = clocked_stack.info
    grace = rotation_grace_seconds()
    started = device_code(stack)
    approve(stack, clocked_stack.id_token(), started["user_code"])
    first = exchange_over_oauth(stack, started["device_code"])
    assert first.status_code == 200, first.text
    clocked_stack.advance(grace - 2)  # still within the grace
    again = exchange_over_oauth(stack, started["device_code"])
    assert again.status_code == 200, again.text
    assert again.json()["refresh_token"] == first.json()["refresh_token"]
    clocked_stack.advance(3)  # past it
    used = exchange_over_oauth(stack, started["device_code"])
    assert used.status_code == 400, used.text
    assert used.json()["error"] == "invalid_grant"

    wall_before = time.time()
    refreshed = requests.post(
        f"{stack.api_url}/auth/refresh",
        json={"refresh_token": first.json()["refresh_token"]},
        timeout=TIMEOUT,
    )
    assert refreshed.status_code == 200, refreshed.text
    stack_now = clocked_stack.now()
    claims = verified_access_token(stack, refreshed.json()["access_token"], now=stack_now)
    assert int(wall_before) + grace + 1 <= claims["iat"] <= stack_now  # dated by the stack's clock


def test_the_clock_moves_only_when_a_test_asks() -> None:
    """`make serve` runs on the wall clock: the clock file is off unless asked for, and the layer
    that ships knows nothing of it."""
    from local.serve import parse_args

    assert parse_args([]).clock_file is None
    assert parse_args(["--clock-file", "/tmp/x"]).clock_file == Path("/tmp/x")
    stack = LocalStack()
    assert stack.clock_file is None and stack.clock_offset() == 0.0
    with pytest.raises(RuntimeError, match="no clock file"):
        stack.advance_clock(1)
    for source in (ROOT / "layers").rglob("*.py"):
        text = source.read_text()
        assert "FileClock" not in text and "clock_file" not in text, source


def test_the_product_exchange_over_http(stack: StackInfo, id_token: str) -> None:
    body = signed_in(stack, id_token)
    assert body["user"] == {"id": stack.demo.sub, "email": stack.demo.username, "name": stack.demo.name}
    assert body["organization"]["id"] == stack.demo.organization_id
    assert verified_access_token(stack, body["access_token"])["sub"] == stack.demo.sub

    refreshed = requests.post(
        f"{stack.api_url}/auth/refresh", json={"refresh_token": body["refresh_token"]}, timeout=TIMEOUT
    )
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["refresh_token"] != body["refresh_token"]


def test_a_cookie_refresh_answers_with_its_own_set_cookie(stack: StackInfo, id_token: str) -> None:
    """Cookies go to the function as payload 2.0's cookies array; each cookie it sets is a Set-Cookie."""
    token = signed_in(stack, id_token)["refresh_token"]
    response = requests.post(
        f"{stack.api_url}/auth/refresh",
        headers={"Origin": stack.api_url, "Cookie": f"theme=dark; refresh_token={token}; lang=en"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert "refresh_token" not in response.json()
    set_cookies = response.raw.headers.getlist("set-cookie")
    assert len(set_cookies) == 1
    (cookie,) = set_cookies
    assert cookie.startswith("refresh_token=rt_")
    for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/auth"):
        assert attribute in cookie
    assert response.headers["access-control-allow-origin"] == stack.api_url
    assert response.headers["access-control-allow-credentials"] == "true"


def test_a_binary_body_arrives_base64_encoded_and_is_refused_cleanly(stack: StackInfo) -> None:
    response = requests.post(
        f"{stack.api_url}/oauth/device/code",
        data=b"\x00\xffclient_id=demo-cli",
        headers={"Content-Type": "application/octet-stream"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


# ---------------------------------------------------------------- signing in: the ID token, checked by the function


@pytest.fixture(scope="module")
def forge(stack: StackInfo) -> Callable[..., str]:
    """ID tokens signed with the key moto's Cognito signs with (kid "dummy"), with chosen claims."""
    from moto.utilities.utils import load_resource

    key = jwt.PyJWK(load_resource("cognitoidp/resources/jwks-private.json"), algorithm="RS256").key

    def forge(*, signing_key: Any = key, **overrides: Any) -> str:
        now = int(time.time())
        claims = {
            "iss": stack.user_pool_issuer,
            "aud": stack.user_pool_client_id,
            "sub": f"forged-{uuid.uuid4().hex}",
            "email": "forged@example.com",
            "token_use": "id",
            "iat": now,
            "exp": now + 600,
        }
        claims.update(overrides)
        return jwt.encode(
            {k: v for k, v in claims.items() if v is not None},
            signing_key,
            algorithm="RS256",
            headers={"kid": "dummy"},
        )

    return forge


@pytest.fixture(scope="module")
def other_audience_token(stack: StackInfo) -> str:
    """A real ID token of the demo user, from another app client of the same pool."""
    idp = boto3.client(
        "cognito-idp",
        endpoint_url=stack.aws_endpoint_url,
        region_name=stack.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    other = idp.create_user_pool_client(
        UserPoolId=stack.user_pool_id,
        ClientName=f"other-{uuid.uuid4().hex[:6]}",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    return cognito_id_token(stack, stack.demo.username, stack.demo.password, client_id=other)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_the_public_key(stack: StackInfo) -> str:
    """The classic confusion attack: HMAC keyed with the issuer's public key."""
    jwks = requests.get(
        f"{stack.aws_endpoint_url}/{stack.user_pool_id}/.well-known/jwks.json", timeout=TIMEOUT
    ).json()
    public = jwt.PyJWK(jwks["keys"][0]).key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    now = int(time.time())
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "dummy"}).encode())
    payload = _b64(
        json.dumps(
            {
                "iss": stack.user_pool_issuer,
                "aud": stack.user_pool_client_id,
                "sub": "x",
                "iat": now,
                "exp": now + 600,
            }
        ).encode()
    )
    signature = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


REJECTED = [
    "no header",
    "empty bearer",
    "garbage",
    "another audience",
    "expired",
    "not yet valid",
    "another issuer",
    "another key",
    "alg none",
    "hs256 with the public key",
    "no exp",
]


def _authorization(case: str, stack: StackInfo, forge: Callable[..., str], other_audience: str) -> str | None:
    now = int(time.time())
    if case == "no header":
        return None
    if case == "empty bearer":
        return "Bearer "
    if case == "garbage":
        return "Bearer not.a.jwt"
    if case == "another audience":
        return f"Bearer {other_audience}"
    if case == "expired":
        return f"Bearer {forge(iat=now - 7200, exp=now - 60)}"
    if case == "not yet valid":
        return f"Bearer {forge(nbf=now + 600)}"
    if case == "another issuer":
        return f"Bearer {forge(iss='https://cognito-idp.us-east-1.amazonaws.com/us-east-1_someoneelse')}"
    if case == "another key":
        return f"Bearer {forge(signing_key=rsa.generate_private_key(public_exponent=65537, key_size=2048))}"
    if case == "alg none":
        claims = jwt.decode(forge(), options={"verify_signature": False})
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "dummy"}).encode())
        return f"Bearer {header}.{_b64(json.dumps(claims).encode())}."
    if case == "hs256 with the public key":
        return f"Bearer {_hs256_with_the_public_key(stack)}"
    if case == "no exp":
        return f"Bearer {forge(exp=None)}"
    raise AssertionError(case)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("case", REJECTED)
def test_the_verify_routes_answer_the_envelopes_401_for_a_bad_id_token(
    stack: StackInfo,
    access_log: AccessLog,
    forge: Callable[..., str],
    other_audience_token: str,
    case: str,
    method: str,
) -> None:
    authorization = _authorization(case, stack, forge, other_audience_token)
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = requests.request(
        method,
        f"{stack.api_url}/oauth/device/verify",
        params={"user_code": "BCDF-GHJK"} if method == "GET" else None,
        json={"user_code": "BCDF-GHJK", "decision": "approve"} if method == "POST" else None,
        headers=headers,
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
    body = response.json()  # the canonical envelope, not API Gateway's {"message": "Unauthorized"}
    assert body["status"] == 401 and body["type"] == "unauthorized" and body["details"] == []
    assert body["request_id"] and response.headers["cache-control"] == "no-store"
    last = json.loads(access_log.lines()[-1])
    assert (last["httpMethod"], last["path"], last["status"]) == (method, "/oauth/device/verify", "401")
    assert last["function"] == "DeviceVerificationFunction"  # the function checked it


def test_a_forged_token_with_good_claims_reaches_the_function(
    stack: StackInfo, access_log: AccessLog, forge: Callable[..., str]
) -> None:
    """The control for the cases above: the same forging, valid claims, passes the token checks."""
    response = requests.get(
        f"{stack.api_url}/oauth/device/verify",
        params={"user_code": "BCDF-GHJK"},
        headers=bearer(forge()),
        timeout=TIMEOUT,
    )
    # The function's own answer: the forged person belongs to no organization, so may decide nothing.
    assert response.status_code == 403, response.text
    assert response.json()["type"] == "access_denied"
    assert json.loads(access_log.lines()[-1])["function"] == "DeviceVerificationFunction"


# ---------------------------------------------------------------- CORS and the access log


def test_cors_preflight_like_api_gateway(stack: StackInfo) -> None:
    allowed = requests.options(
        f"{stack.api_url}/auth/refresh",
        headers={"Origin": stack.api_url, "Access-Control-Request-Method": "POST"},
        timeout=TIMEOUT,
    )
    assert allowed.status_code == 204
    assert allowed.headers["access-control-allow-origin"] == stack.api_url
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert allowed.headers["access-control-allow-credentials"] == "true"

    refused = requests.options(
        f"{stack.api_url}/auth/refresh",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        timeout=TIMEOUT,
    )
    assert "access-control-allow-origin" not in refused.headers

    plain = requests.get(
        f"{stack.api_url}/.well-known/jwks.json", headers={"Origin": "https://evil.example"}, timeout=TIMEOUT
    )
    assert plain.status_code == 200
    assert "access-control-allow-origin" not in plain.headers


def test_the_access_log_holds_no_query_string_cookie_or_token(
    stack: StackInfo, access_log: AccessLog, id_token: str
) -> None:
    secret = f"dc_{uuid.uuid4().hex}_{uuid.uuid4().hex}"
    before = len(access_log.lines())
    requests.get(
        f"{stack.api_url}/oauth/token",
        params={"grant_type": DEVICE_GRANT, "device_code": secret, "client_id": "demo-cli"},
        headers={"Cookie": f"refresh_token={secret}"},
        timeout=TIMEOUT,
    )
    requests.get(
        f"{stack.api_url}/oauth/device/verify",
        params={"user_code": secret},
        headers=bearer(id_token),
        timeout=TIMEOUT,
    )
    lines = access_log.lines()[before:]
    assert len(lines) == 2
    assert json.loads(lines[0])["routeKey"] == "GET /oauth/token"
    for line in lines:
        assert secret not in line
        assert id_token not in line
        assert "?" not in line


# ---------------------------------------------------------------- python -m local.serve


def _serve(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "local.serve", *args], cwd=ROOT, text=True, **kwargs)


def test_a_busy_port_is_one_line_and_exit_status_2(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        process = _serve(
            "--port",
            str(port),
            "--info-file",
            str(tmp_path / "serve.json"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert err.strip().splitlines() == [f"error: port {port} is already in use on 127.0.0.1"]
    assert out == ""
    assert not (tmp_path / "serve.json").exists()


def test_a_busy_port_fails_before_anything_starts() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        stack = LocalStack(port=port)
        with pytest.raises(PortUnavailable, match=f"^port {port} is already in use on 127.0.0.1$"):
            stack.start()
    assert stack.pids() == []  # neither the AWS endpoint nor any execution environment
    assert stack.info is None


@pytest.mark.parametrize("port", ["70000", "-1", "http"])
def test_a_bad_port_is_one_line_and_exit_status_2(port: str) -> None:
    process = _serve(f"--port={port}", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    (line,) = err.strip().splitlines()
    assert line.startswith("error: --port must be a number from 0 to 65535")
    assert "Traceback" not in err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], Path]]:
    """`python -m local.serve --port 0` in a session of its own, once it has written its summary."""
    info_file = tmp_path / "serve.json"
    with (tmp_path / "stdout").open("w") as out, (tmp_path / "stderr").open("w") as err:
        process = _serve(
            "--port", "0", "--info-file", str(info_file), stdout=out, stderr=err, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 120
        while not info_file.exists():
            assert process.poll() is None, (tmp_path / "stderr").read_text()
            assert time.monotonic() < deadline, "the local stack did not start in 120 s"
            time.sleep(0.1)
        yield process, json.loads(info_file.read_text()), tmp_path
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.parametrize("stop", ["SIGTERM", "Ctrl-C"])
def test_serve_stops_on_a_signal_and_leaves_no_process_behind(
    served: tuple[subprocess.Popen[str], dict[str, Any], Path], stop: str
) -> None:
    process, info, tmp_path = served
    values = flatten(info)
    assert set(values) >= SERVE_JSON_KEYS
    assert all(values[key] for key in SERVE_JSON_KEYS)
    assert (tmp_path / "serve.json").stat().st_mode & 0o077 == 0  # it holds a password and a secret

    metadata = requests.get(
        f"{info['api_url']}/.well-known/oauth-authorization-server", timeout=TIMEOUT
    ).json()
    assert metadata["issuer"] == info["api_url"]
    secret = f"rt_{uuid.uuid4().hex}_{uuid.uuid4().hex}"
    requests.get(f"{info['api_url']}/oauth/token", params={"refresh_token": secret}, timeout=TIMEOUT)

    children = psutil.Process(process.pid).children(recursive=True)
    assert info["aws_endpoint_pid"] in {child.pid for child in children}
    if stop == "SIGTERM":
        process.send_signal(signal.SIGTERM)
    else:  # a terminal's Ctrl-C: SIGINT to the whole process group
        os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=60) == 0
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert alive == []
    assert not (tmp_path / "serve.json").exists()  # it described a stack that is gone

    out, err = (tmp_path / "stdout").read_text(), (tmp_path / "stderr").read_text()
    assert info["api_url"] in out
    # what the admin command and the README's examples need, printed (issue #12 item 4)
    assert info["table_name"] in out and info["keys_secret_id"] in out and info["demo"]["sub"] in out
    # the terminal: a short line per request, the raw JSON in the log file the summary names (#12 item 8)
    assert any(line.startswith("GET /oauth/token 400") for line in err.splitlines()), err
    assert "audit" not in err and '"_aws"' not in out + err and '"level"' not in out  # no JSON walls
    raw = (tmp_path / "serve.log").read_text()
    assert str(tmp_path / "serve.log") in out
    records = [json.loads(line) for line in raw.splitlines() if line.startswith("{")]
    assert any(r.get("routeKey") == "GET /oauth/token" for r in records)  # the access lines, whole
    assert secret not in out + err + raw
    assert "Traceback" not in out + err
