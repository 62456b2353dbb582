"""openapi.json is generated from the models (`make openapi`): it must not drift from them, must be a
valid OpenAPI 3.1 document, and must describe exactly the routes template.yaml serves and authcore.routes
lists. What the document says beyond the bodies (headers, links, errors) is checked against the code that
sends them; tests/e2e/test_schemathesis.py then holds the running service to it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from authcore import discovery, errors, http, routes
from authcore.clients import DEVICE_GRANT, REFRESH_GRANT
from local import openapi as apidoc
from local import template as tpl

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT: dict[str, Any] = json.loads((ROOT / "openapi.json").read_text())
DEFAULT_ROUTE = "$default"  # API Gateway's catch-all: no route a client can name


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op) for path, item in DOCUMENT["paths"].items() for method, op in item.items()
    ]


def operation(method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = DOCUMENT["paths"][path][method.lower()]
    return op


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    kind, name = ref.split("/")[-2:]
    resolved: dict[str, Any] = DOCUMENT["components"][kind][name]
    return resolved


def test_the_committed_document_matches_the_models() -> None:
    committed = (ROOT / "openapi.json").read_text()
    assert committed == apidoc.render(), "openapi.json has drifted: run `make openapi` and commit it"


def test_it_is_valid_openapi() -> None:
    validate(DOCUMENT)


def test_it_describes_exactly_the_template_routes() -> None:
    functions = tpl.functions(tpl.load_template())
    served = {(m, p) for f in functions for (m, p, _auth) in f.routes if p != DEFAULT_ROUTE}
    assert {(r.method, r.path) for r in apidoc.ROUTES} == served
    assert {(m, p) for m, p, _ in operations()} == served
    # The signed-in routes check the person's ID token themselves (authcore.identity, configured by
    # AUTH_ISSUER): no route has an API Gateway authorizer, whose own 401 is outside the contract.
    assert not [(m, p) for f in functions for (m, p, auth) in f.routes if auth]
    checks_id_tokens = {
        (m, p) for f in functions if f.environment.get("AUTH_ISSUER") for (m, p, _) in f.routes
    }
    signed_in = {(r.method, r.path) for r in apidoc.ROUTES if r.signed_in}
    assert signed_in == checks_id_tokens
    assert {(m, p) for m, p, op in operations() if op.get("security") == [{"signedInUser": []}]} == signed_in


def test_the_document_the_metadata_and_the_routes_are_one_list() -> None:
    """authcore.routes is the one list: the OpenAPI document describes each route in its dialect, and
    the metadata publishes every route that has a metadata name (and nothing else under /)."""
    named = [r for r in routes.ROUTES if r.path != DEFAULT_ROUTE]
    assert [(r.method, r.path, r.dialect) for r in apidoc.ROUTES] == [
        (r.method, r.path, r.dialect) for r in named
    ]
    assert [(m, p) for m, p, _ in operations()] == [(r.method, r.path) for r in named]
    published = discovery.metadata("https://issuer.test", "https://issuer.test/device")
    urls = {v for v in published.values() if isinstance(v, str) and v.startswith("https://issuer.test/")}
    expected = {f"https://issuer.test{r.path}" for r in named if r.metadata}
    assert urls - {"https://issuer.test/device"} == expected


def test_a_route_added_to_the_list_fails_until_the_document_describes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`make openapi` (and the drift test) refuse a document that leaves out a route of authcore.routes."""
    added = routes.Route("DELETE", "/auth/sessions/{id}", "sessions", "SessionsFunction", "product")
    monkeypatch.setattr(routes, "ROUTES", (*routes.ROUTES, added))
    with pytest.raises(apidoc.UndescribedRoute, match="sessions"):
        apidoc.build()
    renamed = dataclasses.replace(routes.ROUTES[0], dialect="product")
    monkeypatch.setattr(routes, "ROUTES", (renamed, *routes.ROUTES[1:]))
    with pytest.raises(apidoc.UndescribedRoute):
        apidoc.build()


# ---------------------------------------------------------------- what the service sends


