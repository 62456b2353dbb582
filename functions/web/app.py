"""GET /device and GET /device/sessions — the page where a person signs in, approves or denies a device's
request, and sees and ends their sessions ("Your devices").

Sign-in is the identity provider's own: the page runs the OpenID Connect authorization code flow with
PKCE (S256) against the issuer (its discovery document's endpoints), in the browser, and keeps the ID
token in memory only; it never sees a password. It then calls GET/POST /oauth/device/verify and the
/auth/sessions routes with that token. `?user_code=` only pre-fills the code: the decision is always an
explicit POST. The script and the style are inline and allowed by their hashes, so the
Content-Security-Policy needs no 'unsafe-inline'.

Configuration (environment; template.yaml, docs/page.md):
- the issuer: SIGN_IN_ISSUER, else the user pool's (USER_POOL_ID, COGNITO_REGION); the page's client id:
  SIGN_IN_CLIENT_ID, else USER_POOL_CLIENT_ID; SIGN_IN_DISCOVERY_URL where the discovery document is
  when not at <issuer>/.well-known/openid-configuration (the local stack); COGNITO_DOMAIN, the user
  pool's managed login (its token and logout endpoints); SIGN_IN_CONNECT_ORIGINS, more origins the page
  may call (a token endpoint on another origin than the issuer's); SIGN_IN_LOGOUT_URL, a Cognito-style
  logout endpoint (`?client_id=&logout_uri=`) when not the managed login's.
- branding: PAGE_PRODUCT_NAME, PAGE_LOGO_URL (https), PAGE_ACCENT_COLOR (#rrggbb), PAGE_SUPPORT_URL
  (https or mailto): each checked here, and left out when it does not pass.
- every string is in messages.json, one catalogue per language; the language is `?lang=` when it names
  one, else the best match of Accept-Language, else English. The page switches in place.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from aws_lambda_powertools.event_handler import Response

from authcore import http

HERE = Path(__file__).resolve().parent
PAGE = (HERE / "page.html").read_text(encoding="utf-8")
STYLE = (HERE / "page.css").read_text(encoding="utf-8")
MESSAGES: dict[str, dict[str, str]] = json.loads((HERE / "messages.json").read_text(encoding="utf-8"))
LANGUAGES = tuple(MESSAGES)
DEFAULT_LANGUAGE = "en"
_CATALOGUE_JSON = json.dumps(MESSAGES, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
SCRIPT = (HERE / "page.js").read_text(encoding="utf-8").replace("/*MESSAGES*/ {}", _CATALOGUE_JSON, 1)
if "</script" in SCRIPT.lower() or "</style" in STYLE.lower() or _CATALOGUE_JSON not in SCRIPT:
    raise RuntimeError("page.js must take the catalogue once, and neither file may close its own element")
_missing = {lang: set(MESSAGES[DEFAULT_LANGUAGE]) ^ set(texts) for lang, texts in MESSAGES.items()}
if any(_missing.values()):
    raise RuntimeError(f"messages.json: every language needs every message: {_missing}")

MAX_USER_CODE = 64  # what the verify API accepts
MAX_PRODUCT_NAME = 60
DEFAULT_ACCENT = "#1d4ed8"
VIEWS = {"/device": "device", "/device/sessions": "sessions"}
_TEMPLATE_FIELD = re.compile(r"\{\{(t|v|raw):(\w+)\}\}")
_UNSAFE_URL = re.compile(r"[\s\"'<>\\`^{}|]")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_COGNITO_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-\d$")


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


# ---------------------------------------------------------------- language


def choose_language(query: str | None, accept_language: str | None) -> str:
    """`?lang=` when it names a catalogue; else the first of Accept-Language's ranges (by q, then
    order) whose primary subtag has one; else English. q=0 means "not this one"."""
    if query and query.lower() in MESSAGES:
        return query.lower()
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "")[:1024].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        primary = tag.strip().lower().split("-")[0]
        if primary in MESSAGES and 0 < quality <= 1:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


# ---------------------------------------------------------------- configuration


def _url(value: str, schemes: tuple[str, ...] = ("https",)) -> str:
    """An absolute URL in one of these schemes (http also for a loopback host), or "" for anything else."""
    value = value.strip()
    if not value or len(value) > 2048 or _UNSAFE_URL.search(value):
        return ""
    try:
        parts = urlsplit(value)
    except ValueError:
        return ""
    if parts.scheme == "mailto" and "mailto" in schemes:
        return value if parts.path and "@" in parts.path else ""
    loopback_http = parts.scheme == "http" and parts.hostname in _LOOPBACK
    if not parts.netloc or not (parts.scheme in schemes or loopback_http):
        return ""
    return value


def _origin(url: str) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _product_name(value: str) -> str:
    """Printable text on one line, at most MAX_PRODUCT_NAME characters."""
    kept = "".join(" " if unicodedata.category(c)[0] in "CZ" else c for c in value)
    return " ".join(kept.split())[:MAX_PRODUCT_NAME]


def _rgb(hex_colour: str) -> tuple[float, float, float]:
    return tuple(int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in rgb)


def _contrast_with_white(rgb: tuple[float, float, float]) -> float:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return 1.05 / (luminance + 0.05)


def _darker(rgb: tuple[float, float, float], factor: float) -> tuple[float, float, float]:
    return (rgb[0] * factor, rgb[1] * factor, rgb[2] * factor)


def accent_palette(value: str) -> dict[str, str]:
    """The accent (a #rrggbb, else the default) darkened until white text on it, and it as text on
    white, reach WCAG AA (4.5:1); a darker shade for hover, a light one for progress."""
    colour = value.strip() if re.fullmatch(r"#[0-9A-Fa-f]{6}", value.strip()) else DEFAULT_ACCENT
    rgb = _rgb(colour.lower())
    while _contrast_with_white(rgb) < 4.6:
        rgb = _darker(rgb, 0.92)
    soft = tuple(c + (1 - c) * 0.6 for c in rgb)
    return {
        "brand": _hex(rgb),
        "brand-dark": _hex(_darker(rgb, 0.75)),
        "brand-soft": _hex(soft),  # type: ignore[arg-type]
    }


@dataclass(frozen=True)
class Setup:
    """One configuration's page values and response headers (computed once per configuration)."""

    values: dict[str, str]
    style: str
    headers: dict[str, str]


@lru_cache(maxsize=8)
def _setup(env: tuple[tuple[str, str], ...]) -> Setup:
    e = dict(env)
    region = e.get("COGNITO_REGION", "") if _REGION.match(e.get("COGNITO_REGION", "")) else ""
    pool = e.get("USER_POOL_ID", "")
    cognito_issuer = (
        f"https://cognito-idp.{region}.amazonaws.com/{pool}"
        if region and re.fullmatch(r"[\w-]+", pool)
        else ""
    )
    issuer = _url(e.get("SIGN_IN_ISSUER", "")) or (cognito_issuer if not e.get("SIGN_IN_ISSUER") else "")
    client_id = (e.get("SIGN_IN_CLIENT_ID") or e.get("USER_POOL_CLIENT_ID") or "").strip()
    discovery = _url(e.get("SIGN_IN_DISCOVERY_URL", "")) or (
        f"{issuer.rstrip('/')}/.well-known/openid-configuration" if issuer else ""
    )
    domain = e.get("COGNITO_DOMAIN", "")
    managed_login = (
        f"https://{domain}.auth.{region}.amazoncognito.com"
        if region and _COGNITO_DOMAIN.match(domain)
        else ""
    )
    logout = _url(e.get("SIGN_IN_LOGOUT_URL", "")) or (f"{managed_login}/logout" if managed_login else "")
    if not (issuer and discovery and re.fullmatch(r"[\w.~:@+-]{1,256}", client_id)):
        issuer = discovery = client_id = logout = ""  # the page says that sign-in is not configured
    extra = [_origin(_url(o)) for o in re.split(r"[\s,]+", e.get("SIGN_IN_CONNECT_ORIGINS", "")) if o]
    # the discovery document, the token endpoint (the managed login's, or usually the issuer's), more
    connect = [_origin(discovery), _origin(managed_login) if managed_login else _origin(issuer), *extra]
    connect_src = " ".join(dict.fromkeys(["'self'", *(o for o in connect if o)]))

    product = _product_name(e.get("PAGE_PRODUCT_NAME", ""))
    logo = _url(e.get("PAGE_LOGO_URL", ""))
    support = _url(e.get("PAGE_SUPPORT_URL", ""), ("https", "mailto"))
    palette = accent_palette(e.get("PAGE_ACCENT_COLOR", ""))
    style = STYLE + "\n:root { " + " ".join(f"--{k}: {v};" for k, v in palette.items()) + " }\n"
    directives = [
        "default-src 'none'",
        f"script-src {_sha256(SCRIPT)}",
        f"style-src {_sha256(style)}",
        *([f"img-src {_origin(logo)}"] if logo else []),
        f"connect-src {connect_src}",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
    headers = {
        **http.BASE_HEADERS,
        "Content-Security-Policy": "; ".join(directives),
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Vary": "Accept-Language",
    }
    values = {
        "issuer": issuer,
        "client_id": client_id,
        "discovery_url": discovery,
        "logout_url": logout,
        "product_name": product,
        "logo": logo,
        "support": support,
    }
    return Setup(values, style, headers)


_SETTINGS = (
    "USER_POOL_ID",
    "USER_POOL_CLIENT_ID",
    "COGNITO_REGION",
    "COGNITO_DOMAIN",
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


def configuration() -> Setup:
    env = os.environ
    values = {name: env.get(name, "") for name in _SETTINGS}
    values["COGNITO_REGION"] = values["COGNITO_REGION"] or env.get("AWS_REGION", "")
    return _setup(tuple(sorted(values.items())))


# ---------------------------------------------------------------- the page


def render(view: str, lang: str, user_code: str, setup: Setup) -> str:
    texts = MESSAGES[lang]
    product = setup.values["product_name"] or texts["product_default"]
    sessions = view == "sessions"
    heading_key = "signin_heading_sessions" if sessions else "signin_heading"
    lead_key = "signin_lead_sessions" if sessions else "signin_lead"
    title = texts["title_sessions" if sessions else "title_signin"]
    languages = " ".join(
        f'<a href="?lang={code}" hreflang="{code}" lang="{code}" data-lang="{code}"'
        + (' aria-current="true"' if code == lang else "")
        + f">{html.escape(MESSAGES[code]['language_name'])}</a>"
        for code in LANGUAGES
    )
    logo = setup.values["logo"]
    support = setup.values["support"]
    values = {
        "lang": lang,
        "title": f"{title} \u2013 {product}",
        "product": product,
        "view": view,
        "user_code": user_code,
        "signin_heading_key": heading_key,
        "signin_heading": texts[heading_key],
        "signin_lead_key": lead_key,
        "signin_lead": texts[lead_key],
        **setup.values,
    }
    raw = {
        "style": setup.style,
        "script": SCRIPT,
        "languages": languages,
        "logo": (
            f'<img class="logo" src="{html.escape(logo, quote=True)}" alt="" width="28" height="28">'
            if logo
            else ""
        ),
        "support": (
            f'<p><a id="support" href="{html.escape(support, quote=True)}" data-t="support">'
            f"{html.escape(texts['support'])}</a></p>"
            if support
            else ""
        ),
        "current_connect": "" if sessions else ' aria-current="page"',
        "current_devices": ' aria-current="page"' if sessions else "",
        "hidden_steps": " hidden" if sessions else "",
        "wide": " wide" if sessions else "",
    }

    def field(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "raw":
            return raw[name]
        return html.escape(texts[name] if kind == "t" else values[name], quote=True)

    return _TEMPLATE_FIELD.sub(field, PAGE)


app = http.make_app()


def _page(route: str) -> Response[str]:
    setup = configuration()
    event = app.current_event
    lang = choose_language(event.get_query_string_value("lang"), event.headers.get("accept-language"))
    user_code = event.get_query_string_value("user_code") or ""
    if len(user_code) > MAX_USER_CODE:
        user_code = ""
    body = render(VIEWS[route], lang, user_code, setup)
    headers = {**setup.headers, "Content-Language": lang}
    return Response(status_code=200, content_type="text/html; charset=utf-8", body=body, headers=headers)


@app.get("/device")
def device_page() -> Response[str]:
    return _page("/device")


@app.get("/device/sessions")
def sessions_page() -> Response[str]:
    return _page("/device/sessions")


lambda_handler = http.entrypoint(app)
