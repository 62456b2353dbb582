"""Issue #10 item 6: the JWKS and the metadata are cacheable (public, max-age, ETag, 304), unlike every
other answer, which stays no-store; a key rotation changes the JWKS's ETag."""

from __future__ import annotations

import json

import pytest

from authcore import runtime
from local import admin
from tests.conftest import Api
from tests.support.aws import Seed

DOCUMENTS = {"/.well-known/jwks.json": 300, "/.well-known/oauth-authorization-server": 3600}


@pytest.mark.parametrize(("path", "max_age"), DOCUMENTS.items())
def test_a_public_document_is_cacheable_with_an_etag(
    api: Api, account: Seed, path: str, max_age: int
) -> None:
    first = api.call("GET", path)
    assert first.status == 200, first.text
    assert first.headers["cache-control"] == f"public, max-age={max_age}"
    assert "pragma" not in first.headers
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 10
    assert json.loads(first.text)  # the document itself
    again = api.call("GET", path)
    assert again.headers["etag"] == etag and again.text == first.text  # stable: caches can use it


@pytest.mark.parametrize("path", DOCUMENTS)
def test_the_current_etag_gets_304_without_a_body(api: Api, account: Seed, path: str) -> None:
    etag = api.call("GET", path).headers["etag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        unchanged = api.call("GET", path, headers={"if-none-match": sent})
        assert unchanged.status == 304 and unchanged.text == "", sent
        assert unchanged.headers["etag"] == etag and "max-age" in unchanged.headers["cache-control"]
    stale = api.call("GET", path, headers={"if-none-match": '"not-the-current-one"'})
    assert stale.status == 200 and stale.text


def test_a_key_rotation_changes_the_jwks_etag(
    api: Api, account: Seed, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = api.call("GET", "/.well-known/jwks.json")
    assert admin.main(["keys", "rotate"]) == 0
    monkeypatch.setenv("SECRET_CACHE_SECONDS", "0")
    runtime.reset()
    after = api.call("GET", "/.well-known/jwks.json", headers={"if-none-match": before.headers["etag"]})
    assert after.status == 200, "the old ETag no longer matches: the new key set is served"
    assert after.headers["etag"] != before.headers["etag"]
    kids = {k["kid"] for k in json.loads(after.text)["keys"]}
    assert kids != {k["kid"] for k in json.loads(before.text)["keys"]}


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("POST", "/oauth/device/code", {"form": {"client_id": "demo-cli"}}),
        ("GET", "/auth/sessions", {}),
        ("GET", "/no/such/route", {}),
    ],
)
def test_every_other_answer_stays_no_store(
    api: Api, account: Seed, method: str, path: str, kwargs: dict[str, object]
) -> None:
    result = api.call(method, path, **kwargs)  # type: ignore[arg-type]
    assert result.headers["cache-control"] == "no-store" and "etag" not in result.headers