def test_every_json_answer_declares_cache_control_no_store() -> None:
    for method, path, op in operations():
        for status, answer in op["responses"].items():
            header = resolve(answer["headers"]["Cache-Control"])
            assert header["required"], (method, path, status)
            if not path.startswith("/.well-known/") or status not in ("200", "304"):
                assert header["schema"]["const"] == http.BASE_HEADERS["Cache-Control"], (method, path, status)
            else:  # the public documents: cacheable, with an ETag (test_public_documents.py)
                assert header["schema"]["pattern"].startswith("^public, max-age="), (method, path, status)
                assert "ETag" in answer["headers"], (method, path, status)


def test_token_answers_declare_pragma_no_cache() -> None:
    issuing = [
        ("POST", "/oauth/token"),
        ("GET", "/oauth/token"),
        ("POST", "/auth/device/exchange"),
        ("POST", "/auth/refresh"),
    ]
    for method, path in issuing:
        for status, answer in operation(method, path)["responses"].items():
            header = resolve(answer["headers"]["Pragma"])
            assert header["required"] and header["schema"]["const"] == http.BASE_HEADERS["Pragma"], (
                path,
                status,
            )


def test_retry_after_is_required_wherever_the_contract_promises_it() -> None:
    for method, path, op in operations():
        for status, answer in op["responses"].items():
            must = status in ("429", "503")
            retry_after = answer["headers"].get("Retry-After")
            if must:
                assert retry_after is not None and resolve(retry_after)["required"], (method, path, status)
    # slow_down on the token endpoint: a 400 with the new interval in Retry-After, when it is slow_down
    polls = resolve(operation("POST", "/oauth/token")["responses"]["400"]["headers"]["Retry-After"])
    assert polls["required"] is False and polls["schema"]["type"] == "integer"
    assert "slow_down" in operation("POST", "/oauth/token")["responses"]["400"]["description"]


def test_the_oauth_routes_declare_www_authenticate_on_401_and_500_server_error() -> None:
    for method, path, op in operations():
        if path.startswith("/oauth/") and not path.startswith("/oauth/device/verify"):
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"], (method, path)
            assert "500" in op["responses"], (method, path)
            if method == "POST":
                assert "server_error" in op["responses"]["500"]["description"], path
    # every route has a catch-all for the unexpected (http.make_app's exception handler)
    assert all("500" in op["responses"] for _, _, op in operations())


def test_the_legacy_endpoint_declares_its_deprecation_on_every_answer() -> None:
    op = operation("GET", "/oauth/token")
    assert op["deprecated"] is True
    for status, answer in op["responses"].items():
        assert (
            resolve(answer["headers"]["Deprecation"])["schema"]["const"] == http.LEGACY_HEADERS["Deprecation"]
        )
        assert resolve(answer["headers"]["Link"])["schema"]["const"] == http.LEGACY_HEADERS["Link"], status
    params = {p["name"]: p for p in op["parameters"]}
    assert all(p["schema"]["type"] == "string" for p in params.values())
    assert (
        "Refused" in params["client_secret"]["description"]
        and params["client_secret"]["schema"]["maxLength"] == 0
    )
    assert params["grant_type"]["required"] and params["grant_type"]["schema"]["enum"] == [
        DEVICE_GRANT,
        REFRESH_GRANT,
    ]


def test_the_session_routes_declare_their_cookie() -> None:
    refresh = operation("POST", "/auth/refresh")["responses"]["200"]["headers"]["Set-Cookie"]
    logout = operation("POST", "/auth/logout")["responses"]["200"]["headers"]["Set-Cookie"]
    assert refresh["required"] is False and logout["required"] is True
    assert refresh["schema"]["pattern"] == logout["schema"]["pattern"] == f"^{http.REFRESH_COOKIE}="
    for path in ("/auth/refresh", "/auth/logout"):
        op = operation("POST", path)
        assert op["requestBody"]["required"] is False  # the cookie may carry the token instead
        assert {"name": http.REFRESH_COOKIE, "in": "cookie"}.items() <= op["parameters"][0].items()


