"""examples/web_app in a real browser: the web app's quick-start, end to end, on the local stack.

The page (served by `make serve` at /demo/app, on the API's own origin) signs in with the device flow:
it shows a code and a link, the person approves in a second tab on the real verification page (signing
in through the stack's managed login), and the page's polling of POST /auth/device/exchange gets the
tokens. It then moves the refresh token into the HttpOnly cookie (POST /auth/refresh with
`set_cookie: true`), refreshes with the cookie, calls the example resource server (/demo/me) with the
access token, survives a reload, and signs out. Chromium is Debian's (/usr/bin/chromium, as in
test_browser.py), driven by Playwright.

Chromium treats http://127.0.0.1 as a secure context: it stores and sends the `Secure` cookie over plain
HTTP there, which this test relies on (and checks: the cookie is in the jar, marked Secure).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Response,
    expect,
    sync_playwright,
)

from local.examples import WEB_CLIENT_ID
from local.stack import LocalStack, StackInfo
from tests.e2e.conftest import CognitoUser, NewUser
from tests.support import jwt_check

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]
TIMEOUT = 10


@pytest.fixture(scope="module")
def examples(local_stack: LocalStack) -> dict[str, str]:
    """The shared stack, with examples/ served beside the API (as `make serve` does)."""
    return local_stack.serve_examples()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}: run `make browser` as root")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    opened = browser.new_context(locale="en-GB", timezone_id="UTC", viewport={"width": 1100, "height": 800})
    opened.set_default_timeout(TIMEOUT * 1000)
    yield opened
    opened.close()


class Watch:
    """What the page did: script errors, CSP violations, and the token service's answers it read."""

    def __init__(self, page: Page) -> None:
        self.problems: list[str] = []
        self.answers: list[tuple[str, int, dict[str, Any], dict[str, Any]]] = []  # path, status, sent, body
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.problems.append(f"CSP violation: {message.text}")

    def _response(self, response: Response) -> None:
        path = response.url.split("//", 1)[-1].partition("/")[2]
        if not path.startswith(("auth/", "oauth/")):
            return
        sent = response.request.post_data or ""
        try:
            body = response.json()
        except Exception:
            body = {}
        self.answers.append(
            (f"/{path}", response.status, json.loads(sent) if sent.startswith("{") else {}, body)
        )


def refresh_cookie(context: BrowserContext, stack: StackInfo) -> dict[str, Any] | None:
    found = [c for c in context.cookies(f"{stack.api_url}/auth/refresh") if c["name"] == "refresh_token"]
    assert len(found) <= 1, found
    return dict(found[0]) if found else None


def approve_in_a_second_tab(verify: Page, person: CognitoUser, user_code: str) -> None:
    """The person, in the tab the link opened: the verification page, the managed login, Approve."""
    verify.get_by_role("button", name="Sign in", exact=True).click()
    verify.get_by_label("Email address").fill(person.username)
    verify.get_by_label("Password").fill(person.password)
    verify.get_by_role("button", name="Sign in").click()
    expect(verify.get_by_label("Code", exact=True)).to_have_value(user_code)  # from verification_uri_complete
    verify.get_by_role("button", name="Continue").click()
    expect(verify.get_by_role("heading", name="Allow Demo web app to access your account?")).to_be_visible()
    verify.get_by_role("button", name="Approve").click()
    expect(verify.get_by_role("heading", name="Device connected")).to_be_visible()


def test_a_web_app_signs_in_keeps_its_session_in_the_cookie_refreshes_and_signs_out(
    stack: StackInfo, examples: dict[str, str], context: BrowserContext, new_user: NewUser
) -> None:
    person = new_user()  # of the demo organization; its own sessions, its own count of wrong codes
    app_url = examples["web_app"]
    assert app_url == f"{stack.api_url}/demo/app"
    page = context.new_page()
    watch = Watch(page)
    page.goto(app_url)
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()  # no cookie yet: signed out, quietly
    expect(page.get_by_role("alert")).to_be_hidden()

    # 1. the device flow: a code and a link; the person approves in a second tab
    page.get_by_role("button", name="Sign in").click()
    code = page.locator("#user-code")
    expect(code).to_have_text(re.compile(r"^[B-DF-HJ-NP-TV-XZ]{4}-[B-DF-HJ-NP-TV-XZ]{4}$"))
    user_code = str(code.text_content())
    link = page.locator("#verify-link")
    expect(link).to_have_attribute("href", f"{stack.api_url}/device?user_code={user_code}")
    expect(link).to_have_attribute("target", "_blank")
    with context.expect_page() as opened:
        link.click()
    approve_in_a_second_tab(opened.value, person, user_code)

    # 2. the page's next poll gets the tokens, and the refresh token goes into the HttpOnly cookie at once
    expect(page.locator("#who")).to_have_text(person.username, timeout=20_000)  # a poll interval away
    expect(page.get_by_role("alert")).to_be_hidden()
    expect(page.locator("#org")).to_have_text(stack.demo.organization_name)
    exchanged = [a for a in watch.answers if a[0] == "/auth/device/exchange" and a[1] == 200]
    assert len(exchanged) == 1
    first_refresh_token = exchanged[0][3]["refresh_token"]
    moved = [a for a in watch.answers if a[0] == "/auth/refresh" and a[2].get("set_cookie") is True]
    assert len(moved) == 1 and moved[0][1] == 200, moved
    assert moved[0][2]["refresh_token"] == first_refresh_token
    assert "refresh_token" not in moved[0][3]  # the successor went only into Set-Cookie
    cookie = refresh_cookie(context, stack)
    assert cookie is not None, "the refresh answer set no cookie the browser kept"
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]) == (
        True,
        True,
        "Strict",
        "/auth",
    )
    assert cookie["value"].startswith("rt_") and cookie["value"] != first_refresh_token
    # nothing a script can read holds a refresh token
    readable = page.evaluate("JSON.stringify([document.cookie, {...localStorage}, {...sessionStorage}])")
    assert "rt_" not in readable, readable
    claims = jwt_check.verify_over_http(moved[0][3]["access_token"], stack.api_url)
    assert (claims["sub"], claims["client_id"], claims["org_id"]) == (
        person.sub,
        WEB_CLIENT_ID,
        stack.demo.organization_id,
    )

    # 3. refresh with the cookie: a new access token, and the cookie rotates
    before = cookie["value"]
    with page.expect_response(
        lambda r: r.url.endswith("/auth/refresh") and not r.request.post_data
    ) as refreshed:
        page.get_by_role("button", name="Refresh").click()
    assert refreshed.value.status == 200
    assert "refresh_token" not in refreshed.value.json()  # a cookie refresh answers only in Set-Cookie
    after = refresh_cookie(context, stack)
    assert after is not None and after["value"] != before

    # 4. the access token on an API of the product's: the example resource server
    page.get_by_role("button", name="Call /demo/me").click()
    answer = page.locator("#api-answer")
    expect(answer).to_contain_text('"org_id": "demo-org"')
    assert str(answer.text_content()).startswith("200")

    # a reload keeps the person signed in: the cookie refreshes the new page
    page.reload()
    expect(page.locator("#who")).to_have_text(person.username)

    # 5. sign out: the session ends, the cookie is cleared, its last refresh token no longer works
    last = refresh_cookie(context, stack)
    assert last is not None
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    assert refresh_cookie(context, stack) is None
    refused = requests.post(
        f"{stack.api_url}/auth/refresh", json={"refresh_token": last["value"]}, timeout=TIMEOUT
    )
    assert (refused.status_code, refused.json()["type"]) == (401, "invalid_grant")
    assert watch.problems == []
