"""GET /device and GET /device/sessions: the verification page, invoked the way the HTTP API calls
WebFunction. (The page in a browser: tests/e2e/test_browser.py.)"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from local import lambda_host
from local import template as tpl
from local.lambda_host import HttpResult

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "functions" / "web"
POOL_ID = "eu-west-1_Pool123"
CLIENT_ID = "4p1c1i3nt1d"
DOMAIN = "login-6f1c2e"
COGNITO_ISSUER = f"https://cognito-idp.eu-west-1.amazonaws.com/{POOL_ID}"
MANAGED_LOGIN = f"https://{DOMAIN}.auth.eu-west-1.amazoncognito.com"
SETTINGS = (
    "USER_POOL_ID",
    "USER_POOL_CLIENT_ID",
    "COGNITO_REGION",
    "COGNITO_DOMAIN",
    "COGNITO_ENDPOINT",
    "SIGN_IN_ISSUER",
    "SIGN_IN_CLIENT_ID",
    "SIGN_IN_DISCOVERY_URL",
    "SIGN_IN_CONNECT_ORIGINS",
    "SIGN_IN_LOGOUT_URL",
    "PAGE_PRODUCT_NAME",
    "PAGE_LOGO_URL",
    "PAGE_ACCENT_COLOR",
    "PAGE_SUPPORT_URL",
)
MESSAGES: dict[str, dict[str, str]] = json.loads((WEB / "messages.json").read_text(encoding="utf-8"))


@pytest.fixture
def page_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The template's defaults: the stack's user pool, its managed login, no branding."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("USER_POOL_ID", POOL_ID)
    monkeypatch.setenv("USER_POOL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("COGNITO_REGION", "eu-west-1")
    monkeypatch.setenv("COGNITO_DOMAIN", DOMAIN)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")


def get_page(
    query: dict[str, str] | str | None = None, path: str = "/device", headers: dict[str, str] | None = None
) -> HttpResult:
    handler = lambda_host.load_function("functions/web")
    event = lambda_host.http_event("GET", path, query=query, headers=headers)
    return lambda_host.invoke(handler, event, "web")


def csp(result: HttpResult) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for part in result.headers["content-security-policy"].split(";"):
        name, *values = part.split()
        assert name not in directives, f"{name} appears twice"
        directives[name] = values
    return directives


def inline(result: HttpResult, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", result.text, flags=re.DOTALL)


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def attribute(result: HttpResult, name: str) -> Any:
    found = re.search(rf'\b{name}="([^"]*)"', result.text)
    assert found, f"{name} is missing"
    return html.unescape(found.group(1))


def text_of(result: HttpResult, element_id: str) -> str:
    found = re.search(rf'<(\w+) id="{element_id}"[^>]*>(.*?)</\1>', result.text, flags=re.DOTALL)
    assert found, f"#{element_id} is missing"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(2))).strip()


# ---------------------------------------------------------------- headers and the policy


@pytest.mark.parametrize("path", ["/device", "/device/sessions"])
def test_page_is_html_never_cached_and_not_framable(page_env: None, path: str) -> None:
    result = get_page(path=path)
    assert result.status == 200
    assert result.headers["content-type"] == "text/html; charset=utf-8"
    assert result.headers["cache-control"] == "no-store"
    assert result.headers["x-frame-options"] == "DENY"
    assert result.headers["x-content-type-options"] == "nosniff"
    assert result.headers["referrer-policy"] == "no-referrer"  # the URL may carry a user code
    assert result.headers["vary"] == "Accept-Language"
    assert result.text.startswith("<!doctype html>")


def test_csp_allows_exactly_the_page_own_script_and_style(page_env: None) -> None:
    result = get_page()
    policy = csp(result)
    assert policy["default-src"] == ["'none'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["base-uri"] == ["'none'"]
    assert policy["form-action"] == ["'none'"]
    (script,) = inline(result, "script")
    (style,) = inline(result, "style")
    assert policy["script-src"] == [sha256_source(script)]
    assert policy["style-src"] == [sha256_source(style)]
    assert "img-src" not in policy  # no logo, no image
    assert "'unsafe-inline'" not in result.headers["content-security-policy"]
    assert "'unsafe-eval'" not in result.headers["content-security-policy"]
    # the API (same origin), the issuer's discovery document, the managed login's token endpoint
    assert policy["connect-src"] == ["'self'", "https://cognito-idp.eu-west-1.amazonaws.com", MANAGED_LOGIN]


def test_page_loads_nothing_from_elsewhere_and_keeps_nothing(page_env: None) -> None:
    result = get_page()
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=", result.text)
    assert "innerHTML" not in result.text and "localStorage" not in result.text
    assert "document.cookie" not in result.text


def test_the_page_collects_no_password(page_env: None) -> None:
    """Sign-in is the identity provider's: the page has no password field and no Cognito API call."""
    text = get_page().text
    assert not re.search(r'<input[^>]*type="password"', text)
    assert "InitiateAuth" not in text and "USER_PASSWORD_AUTH" not in text
    assert "code_challenge_method" in text and '"S256"' in text  # the code flow with PKCE


