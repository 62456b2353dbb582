"""authcore.identity: the ID token checks the HTTP API's JWT authorizer made, now made by the function,
and the attacks they must refuse. The JWKS comes through an injected fetch (the network boundary)."""

from __future__ import annotations

import base64
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from authcore import errors
from authcore.identity import Verifier

ISSUER = "https://idp.example.test/pool"
AUDIENCE = "app-client"
NOW = 1_800_000_000
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    data = json.loads(jwt.algorithms.get_default_algorithms()[alg].to_jwk(private.public_key()))
    return {**data, "kid": kid, "alg": alg, "use": "sig"}


JWKS = {"keys": [jwk(RSA_KEY, "rsa-1", "RS256"), jwk(EC_KEY, "ec-1", "ES256")]}


class Idp:
    """The identity provider as the function sees it: a discovery document and a JWKS, counted."""

    def __init__(self, jwks: dict[str, Any] | None = None) -> None:
        self.jwks = jwks or JWKS
        self.fetched: list[str] = []
        self.clock = 0.0

    def fetch(self, url: str) -> dict[str, Any]:
        self.fetched.append(url)
        if url == f"{ISSUER}/.well-known/openid-configuration":
            return {"issuer": ISSUER, "jwks_uri": "https://idp.example.test/keys"}
        if url == "https://idp.example.test/keys":
            return self.jwks
        raise OSError("no such document")

    def verifier(self, **kw: Any) -> Verifier:
        return Verifier(ISSUER, (AUDIENCE,), fetch=self.fetch, monotonic=lambda: self.clock, **kw)


def id_token(
    claims: dict[str, Any] | None = None, *, key: Any = RSA_KEY, alg: str = "RS256", kid: str = "rsa-1"
) -> str:
    body = {"iss": ISSUER, "sub": "user-1", "aud": AUDIENCE, "exp": NOW + 300, "iat": NOW, "token_use": "id",
            "email": "ada@example.com", "email_verified": True, **(claims or {})}  # fmt: skip
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm=alg, headers={"kid": kid})


def refused(verifier: Verifier, header: str | None) -> str:
    with pytest.raises(errors.Unauthorized) as caught:
        verifier.claims(header, NOW)
    return caught.value.message


def test_a_good_id_token_is_accepted_with_or_without_bearer() -> None:
    idp = Idp()
    verifier = idp.verifier()
    token = id_token()
    assert verifier.claims(f"Bearer {token}", NOW)["sub"] == "user-1"
    assert verifier.claims(f"bearer   {token} ", NOW)["email"] == "ada@example.com"
    assert verifier.claims(token, NOW)["sub"] == "user-1"  # API Gateway accepts the bare token too
    assert verifier.claims(f"Bearer {id_token(key=EC_KEY, alg='ES256', kid='ec-1')}", NOW)["sub"] == "user-1"
    # discovery and JWKS fetched once for the environment
    assert idp.fetched == [f"{ISSUER}/.well-known/openid-configuration", "https://idp.example.test/keys"]


def test_a_configured_jwks_uri_skips_discovery() -> None:
    idp = Idp()
    verifier = idp.verifier(jwks_uri="https://idp.example.test/keys")
    verifier.claims(id_token(), NOW)
    assert idp.fetched == ["https://idp.example.test/keys"]


def _none_token() -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'kid': 'rsa-1'})}.{part({'iss': ISSUER, 'sub': 'x', 'aud': AUDIENCE, 'exp': NOW + 9})}."


