"""openapi.json is generated from the models (`make openapi`): it must not drift from them, must be a
valid OpenAPI 3.1 document, and must describe exactly the routes template.yaml serves."""

from __future__ import annotations

import json
from pathlib import Path

from openapi_spec_validator import validate

from authcore import apidoc
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
    signed_in = {(m, p) for f in tpl.functions(tpl.load_template()) for (m, p, auth) in f.routes if auth}
    assert {(r.method, r.path) for r in apidoc.ROUTES if r.signed_in} == signed_in