# ---------------------------------------------------------------- sign-in configuration


def test_the_user_pool_and_its_managed_login_by_default(page_env: None) -> None:
    result = get_page()
    assert attribute(result, "data-issuer") == COGNITO_ISSUER
    assert attribute(result, "data-client-id") == CLIENT_ID
    assert attribute(result, "data-discovery-url") == f"{COGNITO_ISSUER}/.well-known/openid-configuration"
    assert attribute(result, "data-logout-url") == f"{MANAGED_LOGIN}/logout"


def test_any_openid_issuer_by_configuration(page_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER_POOL_ID", "")
    monkeypatch.setenv("USER_POOL_CLIENT_ID", "")
    monkeypatch.setenv("COGNITO_DOMAIN", "")
    monkeypatch.setenv("SIGN_IN_ISSUER", "https://login.example.com/realms/staff")
    monkeypatch.setenv("SIGN_IN_CLIENT_ID", "device-page")
    result = get_page()
    assert attribute(result, "data-issuer") == "https://login.example.com/realms/staff"
    assert attribute(result, "data-client-id") == "device-page"
    assert (
        attribute(result, "data-discovery-url")
        == "https://login.example.com/realms/staff/.well-known/openid-configuration"
    )
    assert attribute(result, "data-logout-url") == ""  # the page uses end_session_endpoint if it has one
    assert csp(result)["connect-src"] == ["'self'", "https://login.example.com"]

    # a token endpoint elsewhere (Google's, say) is one more origin, said so
    monkeypatch.setenv("SIGN_IN_CONNECT_ORIGINS", "https://oauth2.example.net, https://idp.example.org/x")
    assert csp(get_page())["connect-src"] == [
        "'self'",
        "https://login.example.com",
        "https://oauth2.example.net",
        "https://idp.example.org",
    ]


def test_the_discovery_document_can_be_elsewhere_on_loopback_only(
    page_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local stack's managed login (local.oidc) serves it on 127.0.0.1 over http; nowhere else may
    a page be sent over plain http."""
    monkeypatch.setenv("SIGN_IN_DISCOVERY_URL", "http://127.0.0.1:4599/.well-known/openid-configuration")
    monkeypatch.setenv("SIGN_IN_CONNECT_ORIGINS", "http://127.0.0.1:4599")
    monkeypatch.setenv("SIGN_IN_LOGOUT_URL", "http://127.0.0.1:4599/logout")
    monkeypatch.setenv("COGNITO_DOMAIN", "")
    result = get_page()
    assert attribute(result, "data-discovery-url") == "http://127.0.0.1:4599/.well-known/openid-configuration"
    assert attribute(result, "data-issuer") == COGNITO_ISSUER  # the tokens are still the pool's
    assert attribute(result, "data-logout-url") == "http://127.0.0.1:4599/logout"
    assert csp(result)["connect-src"] == [
        "'self'",
        "http://127.0.0.1:4599",
        "https://cognito-idp.eu-west-1.amazonaws.com",
    ]

    monkeypatch.setenv("SIGN_IN_DISCOVERY_URL", "http://idp.example.com/.well-known/openid-configuration")
    result = get_page()
    assert attribute(result, "data-discovery-url") == f"{COGNITO_ISSUER}/.well-known/openid-configuration"
    assert "http://idp.example.com" not in result.headers["content-security-policy"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("USER_POOL_CLIENT_ID", ""),  # the user pool without VerificationUri: no callback URL to use
        ("SIGN_IN_ISSUER", "javascript:alert(1)"),
        ("SIGN_IN_ISSUER", 'https://x.example/"><script>'),
        ("USER_POOL_CLIENT_ID", 'a"b<c>'),
    ],
)
def test_a_page_without_a_usable_sign_in_still_renders_and_allows_no_other_origin(
    page_env: None, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("COGNITO_DOMAIN", "")
    monkeypatch.setenv(name, value)
    result = get_page()
    assert result.status == 200
    assert attribute(result, "data-client-id") == ""  # the page says sign-in is not configured
    assert attribute(result, "data-issuer") == ""
    assert attribute(result, "data-discovery-url") == ""
    assert csp(result)["connect-src"] == ["'self'"]
    assert len(inline(result, "script")) == 1


# ---------------------------------------------------------------- without JavaScript


def test_the_controls_start_disabled_with_an_explanation(page_env: None) -> None:
    """The script enables them; without it the page says why nothing works instead of doing nothing."""
    text = get_page({"user_code": "WDJB-MJHT"}).text
    assert re.search(r'<button type="button" id="signin-button"[^>]*\sdisabled\b', text)
    assert re.search(r'<fieldset id="code-fields"[^>]*\sdisabled\b', text)
    noscript = re.search(r"<noscript>(.*?)</noscript>", text, flags=re.DOTALL)
    assert noscript and "This page needs JavaScript" in noscript.group(1)


# ---------------------------------------------------------------- the user code


def test_user_code_prefills_the_field(page_env: None) -> None:
    result = get_page({"user_code": "WDJB-MJHT"})
    assert re.search(r'<input id="user-code"[^>]*\svalue="WDJB-MJHT"', result.text)


def test_no_user_code_leaves_the_field_empty(page_env: None) -> None:
    assert re.search(r'<input id="user-code"[^>]*\svalue=""', get_page().text)


@pytest.mark.parametrize(
    "hostile",
    ['"><script>alert(1)</script>', "<script>alert(1)</script>", "' onfocus='alert(1)", 'a&b<c>d"e'],
)
def test_user_code_is_escaped_never_reflected_raw(page_env: None, hostile: str) -> None:
    result = get_page({"user_code": hostile})
    assert result.status == 200
    assert hostile not in result.text
    assert len(inline(result, "script")) == 1  # still only the page's own script
    escaped = hostile.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace('"', "&quot;").replace("'", "&#x27;")
    assert re.search(r'<input id="user-code"[^>]*\svalue="' + re.escape(escaped) + '"', result.text)


def test_an_overlong_user_code_is_not_prefilled(page_env: None) -> None:
    result = get_page({"user_code": "B" * 65})
    assert "B" * 65 not in result.text
    assert re.search(r'<input id="user-code"[^>]*\svalue=""', result.text)


def test_the_sign_in_answer_in_the_address_is_never_written_into_the_page(page_env: None) -> None:
    result = get_page({"code": "AUTHZ-CODE-123", "state": "STATE-456"})
    assert result.status == 200
    assert "AUTHZ-CODE-123" not in result.text and "STATE-456" not in result.text


# ---------------------------------------------------------------- your devices


def test_your_devices_is_the_same_page_in_its_own_view(page_env: None) -> None:
    result = get_page(path="/device/sessions")
    assert attribute(result, "data-view") == "sessions"
    assert text_of(result, "signin-title") == "Sign in to see your devices"
    assert re.search(r'<a id="nav-devices" href="/device/sessions"[^>]*aria-current="page"', result.text)
    assert re.search(r'<ol id="steps"[^>]*\shidden\b', result.text)  # the device flow's steps: not here
    assert re.search(r'<main id="main" class="card wide"', result.text)
    device = get_page()
    assert attribute(device, "data-view") == "device"
    assert re.search(r'<a id="nav-connect" href="/device"[^>]*aria-current="page"', device.text)
    # one script, one style, one policy for both views
    assert device.headers["content-security-policy"] == result.headers["content-security-policy"]


# ---------------------------------------------------------------- languages


def choose_language(query: str | None, accept: str | None) -> str:
    return str(lambda_host.load_function("functions/web", "app.choose_language")(query, accept))


@pytest.mark.parametrize(
    ("query", "accept", "chosen"),
    [
        (None, None, "en"),
        (None, "de-DE,de;q=0.9,en;q=0.8", "de"),
        (None, "de-CH", "de"),
        (None, "fr-FR, fr;q=0.9, de;q=0.7, en;q=0.5", "de"),  # no French: the next one offered
        (None, "en;q=0.4, de;q=0.8", "de"),  # by quality, not by order
        (None, "de;q=0, en", "en"),  # q=0: not this one
        (None, "de;q=nonsense, en;q=0.1", "en"),
        (None, "*", "en"),
        (None, "x" * 5000, "en"),
        ("de", "en-US", "de"),  # the switcher's choice wins
        ("DE", None, "de"),
        ("xx", "de", "de"),  # an unknown choice is ignored
    ],
)
def test_the_language_comes_from_the_choice_then_accept_language(
    query: str | None, accept: str | None, chosen: str
) -> None:
    assert choose_language(query, accept) == chosen


def test_the_server_renders_the_chosen_language(page_env: None) -> None:
    result = get_page(headers={"accept-language": "de-DE,de;q=0.9,en;q=0.5"})
    assert result.headers["content-language"] == "de"
    assert re.search(r'<html lang="de">', result.text)
    assert re.search(r'<main [^>]*\sdata-lang="de"', result.text)
    assert text_of(result, "signin-title") == "Anmelden, um ein Gerät zu verbinden"
    assert "<title>Anmelden \u2013 Geräte-Anmeldung</title>" in result.text
    assert 'aria-current="true">Deutsch</a>' in result.text
    noscript = re.search(r"<noscript>(.*?)</noscript>", result.text, flags=re.DOTALL)
    assert noscript and "Diese Seite braucht JavaScript" in noscript.group(1)
    english = get_page({"lang": "en"}, headers={"accept-language": "de"})
    assert english.headers["content-language"] == "en" and '<html lang="en">' in english.text
    # the same script (both catalogues in it) for every language: one hash
    assert result.headers["content-security-policy"] == english.headers["content-security-policy"]


def test_every_language_is_complete_with_the_same_placeholders() -> None:
    english = MESSAGES["en"]
    assert len(MESSAGES) >= 2
    for lang, texts in MESSAGES.items():
        assert set(texts) == set(english), lang
        for key, text in texts.items():
            assert text.strip(), (lang, key)
            placeholders = set(re.findall(r"\{(\w+)\}", text))
            assert placeholders == set(re.findall(r"\{(\w+)\}", english[key])), (lang, key)
    assert MESSAGES["de"]["approve"] != english["approve"]  # translated, not copied


def test_every_string_of_the_page_is_in_the_catalogue() -> None:
    """page.html has no text of its own (only {{t:...}} fields), and every message key that page.js or
    page.html names is in the catalogue."""
    page = (WEB / "page.html").read_text(encoding="utf-8")
    visible = re.sub(r"<(script|style)>.*?</\1>", "", page, flags=re.DOTALL)
    visible = re.sub(r"\{\{\w+:\w+\}\}", "", re.sub(r"<[^>]*>", "", visible))
    assert re.sub(r"[\s!]|&#?\w+;", "", visible) == "", "text in page.html outside the catalogue"
    script = (WEB / "page.js").read_text(encoding="utf-8")
    named = set(re.findall(r"\{\{t:(\w+)\}\}", page)) | set(re.findall(r'data-t="(\w+)"', page))
    named |= set(re.findall(r'\b(?:t|say|template|plural)\("(\w+)"', script))
    named |= set(re.findall(r'\bkey: "(\w+)"', script))
    named |= set(re.findall(r'fill\([^,]+, "(\w+)"', script))
    named |= set(re.findall(r'dataset\.t = "(\w+)"', script))
    named |= {
        f"{base}_{form}" for base in re.findall(r'plural\("(\w+)"', script) for form in ("one", "other")
    }
    named |= {f"title_{s}" for s in ("signin", "code", "consent", "done", "sessions", "expired")}
    named |= {
        f"scope_{s}" for s in re.findall(r'"(\w+)"', re.search(r"KNOWN_SCOPES = \[(.*?)\]", script).group(1))
    }  # type: ignore[union-attr]
    # plural(base, n) names base_one / base_other; t("role_" + role) and the like are prefixes
    named = {key for key in named if not key.endswith("_")} - set(re.findall(r'plural\("(\w+)"', script))
    assert named - set(MESSAGES["en"]) == set()
    assert len(named) > 60


# ---------------------------------------------------------------- branding


def test_branding_product_name_is_escaped_and_kept_to_one_line(
    page_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGE_PRODUCT_NAME", 'Acme <b>"Cloud"</b>\n\x07&amp; ' + "x" * 80)
    result = get_page()
    product = re.search(r'<span class="product">(.*?)</span>', result.text)
    assert product
    assert "<b>" not in result.text
    shown = html.unescape(product.group(1))
    assert shown.startswith('Acme <b>"Cloud"</b> &amp; x') and len(shown) == 60  # one line, at most 60
    assert f"<title>Sign in \u2013 {product.group(1)}</title>" in result.text
    assert attribute(result, "data-product") == shown
    monkeypatch.setenv("PAGE_PRODUCT_NAME", "")
    assert re.search(r'<span class="product">Device sign-in</span>', get_page().text)


def test_branding_logo_is_an_https_image_and_the_policy_allows_its_origin_only(
    page_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGE_LOGO_URL", "https://cdn.example.com/brand/logo.svg")
    result = get_page()
    assert '<img class="logo" src="https://cdn.example.com/brand/logo.svg" alt=""' in result.text
    assert csp(result)["img-src"] == ["https://cdn.example.com"]
    for hostile in (
        "http://cdn.example.com/logo.png",
        "javascript:alert(1)",
        'https://x.example/a"onerror="x',
        "//x",
    ):
        monkeypatch.setenv("PAGE_LOGO_URL", hostile)
        result = get_page()
        assert "<img" not in result.text, hostile
        assert "img-src" not in csp(result), hostile


def test_branding_accent_colour_stays_readable_and_inside_the_hashed_style(
    page_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAGE_ACCENT_COLOR", "#0F766E")
    result = get_page()
    (style,) = inline(result, "style")
    assert "--brand: #0f766e;" in style  # dark enough already: as given
    assert csp(result)["style-src"] == [sha256_source(style)]

    monkeypatch.setenv("PAGE_ACCENT_COLOR", "#FFCC00")  # white on yellow is unreadable: darkened
    (style,) = inline(get_page(), "style")
    brand = re.search(r"--brand: (#[0-9a-f]{6});", style)
    assert brand and brand.group(1) != "#ffcc00"
    assert contrast_with_white(brand.group(1)) >= 4.5

    for hostile in ("red; } body { display: none", "#12345", "url(x)"):
        monkeypatch.setenv("PAGE_ACCENT_COLOR", hostile)
        (style,) = inline(get_page(), "style")
        assert "--brand: #1d4ed8;" in style and "body { display: none" not in style, hostile


def contrast_with_white(colour: str) -> float:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(int(colour[i : i + 2], 16) / 255) for i in (1, 3, 5))
    return 1.05 / (0.2126 * r + 0.7152 * g + 0.0722 * b + 0.05)


@pytest.mark.parametrize(
    ("value", "link"),
    [
        ("https://help.example.com/devices?from=page", "https://help.example.com/devices?from=page"),
        ("mailto:support@example.com", "mailto:support@example.com"),
        ("javascript:alert(1)", None),
        ("http://help.example.com", None),
        ("mailto:nobody", None),
        ('https://x.example/"><script>', None),
    ],
)
def test_branding_support_link(
    page_env: None, monkeypatch: pytest.MonkeyPatch, value: str, link: str | None
) -> None:
    monkeypatch.setenv("PAGE_SUPPORT_URL", value)
    result = get_page()
    found = re.search(r'<a id="support" href="([^"]*)"', result.text)
    if link is None:
        assert found is None
    else:
        assert found and html.unescape(found.group(1)) == link


# ---------------------------------------------------------------- the template


def test_the_template_configures_the_page_and_its_sign_in() -> None:
    template = tpl.load_template()
    resources = template["Resources"]
    web_env = resources["WebFunction"]["Properties"]["Environment"]["Variables"]
    for parameter, variable in (
        ("PageProductName", "PAGE_PRODUCT_NAME"),
        ("PageLogoUrl", "PAGE_LOGO_URL"),
        ("PageAccentColor", "PAGE_ACCENT_COLOR"),
        ("PageSupportUrl", "PAGE_SUPPORT_URL"),
    ):
        assert web_env[variable] == {"Ref": parameter}
        assert template["Parameters"][parameter]["Default"] == ""
    assert re.fullmatch(template["Parameters"]["PageAccentColor"]["AllowedPattern"], "#1D4ED8")
    assert not re.fullmatch(template["Parameters"]["PageLogoUrl"]["AllowedPattern"], "http://x.example/logo")
    assert web_env["COGNITO_DOMAIN"] == {"Fn::If": ["UseCognito", {"Ref": "UserPoolDomain"}, ""]}
    assert web_env["SIGN_IN_ISSUER"] == {"Fn::If": ["UseCognito", "", {"Ref": "AuthIssuer"}]}
    assert web_env["SIGN_IN_CLIENT_ID"] == {"Fn::If": ["UseCognito", "", {"Ref": "AuthAudience"}]}
    paths = {e["Properties"]["Path"] for e in resources["WebFunction"]["Properties"]["Events"].values()}
    assert paths == {"/device", "/device/sessions"}

    client = resources["UserPoolClient"]["Properties"]
    assert client["GenerateSecret"] is False  # a public client: PKCE
    assert "ALLOW_USER_PASSWORD_AUTH" not in client["ExplicitAuthFlows"]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    on = "HasVerificationUri"
    assert client["AllowedOAuthFlows"] == {"Fn::If": [on, ["code"], {"Ref": "AWS::NoValue"}]}
    assert client["AllowedOAuthScopes"] == {
        "Fn::If": [on, ["openid", "email", "profile"], {"Ref": "AWS::NoValue"}]
    }
    assert client["CallbackURLs"] == {"Fn::If": [on, [{"Ref": "VerificationUri"}], {"Ref": "AWS::NoValue"}]}
    assert client["LogoutURLs"] == client["CallbackURLs"]
    domain = resources["UserPoolDomain"]
    assert domain["Type"] == "AWS::Cognito::UserPoolDomain" and domain["Condition"] == "UseCognito"


# ---------------------------------------------------------------- make serve


def test_make_serve_says_how_to_sign_in() -> None:
    from local.serve import summary
    from local.stack import Clients, ConfidentialClient, DemoUser, PublicClient, StackInfo

    info = StackInfo(
        api_url="http://127.0.0.1:3000",
        aws_endpoint_url="http://127.0.0.1:5000",
        region="us-east-1",
        user_pool_id="us-east-1_x",
        user_pool_client_id="client",
        user_pool_issuer="https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x",
        table_name="t",
        keys_secret_id="k",
        jwks_secret_id="j",
        demo=DemoUser("demo@example.com", "Demo-Passw0rd-Local", "demo-org", "Demo Org", "sub", "Demo"),
        clients=Clients(PublicClient("demo-cli"), ConfidentialClient("demo-backend", "secret")),
        pid=1,
        aws_endpoint_pid=2,
        sign_in_url="http://127.0.0.1:4599",
    )
    text = summary(info, Path(".local/serve.json"), 1.0)
    assert "http://127.0.0.1:3000/device" in text and "http://127.0.0.1:3000/device/sessions" in text
    assert "http://127.0.0.1:4599" in text
    assert "demo@example.com / Demo-Passw0rd-Local" in text