@pytest.mark.parametrize(
    ("header", "why"),
    [
        pytest.param(None, "Sign in", id="missing"),
        pytest.param("", "Sign in", id="empty"),
        pytest.param("Bearer ", "Sign in", id="bearer_only"),
        pytest.param("Bearer not-a-jwt", "not valid", id="garbage"),
        pytest.param("Bearer " + "a" * 9000, "not valid", id="oversized"),
        pytest.param(f"Bearer {_none_token()}", "not valid", id="alg_none"),
        pytest.param(f"Bearer {id_token(kid='nope')}", "not valid", id="unknown_kid"),
        pytest.param(f"Bearer {id_token(kid='ec-1')}", "not valid", id="rsa_signature_under_the_ec_kid"),
        pytest.param(f"Bearer {id_token(key=EC_KEY, alg='ES256', kid='rsa-1')}", "not valid", id="alg_swapped"),
        pytest.param(f"Bearer {id_token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048))}",
                     "not valid", id="signed_by_another_key"),
        pytest.param(f"Bearer {id_token({'iss': 'https://evil.example.test/pool'})}", "not valid", id="other_issuer"),
        pytest.param(f"Bearer {id_token({'iss': None})}", "not valid", id="no_issuer"),
        pytest.param(f"Bearer {id_token({'sub': None})}", "not valid", id="no_subject"),
        pytest.param(f"Bearer {id_token({'exp': None})}", "not valid", id="no_expiry"),
        pytest.param(f"Bearer {id_token({'exp': NOW})}", "expired", id="expired_now"),
        pytest.param(f"Bearer {id_token({'exp': NOW - 1})}", "expired", id="expired"),
        pytest.param(f"Bearer {id_token({'nbf': NOW + 1})}", "not valid yet", id="not_yet"),
        pytest.param(f"Bearer {id_token({'aud': 'other-client'})}", "not for this service", id="other_audience"),
        pytest.param(f"Bearer {id_token({'aud': ['x', 'y']})}", "not for this service", id="audience_list"),
        pytest.param(f"Bearer {id_token({'aud': None})}", "not for this service", id="no_audience"),
        pytest.param(f"Bearer {id_token({'token_use': 'access'})}", "not an access token", id="access_token"),
    ],
)  # fmt: skip
def test_refused_tokens(header: str | None, why: str) -> None:
    assert why in refused(Idp().verifier(), header)


def test_a_symmetric_token_signed_with_the_public_key_is_refused() -> None:
    """Algorithm confusion: HS256 with the RSA public key's bytes as the secret."""
    from cryptography.hazmat.primitives import serialization

    public_pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "kid": "rsa-1"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(
        json.dumps({"iss": ISSUER, "sub": "x", "aud": AUDIENCE, "exp": NOW + 9}).encode()
    ).rstrip(b"=")
    import hashlib
    import hmac

    signature = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    token = (header + b"." + body + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
    assert "not valid" in refused(Idp().verifier(), f"Bearer {token}")


def test_audience_from_a_list_or_from_client_id() -> None:
    verifier = Idp().verifier()
    assert verifier.claims(id_token({"aud": ["other", AUDIENCE]}), NOW)["sub"] == "user-1"
    assert verifier.claims(id_token({"aud": None, "client_id": AUDIENCE}), NOW)["sub"] == "user-1"


def test_an_unknown_kid_refetches_the_keys_at_most_once_a_minute() -> None:
    idp = Idp(jwks={"keys": [jwk(RSA_KEY, "rsa-1", "RS256")]})
    verifier = idp.verifier(jwks_uri="https://idp.example.test/keys")
    verifier.claims(id_token(), NOW)
    assert len(idp.fetched) == 1
    ec_token = id_token(key=EC_KEY, alg="ES256", kid="ec-1")
    refused(verifier, ec_token)  # within the minute: no refetch (a flood of unknown kids costs nothing)
    refused(verifier, ec_token)
    assert len(idp.fetched) == 1
    idp.jwks = JWKS  # the issuer rotated its keys
    idp.clock += 61
    assert verifier.claims(ec_token, NOW)["sub"] == "user-1"
    assert len(idp.fetched) == 2


def test_an_unreachable_identity_provider_is_a_dependency_failure() -> None:
    def down(url: str) -> dict[str, Any]:
        raise OSError("connection refused")

    verifier = Verifier(ISSUER, (AUDIENCE,), fetch=down)
    with pytest.raises(errors.DependencyFailed):
        verifier.claims(id_token(), NOW)
    broken = Verifier(
        ISSUER, (AUDIENCE,), jwks_uri="https://idp.example.test/keys", fetch=lambda url: {"keys": 7}
    )
    with pytest.raises(errors.DependencyFailed):
        broken.claims(id_token(), NOW)


def test_sign_in_must_be_configured() -> None:
    with pytest.raises(errors.InternalError):
        Verifier("", (AUDIENCE,))
    with pytest.raises(errors.InternalError):
        Verifier(ISSUER, ())
