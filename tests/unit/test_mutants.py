"""Tests that kill mutants `make mutate` (docs/mutation.md) found alive in the pure modules: each states a
guarantee that a deliberately broken variant of the code broke without any other test noticing."""

from __future__ import annotations

import base64
import hmac
import time
from typing import Any

import pytest

from authcore import clients, errors, tokens
from authcore.store import ClientRecord
from authcore.tokens import KeySet


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ---------------------------------------------------------------- keyed digests


@pytest.fixture
def compare_digest_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, Any]]:
    """Every call of hmac.compare_digest (which still answers)."""
    calls: list[tuple[Any, Any]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    return calls


def test_same_digest_compares_in_constant_time(compare_digest_calls: list[tuple[Any, Any]]) -> None:
    """`==` on two digests returns at the first differing byte: the comparison must be hmac's."""
    assert tokens.same_digest("digest-a", "digest-a") is True
    assert compare_digest_calls == [(b"digest-a", b"digest-a")]
    assert tokens.same_digest("digest-a", "digest-b") is False
    assert compare_digest_calls[-1] == (b"digest-a", b"digest-b")


@pytest.mark.parametrize(("a", "b"), [(None, None), ("digest", None), (None, "digest")])
def test_same_digest_never_matches_a_missing_digest(
    a: str | None, b: str | None, compare_digest_calls: list[tuple[Any, Any]]
) -> None:
    """A grant without a stored digest (no refresh family, no previous token) matches nothing."""
    assert tokens.same_digest(a, b) is False
    assert compare_digest_calls == []


# ---------------------------------------------------------------- the key set


def key_set_document(hmac_key: bytes) -> dict[str, Any]:
    return tokens.new_keyset_document(int(time.time())) | {"hmac_key": b64url(hmac_key)}


def test_key_set_refuses_an_hmac_key_shorter_than_256_bits() -> None:
    """Keys are whole bytes, so the longest key short of 256 bits is 31 bytes (248 bits); the document is
    otherwise valid, so only the key's length can refuse it."""
    with pytest.raises(ValueError, match=r"^the HMAC key must be at least 256 bits$"):
        KeySet.parse(key_set_document(b"k" * 31))


@pytest.mark.parametrize("length", [32, 33, 64])
def test_key_set_accepts_an_hmac_key_of_256_bits_or_more(length: int) -> None:
    keys = KeySet.parse(key_set_document(b"k" * length))
    assert keys.hmac.master == b"k" * length


# ---------------------------------------------------------------- token formats

GRANT = "0123456789abcdef0123456789abcdef"
DEVICE_CODE = f"dc_{GRANT}_" + "A" * 43
KEY = tokens.Hmac(b"k" * 32)


def parsed(text: str) -> tokens.RefreshToken:
    token = tokens.parse_refresh_token(text)
    assert token is not None
    return token


def test_a_grant_id_is_lowercase_hex_only() -> None:
    """The grant id keys a DynamoDB read: nothing but its 32 hex digits gets that far."""
    assert tokens.grant_id_of(f"dc_{GRANT}_" + "A" * 43, "dc") == GRANT
    for bad in ("X" * 32, GRANT.upper(), "g" * 32, GRANT[:-1] + "-"):
        assert tokens.grant_id_of(f"dc_{bad}_" + "A" * 43, "dc") is None


def test_a_refresh_token_needs_its_own_prefix() -> None:
    """The body of a real refresh token under another prefix (same length) is not a refresh token."""
    text = KEY.first_refresh_token(DEVICE_CODE, GRANT, "demo-cli")
    for prefix in ("dc_", "RT_", "xt_", "rt-"):
        assert tokens.parse_refresh_token(prefix + text[3:]) is None


def test_the_longest_client_id_and_the_last_generation_can_be_minted() -> None:
    """The limits are inclusive: a 255-byte client id (its length is one byte) and generation 2^32 - 1."""
    longest = "c" * 255
    token = parsed(KEY.first_refresh_token(DEVICE_CODE, GRANT, longest))
    assert token.client_id == longest and KEY.authentic(token)
    assert len(token.text) < tokens._RT_MAX_CHARS
    before_last = tokens.RefreshToken(token.text, GRANT, tokens.MAX_GENERATION - 1, "demo-cli", b"", b"")
    last = parsed(KEY.successor(before_last))
    assert last.generation == tokens.MAX_GENERATION and KEY.authentic(last)
    with pytest.raises(ValueError, match=r"^client id too long or generation out of range$"):
        KEY.first_refresh_token(DEVICE_CODE, GRANT, "c" * 256)
    with pytest.raises(ValueError, match=r"^client id too long or generation out of range$"):
        KEY.successor(last)


def test_a_successor_depends_on_the_whole_token_it_replaces() -> None:
    """Two tokens of one family and generation (first tokens of two exchanges that named the same grant id)
    must not share a successor: the nonce is derived from the predecessor's text, not only its fields."""
    one = parsed(KEY.first_refresh_token(DEVICE_CODE, GRANT, "demo-cli"))
    other = parsed(KEY.first_refresh_token(DEVICE_CODE[:-1] + "B", GRANT, "demo-cli"))
    assert (one.grant_id, one.generation, one.client_id) == (
        other.grant_id,
        other.generation,
        other.client_id,
    )
    assert KEY.successor(one) != KEY.successor(other)


# ---------------------------------------------------------------- access tokens


def test_an_access_token_is_not_valid_before_it_was_issued() -> None:
    keys = KeySet.parse(tokens.new_keyset_document(1_795_000_000))
    token = tokens.sign_access_token(
        keys, issuer="https://i.test", audience="https://a.test", subject="user-1", client_id="demo-cli",
        scope="read", org_id="acme", grant_id=GRANT, now=1_795_000_000, ttl=60,
    )  # fmt: skip
    claims = tokens.verify_access_token(
        token, keys.public_keys, issuer="https://i.test", audience="https://a.test", now=1_795_000_000
    )
    assert claims["nbf"] == claims["iat"] == 1_795_000_000 and claims["exp"] == 1_795_000_060


# ---------------------------------------------------------------- key rotation


def statuses(doc: dict[str, Any]) -> list[str]:
    return [k["status"] for k in doc["keys"]]


def test_rotation_drops_an_expired_previous_key_and_keeps_going() -> None:
    """A retired key past its keep time is dropped; the keys after it in the document are still rotated."""
    now = 1_795_000_000
    doc = tokens.new_keyset_document(now)
    retired = tokens.new_signing_key(now - 10_000, "previous") | {"retired_at": now - 10_000}
    doc = {**doc, "keys": [retired, *doc["keys"]]}
    current, upcoming = (k["kid"] for k in doc["keys"][1:])
    rotated = tokens.rotate_keyset_document(doc, now, keep_retired_seconds=3_900)
    by_kid = {k["kid"]: k["status"] for k in rotated["keys"]}
    assert retired["kid"] not in by_kid
    assert by_kid[current] == "previous" and by_kid[upcoming] == "current"
    assert sorted(statuses(rotated)) == ["current", "next", "previous"]


def test_rotating_a_set_without_a_next_key_promotes_a_fresh_current_one() -> None:
    now = 1_795_000_000
    doc = tokens.new_keyset_document(now)
    only_current = {**doc, "keys": [k for k in doc["keys"] if k["status"] == "current"]}
    rotated = tokens.rotate_keyset_document(only_current, now + 5, keep_retired_seconds=60)
    assert sorted(statuses(rotated)) == ["current", "next", "previous"]
    fresh = next(k for k in rotated["keys"] if k["status"] == "current")
    assert fresh["created_at"] == now + 5 and fresh["kid"] != only_current["keys"][0]["kid"]
    assert next(k for k in rotated["keys"] if k["status"] == "next")["created_at"] == now + 5
    KeySet.parse(rotated)  # a usable set


# ---------------------------------------------------------------- client policy


def client(**fields: Any) -> ClientRecord:
    defaults: dict[str, Any] = {
        "client_id": "demo-cli",
        "name": "Demo CLI",
        "client_type": "public",
        "grant_types": [clients.DEVICE_GRANT, clients.REFRESH_GRANT],
        "scopes": ["read", "write"],
    }
    return ClientRecord(**(defaults | fields))


@pytest.mark.parametrize(
    ("minimum", "header", "outcome"),
    [
        (None, "0.0.1", None),  # no minimum: anything goes
        ("2.0.0", None, None),  # no header: nothing to compare
        ("2.0.0", "2.0.0", None),
        ("2.0.0", "v2.0.0", None),
        ("2.0.0", "2.0.1-beta+7", None),
        ("2.0.0", " 10.0 ", None),
        ("2.0.0", "2.0", "upgrade"),  # (2, 0) < (2, 0, 0)
        ("2.0.0", "1.9.9", "upgrade"),
        ("2.0.0", "v1.99999.0", "upgrade"),
        ("2.0.0", "two", "invalid"),
        ("2.0.0", "", "invalid"),
        ("2.0.0", "1.2.3.4.5", "invalid"),
        ("2.0.0", "1234567.0", "invalid"),
        ("not a version", "0.0.1", None),  # a minimum that cannot be read is not enforced
    ],
)
def test_client_version_rules(minimum: str | None, header: str | None, outcome: str | None) -> None:
    record = client(min_version=minimum)
    if outcome is None:
        clients.check_version(record, header)
    elif outcome == "upgrade":
        with pytest.raises(errors.UpgradeRequired):
            clients.check_version(record, header)
    else:
        with pytest.raises(errors.InvalidRequest):
            clients.check_version(record, header)


@pytest.mark.parametrize(
    ("requested", "granted"),
    [
        (None, "read write"),
        ("", "read write"),
        ("  ", "read write"),
        ("write", "write"),
        ("write read write", "write read"),  # the asked order, once each
    ],
)
def test_a_new_grant_gets_the_asked_scope_or_everything(requested: str | None, granted: str) -> None:
    assert clients.resolve_scope(client(), requested) == granted


@pytest.mark.parametrize("requested", ["admin", "read admin", "READ"])
def test_a_new_grant_never_gets_a_scope_the_client_may_not_have(requested: str) -> None:
    with pytest.raises(errors.InvalidScope):
        clients.resolve_scope(client(), requested)


def test_a_client_uses_only_its_grant_types() -> None:
    clients.require_grant(client(), clients.REFRESH_GRANT)
    with pytest.raises(errors.UnauthorizedClient):
        clients.require_grant(client(grant_types=[clients.REFRESH_GRANT]), clients.DEVICE_GRANT)


def test_key_set_says_what_is_wrong_with_a_bad_document() -> None:
    """The key set is read at every cold start: its refusals name the fault for the operator."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    doc = tokens.new_keyset_document(1_795_000_000)
    rsa_pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    with pytest.raises(ValueError, match=r"^signing keys must be EC P-256$"):
        KeySet.parse(doc | {"keys": [doc["keys"][0] | {"private_pem": rsa_pem}]})
    with pytest.raises(ValueError, match=r"^the key set has no current key$"):
        KeySet.parse(doc | {"keys": [k for k in doc["keys"] if k["status"] != "current"]})
