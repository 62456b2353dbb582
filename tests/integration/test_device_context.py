"""Issue #9 §1: the device context a person sees before deciding (RFC 8628 §5.4, remote phishing)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from authcore import runtime
from authcore.device import Requester, same_network
from tests.conftest import Api, LogCapture
from tests.support.aws import Seed


def started_from(api: Api, ip: str, **headers: str) -> dict[str, Any]:
    result = api.call(
        "POST", "/oauth/device/code", form={"client_id": "demo-cli"}, source_ip=ip, headers=headers
    )
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


def seen_from(api: Api, seed: Seed, user_code: str, ip: str) -> dict[str, Any]:
    result = api.call(
        "GET", "/oauth/device/verify", query={"user_code": user_code}, claims=seed.user, source_ip=ip
    )
    assert result.status == 200, result.text
    return result.json()  # type: ignore[no-any-return]


ORIGIN_SECRET = "cf-origin-4c8f0e7b2d9a41f6b3e5a7c9d1f2e3a4"  # what the distribution sends, X-Origin-Verify
THROUGH_CLOUDFRONT = {"x-origin-verify": ORIGIN_SECRET}


@pytest.fixture
def behind_cloudfront(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployment with a CloudFront distribution in front (template: EdgeOriginSecretSha256)."""
    monkeypatch.setenv("TRUST_EDGE_HEADERS", "true")
    monkeypatch.setenv("EDGE_ORIGIN_SECRET_SHA256", hashlib.sha256(ORIGIN_SECRET.encode()).hexdigest())
    runtime.reset()


def test_the_person_sees_where_the_request_came_from(
    api: Api, account: Seed, behind_cloudfront: None
) -> None:
    started = started_from(
        api,
        "130.176.9.1",  # an edge server's address, as API Gateway sees it behind CloudFront
        **THROUGH_CLOUDFRONT,
        **{
            "cloudfront-viewer-address": "203.0.113.7:50211",
            "user-agent": "demo-cli/1.4.2 (Linux)",
            "x-client-version": "1.4.2",
            "cloudfront-viewer-country": "NL",
            "cloudfront-viewer-city": "Amsterdam",
        },
    )
    body = seen_from(api, account, started["user_code"], "203.0.113.99")
    device = body["device"]
    assert device["ip"] == "203.0.113.7"
    assert device["user_agent"] == "demo-cli/1.4.2 (Linux)"
    assert device["client_version"] == "1.4.2" and device["country"] == "NL"
    assert device["requested_at"].endswith("Z")
    assert body["same_network"] is True  # the same /24


def test_edge_headers_are_ignored_unless_a_distribution_is_in_front(api: Api, account: Seed) -> None:
    """Without CloudFront in front, anyone could claim a country: the headers are not believed."""
    started = started_from(api, "198.51.100.7", **{"cloudfront-viewer-country": "NL"})
    assert seen_from(api, account, started["user_code"], "198.51.100.7")["device"]["country"] is None


def test_unknown_members_are_null_and_other_networks_are_flagged(api: Api, account: Seed) -> None:
    started = started_from(api, "198.51.100.20")  # no version, no edge headers
    body = seen_from(api, account, started["user_code"], "203.0.113.5")
    assert body["device"]["client_version"] is None and body["device"]["country"] is None
    assert "client_version" in body["device"] and "same_network" in body  # null, not missing
    assert body["same_network"] is False


def test_what_is_kept_is_bounded_and_printable(api: Api, account: Seed) -> None:
    started = started_from(api, "203.0.113.7", **{"user-agent": "evil\u202e\x07" + "A" * 600})
    body = seen_from(api, account, started["user_code"], "203.0.113.7")
    agent = body["device"]["user_agent"]
    assert "\x07" not in agent and "\u202e" not in agent and len(agent) <= 256


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("203.0.113.7", "203.0.113.7", True),
        ("203.0.113.7", "203.0.113.250", True),
        ("203.0.113.7", "203.0.114.7", False),
        ("2001:db8:1:ab00::1", "2001:db8:1:abff::2", True),  # the same /56
        ("2001:db8:1:ab00::1", "2001:db8:1:ac00::1", False),
        ("203.0.113.7", "2001:db8::1", False),
        (None, "203.0.113.7", None),
        ("203.0.113.7", "not an address", None),
    ],
)
def test_same_network(a: str | None, b: str | None, same: bool | None) -> None:
    assert same_network(a, b) is same


def test_clipping() -> None:
    clipped = Requester(ip="1.2.3.4", country="NLD", client_version="1" * 100, city=" ").clipped()
    assert clipped.country == "NL" and len(clipped.client_version or "") == 64 and clipped.city is None


