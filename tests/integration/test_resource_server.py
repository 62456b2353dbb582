"""examples/resource_server: an API that verifies the service's access tokens offline, with the JWKS.

The example's handler runs as Lambda would run it (a payload-2.0 event for `GET /demo/me`), configured
as its template configures it, and reads the JWKS over real HTTP from a small server in this process
that publishes what the service's own `GET /.well-known/jwks.json` answers. Tokens are real ones from the
service's handlers (a device flow on moto), or made with the service's own signing key where a test needs
one the service would never issue (expired, another audience or issuer); forgeries are made with no key
of the service's at all.

The revoked session shows the limit of offline verification: after `POST /oauth/revoke`, the access token
still verifies here (no call to the service can see the revocation), while `POST /oauth/introspect`
answers `active: false`. examples/resource_server/README.md says when to use which.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authcore import tokens
from local import lambda_host
from local.template import functions, load_template
from tests.conftest import ISSUER, SECRET, Api
from tests.support import aws

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "resource_server"
ROUTE_KEY = "GET /demo/me"


# ---------------------------------------------------------------- the JWKS, over HTTP


class JwksServer(ThreadingHTTPServer):
    """Publishes one JWKS document at /.well-known/jwks.json, and counts the fetches."""

    daemon_threads = True

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.fetches = 0
        super().__init__(("127.0.0.1", 0), _JwksHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/.well-known/jwks.json"


class _JwksHandler(BaseHTTPRequestHandler):
    server: JwksServer

    def do_GET(self) -> None:
        self.server.fetches += 1
        body = json.dumps(self.server.document).encode()
        self.send_response(200 if self.path == "/.well-known/jwks.json" else 404)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_server(api: Api) -> Iterator[JwksServer]:
    server = JwksServer()
    published = api.call("GET", "/.well-known/jwks.json")
    assert published.status == 200
    server.document = published.json()  # the service's own answer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- the example, as Lambda runs it


def example_environment() -> dict[str, Any]:
    (spec,) = functions(load_template(EXAMPLE / "template.yaml"))
    return spec.environment


Call = Callable[..., lambda_host.HttpResult]


def load_example(monkeypatch: pytest.MonkeyPatch, **env: str) -> ModuleType:
    """A fresh import of examples/resource_server/app.py (a new execution environment: its key cache is
    empty), with the environment its template sets."""
    assert set(env) <= set(example_environment()), "a variable the template does not set"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    name = f"resource_server_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, EXAMPLE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def resource_server(monkeypatch: pytest.MonkeyPatch, jwks_server: JwksServer) -> ModuleType:
    return load_example(
        monkeypatch,
        TOKEN_ISSUER=ISSUER,
        TOKEN_AUDIENCE="",
        REQUIRED_SCOPE="read",
        JWKS_URL=jwks_server.url,
        POWERTOOLS_SERVICE_NAME="demo-resource-server",
    )


@pytest.fixture
def me(resource_server: ModuleType) -> Call:
    def call(token: str | None = None, authorization: str | None = None) -> lambda_host.HttpResult:
        headers = {}
        if token is not None:
            headers["authorization"] = f"Bearer {token}"
        if authorization is not None:
            headers["authorization"] = authorization
        event = lambda_host.http_event("GET", "/demo/me", route_key=ROUTE_KEY, headers=headers)
        return lambda_host.invoke(resource_server.lambda_handler, event, "ResourceServerFunction")

    return call


# ---------------------------------------------------------------- tokens


def signed_by_the_service(**overrides: Any) -> str:
    """A token signed with the service's current key, as the service signs them, with `overrides`."""
    keyset = aws.keyset(SECRET)
    now = int(time.time())
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": ISSUER,
        "subject": "user-1",
        "client_id": "demo-cli",
        "scope": "read write",
        "org_id": "acme",
        "grant_id": uuid.uuid4().hex,
        "now": now,
        "ttl": 3600,
    }
    return tokens.sign_access_token(keyset, **{**fields, **overrides})


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], key: bytes | None = None) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key is not None else b""
    return f"{signing_input}.{b64url(signature)}"


def service_kid() -> str:
    return aws.keyset(SECRET).signing_kid


def refused(result: lambda_host.HttpResult, status: int, error: str, says: str) -> None:
    assert result.status == status, result.text
    body = result.json()
    assert body["error"] == error and says in body["error_description"], body
    challenge = result.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="demo"') and f'error="{error}"' in challenge
    assert result.headers["cache-control"] == "no-store"


# ---------------------------------------------------------------- a valid token


def test_a_valid_access_token_gets_its_claims(api: Api, account: aws.Seed, me: Call) -> None:
    session = api.signed_in(account)
    result = me(session["access_token"])
    assert result.status == 200, result.text
    body = result.json()
    claims = claims_of(session["access_token"])
    assert body == {
        "sub": "user-1",
        "org_id": "acme",
        "client_id": "demo-cli",
        "scopes": ["read", "write"],
        "claims": claims,
    }
    assert claims["sid"] and claims["iss"] == ISSUER
    assert result.headers["content-type"] == "application/json"
    assert result.headers["cache-control"] == "no-store"


