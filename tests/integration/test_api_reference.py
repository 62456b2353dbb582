"""docs/api.md, the API reference, says what openapi.json and authcore.errors.TABLE say.

docs/api.md is written for people, and laid out so that this test can read it:
- one ``### METHOD /path`` heading per route, with a ``**Dialect:**`` line and a status table
  (``| status | error | when |``) whose ``error`` column lists the codes that route answers;
- the OAuth and product error tables after ``<!-- errors: oauth -->`` and ``<!-- errors: product -->``.

Checked: the routes are those of openapi.json (and of authcore.routes); each route's statuses are
openapi.json's; every error code on the page is one the service speaks with that status in that
dialect, and the two error tables are exactly errors.TABLE; every field of every schema and every
response header of openapi.json is named on the page.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from authcore import errors, routes
from tests.conftest import Api
from tests.support import aws

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "api.md"
OPENAPI = ROOT / "openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")

# Statuses the code answers that openapi.json does not describe yet (each with its own strict xfail test
# below): the page tells the truth, the document for tools catches up.
KNOWN_GAPS: set[tuple[str, str, int]] = set()

DIALECTS = {"OAuth": "oauth", "product": "product", "legacy": "legacy", "none": "none", "HTML": "html"}


# ---------------------------------------------------------------- reading the page


def doc_text() -> str:
    return DOC.read_text(encoding="utf-8")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def table_after(lines: list[str], start: int, header: str) -> list[list[str]]:
    """The rows of the first table from line `start` whose header's first cell is `header`."""
    i = start
    while i < len(lines) and not (lines[i].startswith("|") and cells(lines[i])[0] == header):
        if i > start and lines[i].startswith("#"):
            return []
        i += 1
    rows = []
    for line in lines[i + 2 :]:  # the header, then the |---| line
        if not line.startswith("|"):
            break
        rows.append(cells(line))
    return rows


def codes(cell: str) -> set[str]:
    return set(re.findall(r"`([a-z_]+)`", cell))


def documented_routes() -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, path) -> {"dialect", "statuses": {status: set of codes}} from the ### headings."""
    lines = doc_text().splitlines()
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for i, line in enumerate(lines):
        heading = re.fullmatch(r"### (GET|POST|PUT|PATCH|DELETE) (/\S*)", line.strip())
        if heading is None:
            continue
        key = (heading.group(1), heading.group(2))
        assert key not in found, f"{key} has two sections"
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(("## ", "### "))), len(lines))
        section = "\n".join(lines[i:end])
        dialect = re.search(r"\*\*Dialect:\*\* (\w+)\.", section)
        assert dialect is not None, f"{key}: no **Dialect:** line"
        statuses: dict[int, set[str]] = {}
        for row in table_after(lines[:end], i, "status"):
            status = int(row[0])
            assert status not in statuses, f"{key}: status {status} twice"
            statuses[status] = codes(row[1])
        assert statuses, f"{key}: no status table"
        found[key] = {"dialect": DIALECTS[dialect.group(1)], "statuses": statuses}
    return found


def error_table(dialect: str) -> set[tuple[int, str]]:
    lines = doc_text().splitlines()
    marker = lines.index(f"<!-- errors: {dialect} -->")
    pairs = set()
    for row in table_after(lines, marker, "status"):
        (code,) = codes(row[1])
        pairs.add((int(row[0]), code))
    return pairs


# ---------------------------------------------------------------- what the code says


def openapi() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(OPENAPI.read_text(encoding="utf-8"))
    return document


def openapi_routes() -> dict[tuple[str, str], set[int]]:
    return {
        (method.upper(), path): {int(status) for status in op["responses"]}
        for path, ops in openapi()["paths"].items()
        for method, op in ops.items()
        if method in METHODS
    }


def spoken(dialect: str) -> set[tuple[int, str]]:
    """(status, code) pairs the service answers in a dialect, from errors.TABLE."""
    if dialect == "oauth":
        return {(s.oauth_status, s.oauth_error) for s in errors.TABLE.values()}
    if dialect == "legacy":  # http.render_problem: the legacy envelope says every 5xx as 500
        return {(min(s.oauth_status, 500), s.oauth_error) for s in errors.TABLE.values()}
    return {(s.product_status, s.product_type) for s in errors.TABLE.values()}


# ---------------------------------------------------------------- the tests


def test_the_page_has_exactly_the_routes_of_openapi_and_of_the_layer() -> None:
    documented = set(documented_routes())
    assert documented == set(openapi_routes())
    assert documented == {(r.method, r.path) for r in routes.DOCUMENTED}