@pytest.mark.parametrize(
    ("header", "seen"),
    [
        ("203.0.113.7:46532", "203.0.113.7"),
        ("2001:db8::7:46532", "2001:db8::7"),
        ("6.6.6.6:1,203.0.113.7:5555", None),  # a repeated header, joined: which one is CloudFront's?
        ("not an address", None),
    ],
)
def test_behind_cloudfront_the_viewer_address_is_the_device_address(
    api: Api, account: Seed, behind_cloudfront: None, header: str, seen: str | None
) -> None:
    """API Gateway's source address is an edge server's there: the device context (and the per-address
    limit) use CloudFront-Viewer-Address instead. An unreadable one is an unknown address: not the edge
    server's, since two people behind one edge server are not "the same network"."""
    started = started_from(
        api, "198.51.100.250", **THROUGH_CLOUDFRONT, **{"cloudfront-viewer-address": header}
    )
    body = seen_from(api, account, started["user_code"], "198.51.100.251")
    assert body["device"]["ip"] == seen


def test_while_the_origin_secret_changes_both_are_accepted(
    api: Api, account: Seed, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EDGE_ORIGIN_SECRET_SHA256 may list the current secret's digest and the next's: a distribution
    still sending the old one and one already sending the new one are both believed; a third is not."""
    new = "cf-origin-next-" + "9" * 32
    digests = [hashlib.sha256(s.encode()).hexdigest() for s in (ORIGIN_SECRET, new)]
    monkeypatch.setenv("TRUST_EDGE_HEADERS", "true")
    monkeypatch.setenv("EDGE_ORIGIN_SECRET_SHA256", ",".join(digests))
    runtime.reset()
    for secret, seen in ((ORIGIN_SECRET, "203.0.113.7"), (new, "203.0.113.7"), ("cf-origin-other", None)):
        started = started_from(
            api, "198.51.100.250", **{"x-origin-verify": secret, "cloudfront-viewer-address": "203.0.113.7:1"}
        )
        device = seen_from(api, account, started["user_code"], "198.51.100.251")["device"]
        assert device["ip"] == (seen or "198.51.100.250"), secret


def test_without_cloudfront_the_viewer_address_header_is_not_believed(api: Api, account: Seed) -> None:
    started = started_from(api, "198.51.100.250", **{"cloudfront-viewer-address": "203.0.113.7:1"})
    body = seen_from(api, account, started["user_code"], "198.51.100.251")
    assert body["device"]["ip"] == "198.51.100.250"


FORGED_EDGE = {
    "cloudfront-viewer-address": "203.0.113.7:443",
    "cloudfront-viewer-country": "NL",
    "cloudfront-viewer-city": "Amsterdam",
}


@pytest.mark.parametrize(
    "proof",
    [{}, {"x-origin-verify": "guessed"}, {"x-origin-verify": ORIGIN_SECRET + "x"}, {"x-origin-verify": ""}],
    ids=["none", "wrong", "longer", "empty"],
)
def test_behind_cloudfront_a_request_around_it_cannot_claim_an_address_or_a_country(
    api: Api, account: Seed, behind_cloudfront: None, proof: dict[str, str]
) -> None:
    """A client that reaches the API directly (not through the distribution: no X-Origin-Verify, or
    not the secret) and sends CloudFront's viewer headers itself is taken as API Gateway saw it: its
    own source address, no country, no city; so it cannot pose as the approver's network."""
    started = started_from(api, "198.51.100.66", **proof, **FORGED_EDGE)
    body = seen_from(api, account, started["user_code"], "203.0.113.8")
    assert body["device"]["ip"] == "198.51.100.66" and body["device"]["country"] is None
    assert body["same_network"] is False  # the forged address would have been the approver's /24


def test_behind_cloudfront_the_per_address_limit_counts_a_direct_callers_own_address(
    api: Api, account: Seed, behind_cloudfront: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attacker's way around the per-address limit: go around CloudFront and claim a new viewer
    address on every request. Without the origin secret each request counts against the caller's own
    address, and the limit holds; through the distribution, the viewer's address is what counts."""
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_PER_IP", "3")
    runtime.reset()

    def ask(**headers: str) -> Any:
        form = {"client_id": "demo-cli"}
        return api.call("POST", "/oauth/device/code", form=form, source_ip="198.51.100.77", headers=headers)

    answers = [ask(**{"cloudfront-viewer-address": f"192.0.2.{n}:443"}) for n in range(1, 5)]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    through = ask(**THROUGH_CLOUDFRONT, **{"cloudfront-viewer-address": "192.0.2.99:443"})
    assert through.status == 200, through.text  # a viewer of its own, through the distribution


def test_trusting_the_edge_needs_the_origin_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """TRUST_EDGE_HEADERS without EDGE_ORIGIN_SECRET_SHA256 would believe anyone's viewer headers: it is
    a configuration error, named, as is a digest that is not 64 hex digits."""
    from authcore.settings import ConfigurationError, from_environ

    base = {"TABLE_NAME": "tokens", "KEYS_SECRET_ID": "keys/x"}
    for env in ({"TRUST_EDGE_HEADERS": "true"}, {"EDGE_ORIGIN_SECRET_SHA256": "f" * 63}):
        with pytest.raises(ConfigurationError, match="EDGE_ORIGIN_SECRET_SHA256"):
            from_environ(base | env)
    digest = hashlib.sha256(b"s").hexdigest()
    assert from_environ(
        base | {"TRUST_EDGE_HEADERS": "true", "EDGE_ORIGIN_SECRET_SHA256": digest}
    ).trust_edge_headers


@pytest.mark.parametrize("digest", ["", hashlib.sha256(ORIGIN_SECRET.encode()).hexdigest()])
def test_the_template_trusts_the_edge_only_with_an_origin_secret(digest: str) -> None:
    """One parameter, EdgeOriginSecretSha256, sets both variables every function reads; it accepts only a
    SHA-256 in hex (or nothing), and the environment it makes passes the settings' own check."""
    import re

    from authcore.settings import from_environ
    from local.cfn import Resolver
    from local.template import load_template

    template = load_template()
    parameter = template["Parameters"]["EdgeOriginSecretSha256"]
    assert parameter["Default"] == "" and re.fullmatch(parameter["AllowedPattern"], digest)
    assert not re.fullmatch(parameter["AllowedPattern"], ORIGIN_SECRET)  # the secret itself is refused
    resolver = Resolver(template, parameters={"EdgeOriginSecretSha256": digest})
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    env = {
        name: resolver.string(variables[name]) for name in ("TRUST_EDGE_HEADERS", "EDGE_ORIGIN_SECRET_SHA256")
    }
    assert env == {"TRUST_EDGE_HEADERS": "true" if digest else "false", "EDGE_ORIGIN_SECRET_SHA256": digest}
    base = {"TABLE_NAME": "tokens", "KEYS_SECRET_ID": "keys/x"}
    assert from_environ(base | env).trust_edge_headers is bool(digest)


def test_a_distribution_without_the_viewer_address_is_named_once(
    api: Api, behind_cloudfront: None, captured_logs: LogCapture
) -> None:
    """An origin request policy that leaves CloudFront-Viewer-Address out is the operator's to fix: the
    log says so, once per environment, not once per request."""
    from authcore import http

    http._warn_no_viewer_address.cache_clear()
    for _ in range(3):
        started_from(api, "130.176.9.1", **THROUGH_CLOUDFRONT)
    warnings = [line for line in captured_logs.lines if "CloudFront-Viewer-Address" in line]
    assert len(warnings) == 1 and json.loads(warnings[0])["level"] == "WARNING", warnings


def test_without_a_readable_viewer_address_the_limit_counts_the_edge_server(
    api: Api, account: Seed, behind_cloudfront: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A distribution whose origin request policy leaves CloudFront-Viewer-Address out: the device's
    address is unknown (null on the page, no "same network"), and the per-address limit fails closed:
    it counts the edge server API Gateway saw, never nothing."""
    monkeypatch.setenv("DEVICE_AUTHORIZATIONS_PER_IP", "3")
    runtime.reset()
    form = {"client_id": "demo-cli"}
    answers = [
        api.call("POST", "/oauth/device/code", form=form, source_ip="130.176.9.2", headers=THROUGH_CLOUDFRONT)
        for _ in range(4)
    ]
    assert [a.status for a in answers] == [200, 200, 200, 429]
    body = seen_from(api, account, answers[0].json()["user_code"], "130.176.9.2")
    assert body["device"]["ip"] is None and body["same_network"] is None


def test_the_template_and_the_settings_accept_the_same_digests() -> None:
    """EdgeOriginSecretSha256's AllowedPattern and EDGE_ORIGIN_SECRET_SHA256's own check agree: one to
    four lowercase SHA-256 digests, comma-separated, or nothing."""
    import re

    from authcore.settings import ConfigurationError, from_environ
    from local.template import load_template

    pattern = load_template()["Parameters"]["EdgeOriginSecretSha256"]["AllowedPattern"]
    d = [hashlib.sha256(str(n).encode()).hexdigest() for n in range(5)]
    cases = {
        "": True,
        d[0]: True,
        ",".join(d[:2]): True,
        ",".join(d[:4]): True,
        ",".join(d[:5]): False,
        d[0].upper(): False,
        f"{d[0]}, {d[1]}": False,
        f"{d[0]},": False,
        f",{d[0]}": False,
        d[0][:63]: False,
        ORIGIN_SECRET: False,
    }
    for value, accepted in cases.items():
        assert bool(re.fullmatch(pattern, value)) is accepted, value
        try:
            from_environ(
                {"TABLE_NAME": "tokens", "KEYS_SECRET_ID": "keys/x", "EDGE_ORIGIN_SECRET_SHA256": value}
            )
        except ConfigurationError:
            assert not accepted, value
        else:
            assert accepted, value
