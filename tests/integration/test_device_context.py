"""Issue #9 §1: the device context a person sees before deciding (RFC 8628 §5.4, remote phishing)."""

from __future__ import annotations

from typing import Any

import pytest

from authcore import runtime
from authcore.device import Requester, same_network
from tests.conftest import Api
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


@pytest.fixture
def behind_cloudfront(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUST_EDGE_HEADERS", "true")
    runtime.reset()


def test_the_person_sees_where_the_request_came_from(
    api: Api, account: Seed, behind_cloudfront: None
) -> None:
    started = started_from(
        api,
        "203.0.113.7",
        **{
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
    [("203.0.113.7:46532", "203.0.113.7"), ("2001:db8::7:46532", "2001:db8::7"), ("not an address", None)],
)
def test_behind_cloudfront_the_viewer_address_is_the_device_address(
    api: Api, account: Seed, behind_cloudfront: None, header: str, seen: str | None
) -> None:
    """API Gateway's source address is CloudFront's there: the device context (and the per-address
    limit) use CloudFront-Viewer-Address instead; an unreadable one falls back to the source address."""
    started = started_from(api, "198.51.100.250", **{"cloudfront-viewer-address": header})
    body = seen_from(api, account, started["user_code"], "198.51.100.251")
    assert body["device"]["ip"] == (seen or "198.51.100.250")


def test_without_cloudfront_the_viewer_address_header_is_not_believed(api: Api, account: Seed) -> None:
    started = started_from(api, "198.51.100.250", **{"cloudfront-viewer-address": "203.0.113.7:1"})
    body = seen_from(api, account, started["user_code"], "198.51.100.251")
    assert body["device"]["ip"] == "198.51.100.250"