def test_each_route_has_exactly_the_statuses_of_openapi() -> None:
    documented = documented_routes()
    described = openapi_routes()
    differ = {}
    for key, statuses in described.items():
        on_page = set(documented[key]["statuses"]) - {s for m, p, s in KNOWN_GAPS if (m, p) == key}
        if on_page != statuses:
            differ[key] = {
                "page only": sorted(on_page - statuses),
                "openapi only": sorted(statuses - on_page),
            }
    assert differ == {}


def test_each_route_names_its_dialect() -> None:
    documented = documented_routes()
    assert {key: d["dialect"] for key, d in documented.items()} == {
        (r.method, r.path): r.dialect for r in routes.DOCUMENTED
    }


def test_every_error_status_names_codes_the_service_speaks_with_it() -> None:
    """An error row names at least one code, and only codes errors.TABLE speaks with that status in the
    route's dialect (the public documents and the pages answer errors with the product envelope)."""
    wrong = {}
    for key, route in documented_routes().items():
        dialect = {"none": "product", "html": "product"}.get(route["dialect"], route["dialect"])
        allowed = spoken(dialect)
        for status, named in route["statuses"].items():
            if status in (200, 304):
                if named:
                    wrong[(*key, status)] = f"a success names codes: {sorted(named)}"
                continue
            unknown = {code for code in named if (status, code) not in allowed}
            if not named or unknown:
                wrong[(*key, status)] = f"codes {sorted(named)}; not spoken with {status}: {sorted(unknown)}"
    assert wrong == {}


@pytest.mark.parametrize("dialect", ["oauth", "product"])
def test_the_error_tables_are_the_table_of_errors(dialect: str) -> None:
    assert error_table(dialect) == spoken(dialect)


def test_every_field_of_openapi_is_named_on_the_page() -> None:
    """In a table or the text (`name`, `data.name`) or in a JSON example ("name": ...)."""
    text = doc_text()
    fields = {
        name
        for schema in openapi()["components"]["schemas"].values()
        for name in schema.get("properties", {})
    }
    parameters = {
        parameter["name"]
        for ops in openapi()["paths"].values()
        for op in ops.values()
        if isinstance(op, dict)
        for parameter in op.get("parameters", [])
    }
    assert fields and parameters
    named = set(re.findall(r"`(?:[\w.]+\.)?(\w+)`", text)) | set(re.findall(r'"(\w+)":', text))  # `a.b`, JSON
    assert sorted((fields | parameters) - named) == []


def test_every_response_header_of_openapi_is_named_on_the_page() -> None:
    text = doc_text()
    headers = {
        name
        for ops in openapi()["paths"].values()
        for op in ops.values()
        if isinstance(op, dict)
        for response in op["responses"].values()
        for name in response.get("headers", {})
    }
    assert "Retry-After" in headers
    assert sorted(h for h in headers if f"`{h}" not in text) == []


def test_the_page_reads_its_own_tables() -> None:
    """The reader above is not vacuous: it finds what the page visibly holds."""
    documented = documented_routes()
    assert documented[("POST", "/oauth/device/code")]["statuses"][429] == {"temporarily_unavailable"}
    assert documented[("DELETE", "/auth/sessions/{id}")]["statuses"][404] == {"not_found"}
    assert documented[("GET", "/oauth/token")]["dialect"] == "legacy"
    assert (429, "slow_down") in error_table("product")


# ---------------------------------------------------------------- known gaps of openapi.json


def test_openapi_describes_the_401_of_logout(api: Api, account: aws.Seed) -> None:
    started = api.device_code(
        client_id=account.confidential_client, client_secret=account.confidential_secret
    )
    assert api.approve(started["user_code"], account.user).status == 200
    basic = base64.b64encode(f"{account.confidential_client}:{account.confidential_secret}".encode()).decode()
    exchanged = api.call(
        "POST",
        "/auth/device/exchange",
        body={"device_code": started["device_code"], "client_id": account.confidential_client},
        headers={"authorization": f"Basic {basic}"},
    )
    assert exchanged.status == 200, exchanged.text
    answered = api.call("POST", "/auth/logout", body={"refresh_token": exchanged.json()["refresh_token"]})
    assert (answered.status, answered.json()["type"]) == (401, "invalid_client")  # what the code says
    assert answered.status in openapi_routes()[("POST", "/auth/logout")]
