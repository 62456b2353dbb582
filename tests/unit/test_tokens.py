"""authcore.tokens, pure: user codes, device codes and refresh tokens, keyed digests, successors, the
signing key set and its rotation, and access tokens (RFC 9068) checked with plain PyJWT and the
published JWKS, plus the attacks verification must refuse."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from authcore import tokens
from authcore.tokens import Hmac, KeySet

CONTRACT_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
ISSUER = "https://auth.example.test"
AUDIENCE = "https://api.example.test"
GRANT = "0123456789abcdef0123456789abcdef"
NOW = 1_795_000_000
CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "org_id", "sid")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ---------------------------------------------------------------- user codes


def test_user_code_alphabet_is_the_contracts() -> None:
    assert tokens.USER_CODE_ALPHABET == CONTRACT_ALPHABET
    assert not set(CONTRACT_ALPHABET) & set("AEIOUY0123456789")


def test_new_user_codes() -> None:
    codes = [tokens.new_user_code() for _ in range(2_000)]
    for code in codes:
        assert len(code) == 8 and set(code) <= set(CONTRACT_ALPHABET), code
    assert set("".join(codes)) == set(CONTRACT_ALPHABET)  # every letter is used
    assert len(set(codes)) == len(codes)


def test_user_code_is_shown_as_two_groups_of_four() -> None:
    assert tokens.display_user_code("WDJBMJHT") == "WDJB-MJHT"
    shown = tokens.display_user_code(tokens.new_user_code())
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", shown)


@pytest.mark.parametrize(
    "typed",
    [
        "WDJB-MJHT",
        "WDJBMJHT",
        "wdjb-mjht",
        "wdjbmjht",
        "wdjb mjht",
        "WdJb-mJhT",
        "  wdjb-mjht  ",
        "w d j b m j h t",
        "W-D-J-B-M-J-H-T",
        "wdjb - mjht",
        "wdjb\tmjht",
    ],
)
def test_user_code_normalization(typed: str) -> None:
    assert tokens.normalize_user_code(typed) == "WDJBMJHT"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "WDJB-MJH",  # too short
        "WDJB-MJHTB",  # too long
        "WDJB-MJHA",  # a vowel
        "WDJB-MJHE",
        "WDJB-MJHY",
        "WDJB-MJH1",  # a digit
        "WDJB-MJH0",
        "WDJB_MJHT",  # not a hyphen
        "WDJB.MJHT",
        "WDJB-MJH\u00c9",
        "WDJB-MJH\U0001f600",
        "WDJB-MJH\x00",
        "--------",
        "        ",
    ],
)
def test_user_code_rejections(typed: str) -> None:
    assert tokens.normalize_user_code(typed) is None


# ---------------------------------------------------------------- device codes and refresh tokens

TOKEN_SHAPE = re.compile(r"^(dc|rt)_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")


@pytest.mark.parametrize("prefix", [tokens.DEVICE_CODE_PREFIX, tokens.REFRESH_TOKEN_PREFIX])
def test_secret_tokens_have_a_prefix_and_256_random_bits(prefix: str) -> None:
    grant_id = tokens.new_grant_id()
    made = [tokens.new_secret_token(prefix, grant_id) for _ in range(500)]
    for token in made:
        match = TOKEN_SHAPE.match(token)
        assert match, token
        assert match.group(1) == prefix and match.group(2) == grant_id
        assert len(b64url_decode(match.group(3))) * 8 >= 256
    assert len({TOKEN_SHAPE.match(t).group(3) for t in made}) == len(made)  # type: ignore[union-attr]
    # no fixed bits: every position of the random part takes many values
    for position in range(42):
        assert len({TOKEN_SHAPE.match(t).group(3)[position] for t in made}) > 20  # type: ignore[union-attr]


def test_prefixes_are_distinct_and_recognisable() -> None:
    assert tokens.DEVICE_CODE_PREFIX == "dc" and tokens.REFRESH_TOKEN_PREFIX == "rt"


def test_grant_ids_are_128_bit_hex() -> None:
    ids = {tokens.new_grant_id() for _ in range(500)}
    assert len(ids) == 500 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_grant_id_of_a_well_formed_token() -> None:
    for prefix in (tokens.DEVICE_CODE_PREFIX, tokens.REFRESH_TOKEN_PREFIX):
        token = tokens.new_secret_token(prefix, GRANT)
        assert tokens.grant_id_of(token, prefix) == GRANT


SECRET_PART = "A" * 20 + "_-" + "b" * 21


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(f"dc_{GRANT}_{SECRET_PART}", id="other_prefix"),
        pytest.param(f"RT_{GRANT}_{SECRET_PART}", id="prefix_case"),
        pytest.param(f"rtx{GRANT}_{SECRET_PART}", id="no_separator"),
        pytest.param(f"rt_{GRANT.upper()}_{SECRET_PART}", id="upper_hex"),
        pytest.param(f"rt_{GRANT[:-1]}g_{SECRET_PART}", id="not_hex"),
        pytest.param(f"rt_{GRANT}_{SECRET_PART[:-1]}", id="secret_short"),
        pytest.param(f"rt_{GRANT}_{SECRET_PART}A", id="secret_long"),
        pytest.param(f"rt_{GRANT}_{SECRET_PART[:-1]}=", id="padding"),
        pytest.param(f"rt_{GRANT}_{SECRET_PART[:-1]}+", id="not_base64url"),
        pytest.param(f"rt_{GRANT}_{SECRET_PART[:-1]}\u00e9", id="unicode"),
        pytest.param(f"rt_{GRANT}_{SECRET_PART[:-1]}\x00", id="nul"),
        pytest.param(f"rt_{GRANT[:-1]}_{SECRET_PART}A", id="grant_short"),
        pytest.param(f"rt_{GRANT}{SECRET_PART}_", id="separator_moved"),
        pytest.param("", id="empty"),
        pytest.param("rt_", id="prefix_only"),
        pytest.param("eyJhbGciOiJFUzI1NiJ9.e30.c2ln", id="jwt"),
    ],
)
def test_grant_id_of_rejects_malformed_tokens(token: str) -> None:
    assert tokens.grant_id_of(token, tokens.REFRESH_TOKEN_PREFIX) is None


def test_a_device_code_is_not_a_refresh_token() -> None:
    code = tokens.new_secret_token(tokens.DEVICE_CODE_PREFIX, GRANT)
    assert tokens.grant_id_of(code, tokens.REFRESH_TOKEN_PREFIX) is None
    refresh = tokens.new_secret_token(tokens.REFRESH_TOKEN_PREFIX, GRANT)
    assert tokens.grant_id_of(refresh, tokens.DEVICE_CODE_PREFIX) is None


# ---------------------------------------------------------------- keyed digests and successors


def test_digests_are_keyed() -> None:
    secret = tokens.new_secret_token(tokens.REFRESH_TOKEN_PREFIX, GRANT)
    one, other = Hmac(b"k" * 32), Hmac(b"j" * 32)
    assert one.digest(secret) == Hmac(b"k" * 32).digest(secret)  # deterministic
    assert one.digest(secret) != other.digest(secret)  # keyed
    assert one.digest(secret) != one.digest(secret + "x")
    plain = b64url(hashlib.sha256(secret.encode()).digest())
    assert one.digest(secret) != plain  # not a bare hash
    assert secret not in one.digest(secret)
    assert len(b64url_decode(one.digest(secret))) == 32


def test_same_digest() -> None:
    assert tokens.same_digest("abc", "abc")
    assert not tokens.same_digest("abc", "abd")
    assert not tokens.same_digest(None, None)
    assert not tokens.same_digest("abc", None)


DEVICE_CODE = "dc_" + GRANT + "_" + "D" * 43


KEY = Hmac(b"k" * 32)


def first(key: Hmac = KEY, client: str = "demo-cli") -> tokens.RefreshToken:
    token = tokens.parse_refresh_token(key.first_refresh_token(DEVICE_CODE, GRANT, client))
    assert token is not None
    return token


def test_first_refresh_token_names_its_family_and_comes_from_the_device_code() -> None:
    key = Hmac(b"k" * 32)
    token = first(key)
    assert (token.grant_id, token.generation, token.client_id) == (GRANT, 1, "demo-cli")
    assert key.authentic(token)
    # a re-sent exchange of the same code gets the same token; another code, another token
    assert key.first_refresh_token(DEVICE_CODE, GRANT, "demo-cli") == token.text
    assert key.first_refresh_token(DEVICE_CODE[:-1] + "E", GRANT, "demo-cli") != token.text
    assert Hmac(b"j" * 32).first_refresh_token(DEVICE_CODE, GRANT, "demo-cli") != token.text
    assert (
        re.fullmatch(r"rt_[A-Za-z0-9_-]+", token.text) and len(token.text) <= 512
    )  # fits the request models


def test_successor_is_deterministic_keyed_and_one_generation_on() -> None:
    key = Hmac(b"k" * 32)
    token = first(key)
    successor = key.successor(token)
    assert successor == Hmac(b"k" * 32).successor(token)  # concurrent rotations agree
    assert successor != Hmac(b"j" * 32).successor(token)  # nobody without the key can compute it
    parsed = tokens.parse_refresh_token(successor)
    assert parsed is not None and key.authentic(parsed)
    assert (parsed.grant_id, parsed.generation, parsed.client_id) == (GRANT, 2, "demo-cli")
    assert key.digest(successor) != key.digest(token.text)


def test_successor_chain_does_not_repeat() -> None:
    key = Hmac(b"k" * 32)
    chain = [first(key)]
    for _ in range(200):
        parsed = tokens.parse_refresh_token(key.successor(chain[-1]))
        assert parsed is not None
        chain.append(parsed)
    assert len({t.text for t in chain}) == len(chain)
    assert [t.generation for t in chain] == list(range(1, 202))


def _raw(token: tokens.RefreshToken) -> bytearray:
    return bytearray(b64url_decode(token.text.removeprefix("rt_")))


def _text(raw: bytes) -> str:
    return "rt_" + b64url(bytes(raw))


@pytest.mark.parametrize("offset", [0, 1, 16, 17, 20, 21, 25, -40, -17, -16, -1])
def test_every_byte_is_covered_by_the_tag(offset: int) -> None:
    """Change any one byte (version, grant, generation, client, nonce, tag): never authentic."""
    key = Hmac(b"k" * 32)
    raw = _raw(first(key))
    raw[offset] ^= 0x01
    parsed = tokens.parse_refresh_token(_text(raw))
    assert parsed is None or not key.authentic(parsed)


def test_a_tag_does_not_move_to_another_generation_or_client() -> None:
    key = Hmac(b"k" * 32)
    token = first(key)
    raw = _raw(token)
    raw[17:21] = (7).to_bytes(4, "big")  # claim generation 7 with generation 1's tag
    bumped = tokens.parse_refresh_token(_text(raw))
    assert bumped is not None and bumped.generation == 7 and not key.authentic(bumped)
    other = first(key, client="backend")
    spliced = tokens.parse_refresh_token(_text(_raw(other)[:-16] + _raw(token)[-16:]))
    assert spliced is not None and not key.authentic(spliced)


def test_authentic_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens.hmac, "compare_digest", spy)
    key = Hmac(b"k" * 32)
    token = first(key)
    assert key.authentic(token)
    assert seen and seen[-1][1] == token.tag


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("rt_", id="prefix_only"),
        pytest.param("dc_" + "A" * 100, id="other_prefix"),
        pytest.param("rt_" + "A" * 10, id="short"),
        pytest.param("rt_" + "A" * 1000, id="long"),
        pytest.param("rt_" + GRANT + "_" + "A" * 43, id="version_1_shape"),
        pytest.param("rt_AAAA+AAA", id="not_base64url"),
        pytest.param("rt_AAAA=", id="padding"),
        pytest.param("rt_\u00e9AAA", id="unicode"),
    ],
)
def test_parse_refuses_what_is_not_a_refresh_token(text: str) -> None:
    assert tokens.parse_refresh_token(text) is None


def test_parse_refuses_bad_fields() -> None:
    raw = _raw(first())
    for offset, value in ((0, 1), (0, 3)):  # unknown versions
        changed = bytearray(raw)
        changed[offset] = value
        assert tokens.parse_refresh_token(_text(changed)) is None
    zero = bytearray(raw)
    zero[17:21] = bytes(4)  # generation 0 does not exist
    assert tokens.parse_refresh_token(_text(zero)) is None
    long_client = bytearray(raw)
    long_client[21] = 200  # says the client id is longer than the token holds
    assert tokens.parse_refresh_token(_text(long_client)) is None
    control = bytearray(raw)
    control[22] = 0x07  # a control character in the client id
    assert tokens.parse_refresh_token(_text(control)) is None
    assert tokens.parse_refresh_token(_text(raw) + "A") is None  # a trailing character: not one spelling


def test_minting_refuses_what_cannot_be_encoded() -> None:
    key = Hmac(b"k" * 32)
    with pytest.raises(ValueError):
        key.first_refresh_token(DEVICE_CODE, GRANT, "c" * 256)
    token = first(key)
    last = tokens.RefreshToken(token.text, GRANT, tokens.MAX_GENERATION, "demo-cli", b"", b"")
    with pytest.raises(ValueError):
        key.successor(last)


# ---------------------------------------------------------------- the signing key set


def kinds(doc: dict[str, Any]) -> dict[str, str]:
    return {k["kid"]: k["status"] for k in doc["keys"]}


def test_new_key_set() -> None:
    doc = tokens.new_keyset_document(NOW)
    assert sorted(kinds(doc).values()) == ["current", "next"]
    assert len(b64url_decode(doc["hmac_key"])) >= 32
    keyset = KeySet.parse(json.dumps(doc))
    current = next(k for k, s in kinds(doc).items() if s == "current")
    assert keyset.signing_kid == current
    assert {k["kid"] for k in keyset.jwks()["keys"]} == set(kinds(doc))  # next is published ahead


def test_kid_is_the_rfc7638_thumbprint() -> None:
    keyset = KeySet.parse(tokens.new_keyset_document(NOW))
    for jwk in keyset.jwks()["keys"]:
        canonical = json.dumps({k: jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":"))
        assert jwk["kid"] == b64url(hashlib.sha256(canonical.encode()).digest())


def test_rotation_next_current_previous_and_retirement() -> None:
    keep = 3_900
    doc0 = tokens.new_keyset_document(NOW)
    first = next(k for k, s in kinds(doc0).items() if s == "current")
    second = next(k for k, s in kinds(doc0).items() if s == "next")
    old_token = sign(KeySet.parse(doc0))

    doc1 = tokens.rotate_keyset_document(doc0, NOW + 100, keep_retired_seconds=keep)
    assert kinds(doc1)[first] == "previous" and kinds(doc1)[second] == "current"
    (third,) = [k for k, s in kinds(doc1).items() if s == "next"]
    assert third not in (first, second)
    set1 = KeySet.parse(doc1)
    assert set1.signing_kid == second
    assert {first, second, third} == {k["kid"] for k in set1.jwks()["keys"]}
    verify(old_token, set1)  # a token of the retired key still verifies

    doc2 = tokens.rotate_keyset_document(doc1, NOW + 100 + keep - 1, keep_retired_seconds=keep)
    assert first in kinds(doc2)  # not yet: its tokens may still be alive
    assert kinds(doc2)[second] == "previous" and kinds(doc2)[third] == "current"
    verify(old_token, KeySet.parse(doc2))

    doc3 = tokens.rotate_keyset_document(doc2, NOW + 100 + keep, keep_retired_seconds=keep)
    assert first not in kinds(doc3)  # everything it signed has expired: dropped
    assert first not in {k["kid"] for k in KeySet.parse(doc3).jwks()["keys"]}
    with pytest.raises(tokens.InvalidAccessToken):
        verify(old_token, KeySet.parse(doc3))

    assert doc0["hmac_key"] == doc1["hmac_key"] == doc2["hmac_key"] == doc3["hmac_key"]
    assert [k["status"] for k in doc3["keys"]].count("current") == 1
    assert [k["status"] for k in doc3["keys"]].count("next") == 1


def test_rotation_does_not_change_the_input_document() -> None:
    doc = tokens.new_keyset_document(NOW)
    before = json.dumps(doc, sort_keys=True)
    tokens.rotate_keyset_document(doc, NOW + 10, keep_retired_seconds=60)
    assert json.dumps(doc, sort_keys=True) == before


def test_jwks_has_no_private_parts() -> None:
    doc = tokens.new_keyset_document(NOW)
    jwks = KeySet.parse(doc).jwks()
    text = json.dumps(jwks)
    assert '"d"' not in text and "PRIVATE" not in text
    for key in jwks["keys"]:
        assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
        assert key["alg"] == "ES256" and key["use"] == "sig"


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"hmac_key": b64url(b"k" * 16), "keys": []}, id="short_hmac_key"),
        pytest.param({"hmac_key": b64url(b"k" * 32), "keys": []}, id="no_keys"),
    ],
)
def test_key_set_parse_refuses_weak_or_incomplete_sets(doc: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        KeySet.parse(doc)


# ---------------------------------------------------------------- access tokens


@pytest.fixture(scope="module")
def keyset() -> KeySet:
    return KeySet.parse(tokens.new_keyset_document(int(time.time())))


def sign(keyset: KeySet, *, now: int | None = None, ttl: int = 3600, **overrides: str) -> str:
    fields: dict[str, Any] = {
        "issuer": ISSUER,
        "audience": AUDIENCE,
        "subject": "user-1",
        "client_id": "demo-cli",
        "scope": "read write",
        "org_id": "acme",
        "grant_id": GRANT,
    } | overrides
    return tokens.sign_access_token(keyset, now=int(time.time()) if now is None else now, ttl=ttl, **fields)


def verify(token: str, keyset: KeySet, issuer: str = ISSUER, audience: str = AUDIENCE) -> dict[str, Any]:
    return tokens.verify_access_token(token, keyset.public_keys, issuer=issuer, audience=audience)


def test_access_token_verifies_with_the_published_jwks(keyset: KeySet) -> None:
    token = sign(keyset)
    published = json.loads(json.dumps(keyset.jwks()))  # what GET /.well-known/jwks.json serves
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt" and header["kid"] == keyset.signing_kid
    jwk_set = jwt.PyJWKSet.from_dict(published)
    claims = jwt.decode(
        token, jwk_set[header["kid"]].key, algorithms=["ES256"], audience=AUDIENCE, issuer=ISSUER
    )
    (jwk,) = [k for k in published["keys"] if k["kid"] == header["kid"]]
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience=AUDIENCE) == claims
    assert verify(token, keyset) == claims


def test_access_token_carries_every_claim_of_the_contract(keyset: KeySet) -> None:
    now = int(time.time())
    token = sign(keyset, now=now, ttl=600)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(CLAIMS) <= set(claims)
    assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE and claims["sub"] == "user-1"
    assert claims["client_id"] == "demo-cli" and claims["scope"] == "read write"
    assert claims["org_id"] == "acme" and claims["sid"] == GRANT
    assert claims["iat"] == now and claims["exp"] == now + 600
    uuid.UUID(claims["jti"])
    assert claims["jti"] != jwt.decode(sign(keyset), options={"verify_signature": False})["jti"]


def _forge(
    header: dict[str, Any], payload: dict[str, Any], key: bytes | None = None, sig: bytes = b""
) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if key is not None:
        sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def _claims(keyset: KeySet) -> dict[str, Any]:
    return jwt.decode(sign(keyset), options={"verify_signature": False})


def test_alg_none_is_refused(keyset: KeySet) -> None:
    for alg in ("none", "None", "NONE"):
        forged = _forge({"alg": alg, "typ": "at+jwt", "kid": keyset.signing_kid}, _claims(keyset))
        with pytest.raises(tokens.InvalidAccessToken):
            verify(forged, keyset)


def _public_key_encodings(keyset: KeySet) -> dict[str, bytes]:
    public = keyset.public_keys[keyset.signing_kid]
    jwk = next(k for k in keyset.jwks()["keys"] if k["kid"] == keyset.signing_kid)
    return {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "point": public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ),
        "jwk_json": json.dumps(jwk).encode(),
    }


@pytest.mark.parametrize("encoding", ["pem", "der", "point", "jwk_json"])
@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
def test_hmac_signed_with_the_public_key_is_refused(keyset: KeySet, encoding: str, alg: str) -> None:
    """The classic key confusion: an attacker signs HS* with the (public) verification key as secret."""
    key = _public_key_encodings(keyset)[encoding]
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    header = {"alg": alg, "typ": "at+jwt", "kid": keyset.signing_kid}
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(_claims(keyset)).encode())}"
    forged = f"{signing_input}.{b64url(hmac.new(key, signing_input.encode(), digest).digest())}"
    with pytest.raises(tokens.InvalidAccessToken):
        verify(forged, keyset)


def test_unknown_kid_is_refused(keyset: KeySet) -> None:
    stranger = ec.generate_private_key(ec.SECP256R1())
    for kid in ("not-a-kid", keyset.signing_kid):  # unknown, and a known kid with a foreign key
        forged = jwt.encode(
            _claims(keyset), stranger, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"}
        )
        with pytest.raises(tokens.InvalidAccessToken):
            verify(forged, keyset)
    no_kid = jwt.encode(_claims(keyset), stranger, algorithm="ES256", headers={"typ": "at+jwt"})
    with pytest.raises(tokens.InvalidAccessToken):
        verify(no_kid, keyset)


def test_other_asymmetric_algorithms_are_refused(keyset: KeySet) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    forged = jwt.encode(
        _claims(keyset), p384, algorithm="ES384", headers={"kid": keyset.signing_kid, "typ": "at+jwt"}
    )
    with pytest.raises(tokens.InvalidAccessToken):
        verify(forged, keyset)


def test_wrong_issuer_or_audience_is_refused(keyset: KeySet) -> None:
    token = sign(keyset)
    with pytest.raises(tokens.InvalidAccessToken):
        verify(token, keyset, issuer="https://evil.example")
    with pytest.raises(tokens.InvalidAccessToken):
        verify(token, keyset, audience="https://other-api.example")
    with pytest.raises(tokens.InvalidAccessToken):
        verify(sign(keyset, issuer="https://evil.example"), keyset)


def test_expired_token_is_refused(keyset: KeySet) -> None:
    with pytest.raises(tokens.InvalidAccessToken):
        verify(sign(keyset, now=int(time.time()) - 7_200, ttl=3_600), keyset)


def test_token_from_the_future_is_refused(keyset: KeySet) -> None:
    with pytest.raises(tokens.InvalidAccessToken):
        verify(sign(keyset, now=int(time.time()) + 3_600), keyset)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"sub": "user-2"}, id="sub"),
        pytest.param({"scope": "read write admin"}, id="scope"),
        pytest.param({"org_id": "globex"}, id="org_id"),
        pytest.param({"exp": 4_102_444_800}, id="exp"),
        pytest.param({"sid": "f" * 32}, id="sid"),
    ],
)
def test_tampered_payload_is_refused(keyset: KeySet, change: dict[str, Any]) -> None:
    header, payload, signature = sign(keyset).split(".")
    claims = json.loads(b64url_decode(payload)) | change
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    with pytest.raises(tokens.InvalidAccessToken):
        verify(tampered, keyset)


def test_tampered_signature_is_refused(keyset: KeySet) -> None:
    header, payload, signature = sign(keyset).split(".")
    raw = bytearray(b64url_decode(signature))
    raw[-1] ^= 1
    with pytest.raises(tokens.InvalidAccessToken):
        verify(f"{header}.{payload}.{b64url(bytes(raw))}", keyset)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "", "at+jwt+x"])
def test_not_an_access_token_type_is_refused(keyset: KeySet, typ: str) -> None:
    private = keyset.signing_key
    forged = jwt.encode(
        _claims(keyset), private, algorithm="ES256", headers={"kid": keyset.signing_kid, "typ": typ}
    )
    with pytest.raises(tokens.InvalidAccessToken):
        verify(forged, keyset)


@pytest.mark.parametrize("typ", ["at+jwt", "AT+JWT", "application/at+jwt"])
def test_access_token_type_variants_are_accepted(keyset: KeySet, typ: str) -> None:
    """RFC 9068 §4: `at+jwt`, compared case-insensitively, with or without `application/`."""
    token = jwt.encode(
        _claims(keyset),
        keyset.signing_key,
        algorithm="ES256",
        headers={"kid": keyset.signing_kid, "typ": typ},
    )
    assert verify(token, keyset)["sub"] == "user-1"


@pytest.mark.parametrize("typ", [1, None, ["at+jwt"], {"a": 1}, True])
def test_a_header_typ_that_is_not_a_string_is_refused_cleanly(keyset: KeySet, typ: Any) -> None:
    """Tokens come from clients (revocation, introspection): a strange header is an invalid token,
    never an unexpected exception (which the routes would answer with 500)."""
    forged = _forge({"alg": "ES256", "typ": typ, "kid": keyset.signing_kid}, _claims(keyset), sig=b"x" * 64)
    with pytest.raises(tokens.InvalidAccessToken):
        verify(forged, keyset)


@pytest.mark.parametrize("kid", [5, None, ["k"], {"a": 1}])
def test_a_header_kid_that_is_not_a_string_is_refused_cleanly(keyset: KeySet, kid: Any) -> None:
    forged = _forge({"alg": "ES256", "typ": "at+jwt", "kid": kid}, _claims(keyset), sig=b"x" * 64)
    with pytest.raises(tokens.InvalidAccessToken):
        verify(forged, keyset)


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub", "jti", "sid", "client_id"])
def test_a_token_without_a_required_claim_is_refused(keyset: KeySet, missing: str) -> None:
    claims = {k: v for k, v in _claims(keyset).items() if k != missing}
    token = jwt.encode(
        claims, keyset.signing_key, algorithm="ES256", headers={"kid": keyset.signing_kid, "typ": "at+jwt"}
    )
    with pytest.raises(tokens.InvalidAccessToken):
        verify(token, keyset)


@pytest.mark.parametrize(
    "token",
    ["", "a", "a.b", "a.b.c", "a.b.c.d", "\U0001f600.e30.x", "e30.e30.", "W10.e30.x", "e30.W10.eA"],
)
def test_garbage_is_refused_cleanly(keyset: KeySet, token: str) -> None:
    with pytest.raises(tokens.InvalidAccessToken):
        verify(token, keyset)