def test_the_jwks_is_fetched_once_and_a_made_up_kid_does_not_fetch_it_again(
    api: Api, account: aws.Seed, me: Call, jwks_server: JwksServer
) -> None:
    session = api.signed_in(account)
    for _ in range(3):
        assert me(session["access_token"]).status == 200
    assert jwks_server.fetches == 1
    stranger = ec.generate_private_key(ec.SECP256R1())
    for kid in ("made-up-1", "made-up-2", "made-up-3"):
        forged = jwt.encode(
            claims_of(session["access_token"]), stranger, "ES256", {"kid": kid, "typ": "at+jwt"}
        )
        refused(me(forged), 401, "invalid_token", "unknown key")
    assert jwks_server.fetches == 1  # at most once a minute


def test_a_key_published_later_is_fetched_when_a_token_names_it(
    resource_server: ModuleType, jwks_server: JwksServer
) -> None:
    """The service publishes its next key before it signs with it; a verifier that has not seen it yet
    fetches the JWKS again (here without waiting: refetch_after=0)."""
    keys = resource_server.KeySet(jwks_server.url, refetch_after=0)
    newcomer = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(resource_server.Refused):
        keys.key("next-key")
    jwks_server.document = {
        "keys": [*jwks_server.document["keys"], tokens.public_jwk(newcomer.public_key(), "next-key")]
    }
    assert keys.key("next-key").public_numbers() == newcomer.public_key().public_numbers()


def test_an_unreachable_jwks_is_503(monkeypatch: pytest.MonkeyPatch, api: Api, account: aws.Seed) -> None:
    server = JwksServer()
    url = server.url
    server.server_close()  # nothing listens there any more
    module = load_example(monkeypatch, TOKEN_ISSUER=ISSUER, JWKS_URL=url)
    event = lambda_host.http_event(
        "GET", "/demo/me", route_key=ROUTE_KEY, headers={"authorization": f"Bearer {signed_by_the_service()}"}
    )
    result = lambda_host.invoke(module.lambda_handler, event, "ResourceServerFunction")
    assert result.status == 503, result.text
    assert result.json()["error"] == "temporarily_unavailable"
    assert result.headers["retry-after"]


# ---------------------------------------------------------------- refused tokens


def test_no_token_or_another_scheme_is_401(account: aws.Seed, me: Call) -> None:
    refused(me(), 401, "invalid_token", "Authorization: Bearer")
    refused(me(authorization="Basic ZGVtbzpkZW1v"), 401, "invalid_token", "Authorization: Bearer")
    refused(me("not-a-jwt"), 401, "invalid_token", "not a JWT")


def test_an_expired_token_is_401(account: aws.Seed, me: Call) -> None:
    expired = signed_by_the_service(now=int(time.time()) - 7200, ttl=3600)
    refused(me(expired), 401, "invalid_token", "expired")


def test_a_token_for_another_audience_is_401(account: aws.Seed, me: Call) -> None:
    refused(
        me(signed_by_the_service(audience="https://other-api.example.test")), 401, "invalid_token", "audience"
    )


def test_a_token_from_another_issuer_is_401(account: aws.Seed, me: Call) -> None:
    refused(me(signed_by_the_service(issuer="https://evil.example.test")), 401, "invalid_token", "issuer")


@pytest.mark.parametrize("alg", ["none", "None"])
def test_alg_none_is_401(account: aws.Seed, me: Call, alg: str) -> None:
    forged = unsigned({"alg": alg, "typ": "at+jwt", "kid": service_kid()}, claims_of(signed_by_the_service()))
    refused(me(forged), 401, "invalid_token", "ES256")


def test_hs256_signed_with_the_public_key_is_401(
    account: aws.Seed, me: Call, jwks_server: JwksServer
) -> None:
    """The classic key confusion: HMAC with the published key as the secret."""
    kid = service_kid()
    (jwk,) = [k for k in jwks_server.document["keys"] if k["kid"] == kid]
    public = jwt.PyJWK(jwk, algorithm="ES256").key
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for secret in (pem, json.dumps(jwk).encode()):
        forged = unsigned(
            {"alg": "HS256", "typ": "at+jwt", "kid": kid}, claims_of(signed_by_the_service()), secret
        )
        refused(me(forged), 401, "invalid_token", "ES256")


def test_an_unknown_kid_or_a_foreign_key_is_401(account: aws.Seed, me: Call) -> None:
    claims = claims_of(signed_by_the_service())
    stranger = ec.generate_private_key(ec.SECP256R1())
    unknown = jwt.encode(claims, stranger, "ES256", {"kid": "unknown-kid", "typ": "at+jwt"})
    refused(me(unknown), 401, "invalid_token", "unknown key")
    impostor = jwt.encode(claims, stranger, "ES256", {"kid": service_kid(), "typ": "at+jwt"})
    refused(me(impostor), 401, "invalid_token", "not valid")  # the right kid, the wrong signature
    no_kid = jwt.encode(claims, stranger, "ES256", {"typ": "at+jwt"})
    refused(me(no_kid), 401, "invalid_token", "no key")


