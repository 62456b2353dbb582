"""openapi.json is generated from the models (`make openapi`): it must not drift from them, must be a
valid OpenAPI 3.1 document, and must describe exactly the routes template.yaml serves."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

from authcore import apidoc, discovery, routes
from local import template as tpl

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_document_matches_the_models() -> None:
    committed = (ROOT / "openapi.json").read_text()
    assert committed == apidoc.render(), "openapi.json has drifted: run `make openapi` and commit it"


def test_it_is_valid_openapi() -> None:
    validate(json.loads((ROOT / "openapi.json").read_text()))


def test_it_describes_exactly_the_template_routes() -> None:
    served = {(m, p) for f in tpl.functions(tpl.load_template()) for (m, p, _auth) in f.routes}
    described = {(r.method, r.path) for r in apidoc.ROUTES}
    assert described == served
    signed_in = {(r.method, r.path) for r in routes.ROUTES if r.signed_in}  # checked in the function
    assert {(r.method, r.path) for r in apidoc.ROUTES if r.signed_in} == signed_in


def test_the_document_the_metadata_and_the_routes_are_one_list() -> None:
    """authcore.routes is the one list: the OpenAPI document describes each route in its dialect, and
    the metadata publishes every route that has a metadata name (and nothing else under /)."""
    assert [(r.method, r.path, r.dialect) for r in apidoc.ROUTES] == [
        (r.method, r.path, r.dialect) for r in routes.ROUTES
    ]
    published = discovery.metadata("https://issuer.test", "https://issuer.test/device")
    urls = {v for v in published.values() if isinstance(v, str) and v.startswith("https://issuer.test/")}
    expected = {f"https://issuer.test{r.path}" for r in routes.ROUTES if r.metadata}
    assert urls - {"https://issuer.test/device"} == expected