def test_the_verify_routes_answer_401_in_the_canonical_envelope() -> None:
    for method in ("GET", "POST"):
        op = operation(method, "/oauth/device/verify")
        assert op["security"] == [{"signedInUser": []}]
        answer = op["responses"]["401"]
        assert answer["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ProductError"
        }
        assert "canonical envelope" in answer["description"]
    scheme = DOCUMENT["components"]["securitySchemes"]["signedInUser"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    user_code = operation("GET", "/oauth/device/verify")["parameters"][0]
    assert user_code["required"] and user_code["schema"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
    }


def test_every_error_status_of_a_dialect_is_one_the_table_speaks() -> None:
    """A documented error status is one errors.TABLE answers in that route's dialect (or a 500)."""
    for route in apidoc.ROUTES:
        for status in route.errors:
            if route.dialect == "oauth":
                spoken = {s.oauth_status for s in errors.TABLE.values()} | {429}  # 429: docs/api.md, per IP
            elif route.dialect == "legacy":
                spoken = {min(s.oauth_status, 500) for s in errors.TABLE.values()}
            else:
                spoken = {s.product_status for s in errors.TABLE.values()}
            assert status in spoken, (route.method, route.path, status)


def test_form_bodies_never_carry_null() -> None:
    """application/x-www-form-urlencoded carries strings: a field is a string or absent. JSON keeps null."""
    for method, path, op in operations():
        content = op.get("requestBody", {}).get("content", {})
        if http.FORM not in content:
            continue
        form = resolve(content[http.FORM]["schema"])
        for name, prop in form["properties"].items():
            assert prop.get("type") == "string" and "anyOf" not in prop, (method, path, name)
        assert form["additionalProperties"] == {"type": "string"}  # each parameter at most once
        as_json = resolve(content[http.JSON]["schema"])
        assert as_json["properties"].keys() == form["properties"].keys()
        assert set(as_json.get("required", [])) == set(form.get("required", []))
        optional = set(form["properties"]) - set(form.get("required", []))
        assert all("minLength" not in form["properties"][name] for name in optional)  # empty = absent


def test_the_links_chain_the_device_flow_and_the_session() -> None:
    ids = {op["operationId"] for _, _, op in operations()}
    links = {
        (f"{method} {path}", name): link
        for method, path, op in operations()
        for name, link in op["responses"]["200"].get("links", {}).items()
    }
    assert all(link["operationId"] in ids for link in links.values())
    device = {name: link for (source, name), link in links.items() if source == "POST /oauth/device/code"}
    assert device["Poll"]["requestBody"]["device_code"] == "$response.body#/device_code"
    assert device["Poll"]["requestBody"]["grant_type"] == DEVICE_GRANT
    assert device["Exchange"]["operationId"] == "post/auth/device/exchange"
    assert device["Exchange"]["requestBody"]["device_code"] == "$response.body#/device_code"
    assert device["Approve"]["requestBody"]["user_code"] == "$response.body#/user_code"
    for issuer in ("POST /oauth/token", "POST /auth/device/exchange"):
        from_tokens = {name: link for (source, name), link in links.items() if source == issuer}
        assert (
            from_tokens["RefreshWithTheTokenEndpoint"]["requestBody"]["refresh_token"]
            == "$response.body#/refresh_token"
        )
        assert from_tokens["RefreshWithTheProductApi"]["operationId"] == "post/auth/refresh"
        assert from_tokens["RevokeTheRefreshToken"]["requestBody"]["token"] == "$response.body#/refresh_token"
        assert from_tokens["RevokeTheAccessToken"]["requestBody"]["token"] == "$response.body#/access_token"
        assert (
            from_tokens["IntrospectTheAccessToken"]["requestBody"]["token"] == "$response.body#/access_token"
        )
        assert (
            from_tokens["IntrospectTheRefreshToken"]["requestBody"]["token"]
            == "$response.body#/refresh_token"
        )
    legacy = {name: link for (source, name), link in links.items() if source == "GET /oauth/token"}
    assert (
        legacy["RefreshWithTheLegacyEndpoint"]["parameters"]["refresh_token"]
        == "$response.body#/data/refresh_token"
    )
    product = {name: link for (source, name), link in links.items() if source == "POST /auth/refresh"}
    assert product["RefreshWithTheProductApi"]["requestBody"] == {
        "refresh_token": "$response.body#/refresh_token"
    }
    assert product["SignOut"]["operationId"] == "post/auth/logout"