def test_a_jwt_that_is_not_an_access_token_is_401(account: aws.Seed, me: Call) -> None:
    """Signed by the service's key, but typ JWT (as an ID token would be): not an access token."""
    keyset = aws.keyset(SECRET)
    claims = claims_of(signed_by_the_service())
    id_token_like = jwt.encode(claims, keyset.signing_key, "ES256", {"kid": keyset.signing_kid, "typ": "JWT"})
    refused(me(id_token_like), 401, "invalid_token", "at+jwt")
    without_client = {k: v for k, v in claims.items() if k != "client_id"}
    incomplete = jwt.encode(
        without_client, keyset.signing_key, "ES256", {"kid": keyset.signing_kid, "typ": "at+jwt"}
    )
    refused(me(incomplete), 401, "invalid_token", "client_id")


def test_a_token_without_the_scope_is_403(api: Api, account: aws.Seed, me: Call) -> None:
    """A real token narrowed to `write` (RFC 6749 §6) lacks the `read` this API needs."""
    session = api.signed_in(account)
    narrowed = api.call(
        "POST",
        "/oauth/token",
        form={
            "grant_type": "refresh_token",
            "refresh_token": session["refresh_token"],
            "client_id": "demo-cli",
            "scope": "write",
        },
    )
    assert narrowed.status == 200, narrowed.text
    assert narrowed.json()["scope"] == "write"
    result = me(narrowed.json()["access_token"])
    refused(result, 403, "insufficient_scope", "read")
    assert 'scope="read"' in result.headers["www-authenticate"]


# ---------------------------------------------------------------- a revoked session: offline vs introspection


def introspect(api: Api, account: aws.Seed, token: str) -> dict[str, Any]:
    basic = base64.b64encode(f"{account.confidential_client}:{account.confidential_secret}".encode()).decode()
    result = api.call(
        "POST", "/oauth/introspect", form={"token": token}, headers={"authorization": f"Basic {basic}"}
    )
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


def test_a_revoked_session_still_verifies_offline_but_introspection_says_inactive(
    api: Api, account: aws.Seed, me: Call
) -> None:
    session = api.signed_in(account)
    access = session["access_token"]
    assert me(access).status == 200
    assert introspect(api, account, access)["active"] is True

    revoked = api.call(
        "POST", "/oauth/revoke", form={"token": session["refresh_token"], "client_id": "demo-cli"}
    )
    assert revoked.status == 200, revoked.text

    # Offline: the signature, issuer, audience, expiry and scope are all still fine. Nothing in the token
    # can say that its session ended: it verifies until it expires.
    offline = me(access)
    assert offline.status == 200, offline.text
    assert offline.json()["claims"]["sid"] == claims_of(access)["sid"]
    # Introspection asks the service, which knows: the session (sid) was revoked.
    assert introspect(api, account, access) == {"active": False}
    # And the session really is over: its refresh token is refused.
    again = api.call("POST", "/auth/refresh", body={"refresh_token": session["refresh_token"]})
    assert (again.status, again.json()["type"]) == (401, "invalid_grant")


# ---------------------------------------------------------------- the examples' templates


@pytest.mark.parametrize("example", ["resource_server", "web_app"])
def test_an_example_template_is_a_valid_sam_template_with_no_aws_permission(example: str) -> None:
    """Each example is a stack of its own (not a part of template.yaml): valid for `sam deploy`, and its
    functions call no AWS API, so they are granted none (SAM's default role: logs only)."""
    from tests.integration.test_template import sam

    path = ROOT / "examples" / example / "template.yaml"
    template = load_template(path)
    for logical_id, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        assert "Policies" not in properties and "Role" not in properties, logical_id
    result = sam("validate", "--lint", "--template", str(path), "--region", "us-east-1")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_local_stack_serves_the_examples_routes() -> None:
    """What `make serve` adds beside the API (local.examples) is what the examples' templates declare,
    and none of it is a route of the token service."""
    from authcore import routes
    from local import examples

    declared = {
        (r.method, r.path)
        for path in examples.templates()
        for spec in functions(load_template(path))
        for r in spec.routes
    }
    assert declared == {("GET", "/demo/me"), ("GET", "/demo/app"), ("GET", "/demo/app/{asset}")}
    assert not declared & {(r.method, r.path) for r in routes.ROUTES}
    assert (
        examples.parameters("http://127.0.0.1:3000", "")["JwksUrl"]
        == "http://127.0.0.1:3000/.well-known/jwks.json"
    )


@pytest.mark.parametrize("example", ["resource_server", "web_app"])
def test_an_example_is_typed_strictly(example: str) -> None:
    """The code a team copies holds the project's own bar (tests/unit/test_static.py: mypy --strict)."""
    import subprocess

    mypy = Path(sys.executable).parent / "mypy"
    result = subprocess.run(
        [str(mypy), f"examples/{example}/app.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
