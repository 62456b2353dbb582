"""The verification page in a real browser, against the local stack, with a real device polling.

Chromium is Debian's (/usr/bin/chromium, installed by `make browser`), driven through Playwright's
Python package; Playwright never downloads a browser of its own. Each test starts a device (POST
/oauth/device/code) in a thread that polls POST /oauth/token as RFC 8628 says (honouring `interval` and
`slow_down`), while the browser signs in through the identity provider's own page (the stack's user
pool's managed login, local.oidc: the OpenID Connect code flow with PKCE, as on AWS), enters the code
and decides. Also: the page in German, an expiry seen live, the page without JavaScript, and "Your
devices". Every step is photographed under test-output/browser/<test>/.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Locator,
    Page,
    expect,
    sync_playwright,
)

from authcore.store import Store
from local import admin
from local.stack import StackInfo
from tests.e2e import flows
from tests.e2e.conftest import ClockedStack, CognitoUser, NewUser
from tests.support import jwt_check

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = ROOT / "test-output" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


# ---------------------------------------------------------------- the device


@dataclass
class Device:
    """A device doing RFC 8628: asks for a code, then polls the token endpoint in a thread."""

    api_url: str
    client_id: str
    started: dict[str, Any] = field(default_factory=dict)
    polls: list[str] = field(default_factory=list)  # each poll's outcome: an `error`, or "tokens"
    result: dict[str, Any] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _done: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Device:
        response = requests.post(
            f"{self.api_url}/oauth/device/code", data={"client_id": self.client_id}, timeout=10
        )
        assert response.status_code == 200, response.text
        self.started = response.json()
        self._thread = threading.Thread(target=self._poll, name="device", daemon=True)
        self._thread.start()
        return self

    @property
    def user_code(self) -> str:
        return str(self.started["user_code"])

    def _poll(self) -> None:
        interval = float(self.started["interval"])
        deadline = time.monotonic() + float(self.started["expires_in"])
        form = {
            "grant_type": DEVICE_GRANT,
            "device_code": self.started["device_code"],
            "client_id": self.client_id,
        }
        try:
            with requests.Session() as http:
                while time.monotonic() < deadline:
                    response = http.post(f"{self.api_url}/oauth/token", data=form, timeout=10)
                    body = response.json()
                    if response.status_code == 200:
                        self.polls.append("tokens")
                        self.result = body
                        return
                    error = str(body.get("error"))
                    self.polls.append(error)
                    if error == "slow_down":  # RFC 8628 §3.5: the interval grows, by 5 s unless told
                        interval = float(body.get("interval", interval + 5))
                    elif error != "authorization_pending":
                        self.result = body
                        return
                    if self._stop.wait(interval):
                        return
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """The device's outcome: its tokens, or the error that ended its polling."""
        limit = timeout if timeout is not None else float(self.started["interval"]) * 3 + 10
        assert self._done.wait(limit), f"the device got no answer in {limit:.0f} s (polls: {self.polls})"
        assert self.result is not None, f"the device stopped without an answer (polls: {self.polls})"
        return self.result

    def next_poll(self, timeout: float | None = None) -> str:
        """Wait for the device's next poll and return its outcome."""
        seen = len(self.polls)
        limit = time.monotonic() + (timeout if timeout is not None else float(self.started["interval"]) + 10)
        while len(self.polls) == seen:
            assert time.monotonic() < limit, f"the device did not poll again (polls: {self.polls})"
            time.sleep(0.1)
        return self.polls[seen]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium is not installed at {CHROMIUM}: run `make browser` as root "
            "(apt-get install chromium) to run the browser test"
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@dataclass
class Shots:
    folder: Path
    taken: list[Path] = field(default_factory=list)

    def __call__(self, page: Page, name: str) -> None:
        path = self.folder / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    folder = SHOTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return Shots(folder)


@dataclass
class Watched:
    """What a page did: every request it sent, CSP violations, script errors."""

    allowed: tuple[str, ...]  # the origins it may reach: the API and the sign-in (the identity provider)
    requests: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def posts_to_verify(self) -> int:
        return sum(1 for method, url in self.requests if method == "POST" and "/oauth/device/verify" in url)


class Pages:
    """Browser contexts and pages, each watched; at the end, every page must have talked only to the API
    and the sign-in, broken no CSP rule and thrown no script error."""

    def __init__(self, browser: Browser, stack: StackInfo) -> None:
        self.browser = browser
        self.stack = stack
        self.contexts: list[BrowserContext] = []
        self.watched: list[Watched] = []
        self._default: BrowserContext | None = None

    def context(self, **options: Any) -> BrowserContext:
        """A fresh context (its own cookies and storage): English (GB), UTC, a desktop window, unless
        told otherwise."""
        settings: dict[str, Any] = {
            "viewport": {"width": 1280, "height": 800},
            "locale": "en-GB",
            "timezone_id": "UTC",
        }
        context = self.browser.new_context(**{**settings, **options})
        context.set_default_timeout(10_000)
        self.contexts.append(context)
        return context

    def open(
        self, url: str, context: BrowserContext | None = None, info: StackInfo | None = None
    ) -> tuple[Page, Watched]:
        """A new page (tab) at `url`: in `context`, else in the test's one default context (whose tabs
        share the identity provider's remembered sign-in, as a browser's do)."""
        if context is None:
            self._default = self._default or self.context()
            context = self._default
        where = info or self.stack
        page = context.new_page()
        seen = Watched((where.api_url, where.sign_in_url))
        page.on("request", lambda r: seen.requests.append((r.method, r.url)))
        page.on("pageerror", lambda error: seen.problems.append(f"script error: {error}"))

        def console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:  # Chromium reports each violation here
                seen.problems.append(f"CSP violation: {message.text}")

        page.on("console", console)
        page.goto(url)
        self.watched.append(seen)
        return page, seen

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        for seen in self.watched:
            assert not seen.problems, seen.problems
            elsewhere = [url for _, url in seen.requests if not url.startswith(seen.allowed)]
            assert not elsewhere, f"the page reached beyond the API and the sign-in: {elsewhere}"


OpenPage = Callable[[str], tuple[Page, Watched]]
StartDevice = Callable[[], Device]


@pytest.fixture
def pages(browser: Browser, stack: StackInfo) -> Iterator[Pages]:
    opened = Pages(browser, stack)
    yield opened
    opened.close()


@pytest.fixture
def open_page(pages: Pages) -> OpenPage:
    """Opens a page (a tab) in the test's browser context."""
    return lambda url: pages.open(url)


@pytest.fixture
def device(stack: StackInfo) -> Iterator[StartDevice]:
    started: list[Device] = []

    def start() -> Device:
        dev = Device(stack.api_url, stack.clients.public.client_id).start()
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.stop()


@dataclass(frozen=True)
class Person:
    username: str
    password: str
    sub: str


def demo(stack: StackInfo) -> Person:
    return Person(stack.demo.username, stack.demo.password, stack.demo.sub)


def another_organization(stack: StackInfo, sub: str, name: str) -> str:
    """A new organization with this user as a member; its id."""
    ddb = boto3.client(
        "dynamodb",
        endpoint_url=stack.aws_endpoint_url,
        region_name=stack.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    store = Store(ddb, stack.table_name)
    org_id = f"org-{uuid.uuid4().hex[:8]}"
    admin.create_organization(store, name, org_id)
    admin.add_member(store, sub, org_id, "member")
    return org_id


# ---------------------------------------------------------------- steps

# What the identity provider's sign-in page (local.oidc, the user pool's managed login) calls things.
LOGIN = {
    "en": {"email": "Email address", "password": "Password", "submit": "Sign in"},
    "de": {"email": "E-Mail-Adresse", "password": "Passwort", "submit": "Anmelden"},
}
SIGN_IN_BUTTON = {"en": "Sign in", "de": "Anmelden"}


def sign_in_on_page(page: Page, person: Person | CognitoUser, lang: str = "en") -> None:
    """Sign in as a person does: the page's Sign in button, the identity provider's own page (unless it
    remembers the person), and back on the page, signed in."""
    page.get_by_role("button", name=SIGN_IN_BUTTON[lang], exact=True).click()
    email = page.get_by_label(LOGIN[lang]["email"])
    account = page.locator("#who-email")
    expect(email.or_(account)).to_be_visible()
    if email.is_visible():
        assert page.url.startswith(sign_in_origin(page)), page.url
        email.fill(person.username)
        page.get_by_label(LOGIN[lang]["password"]).fill(person.password)
        page.get_by_role("button", name=LOGIN[lang]["submit"]).click()
    expect(account).to_have_text(person.username)
    assert "code=" not in page.url and "state=" not in page.url, page.url  # gone from the address bar


def sign_in_origin(page: Page) -> str:
    return str(page.evaluate("new URL(location.href).origin"))


def enter_code(page: Page, code: str) -> None:
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Continue").click()


def alert(page: Page) -> Locator:
    return page.get_by_role("alert")


def code_error(page: Page) -> Locator:
    return page.locator("#code-error")


def expect_refused_code(page: Page, text: str | re.Pattern[str]) -> None:
    """The refusal is tied to the field: shown beside it, named by aria-errormessage and
    aria-describedby, the field aria-invalid and focused."""
    code = page.get_by_label("Code", exact=True)
    expect(code_error(page)).to_contain_text(text)
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(code).to_have_attribute("aria-errormessage", "code-error")
    expect(code).to_have_attribute("aria-describedby", re.compile(r"\bcode-error\b"))
    expect(code).to_be_focused()


def focused(page: Page) -> str:
    return str(page.evaluate("document.activeElement && document.activeElement.id"))


def verified_claims(stack: StackInfo, token: str) -> dict[str, Any]:
    """The access token's claims, checked by tests/support/jwt_check.py against the service's JWKS,
    issuer and audience."""
    return jwt_check.verify_over_http(token, stack.api_url)


# ---------------------------------------------------------------- the tests


def test_approving_with_the_keyboard_alone_gives_the_device_its_tokens(
    stack: StackInfo, open_page: OpenPage, device: StartDevice, shots: Shots
) -> None:
    dev = device()
    assert dev.started["verification_uri"] == f"{stack.api_url}/device"
    page, watched = open_page(dev.started["verification_uri"])
    person = demo(stack)

    # sign in: the page's Sign in button has the focus; Enter takes the person to the identity
    # provider's own page (the page itself has no password field); no mouse from here to the end
    expect(page.get_by_role("heading", name="Sign in to connect a device")).to_be_visible()
    expect(page.locator("input[type=password]")).to_have_count(0)
    expect(page.get_by_role("button", name="Sign in")).to_be_focused()
    shots(page, "sign-in")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Email address")).to_be_focused()
    assert page.url.startswith(stack.sign_in_url)
    page.keyboard.type(person.username)
    page.keyboard.press("Tab")
    page.keyboard.type(person.password)
    shots(page, "identity-provider")
    page.keyboard.press("Enter")

    # back on the page, signed in: the code, typed as a person might, lower case and without the hyphen
    expect(page.get_by_label("Code", exact=True)).to_be_focused()
    expect(page.get_by_text(f"Signed in as {person.username}")).to_be_visible()
    assert page.url == f"{stack.api_url}/device"
    page.keyboard.type(dev.user_code.replace("-", "").lower())
    shots(page, "code-entry")
    page.keyboard.press("Enter")

    # consent: the focus is on the question; the first Tab reaches Approve
    heading = page.get_by_role("heading", name="Allow Demo CLI to access your account?")
    expect(heading).to_be_focused()
    consent = page.locator("#step-consent")
    expect(consent).to_contain_text(dev.user_code)
    expect(consent.get_by_role("listitem")).to_have_text([re.compile(r"\bread$"), re.compile(r"\bwrite$")])
    expect(consent).to_contain_text(f"Organization: {stack.demo.organization_name}")
    expect(page.locator("#expiry")).to_have_text(
        re.compile(r"^This request expires in 1[45]:\d\d, at \d\d:\d\d UTC\.$")
    )
    shots(page, "consent")
    assert dev.next_poll() == "authorization_pending"  # nothing is decided until the person decides
    assert watched.posts_to_verify() == 0
    page.keyboard.press("Tab")
    assert focused(page) == "approve-button"
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", name="Device connected")).to_be_focused()
    expect(page.locator("#step-done")).to_contain_text("You can return to your device")
    expect(page.get_by_role("status")).to_have_text("Approved. You can return to your device.")
    shots(page, "done")
    assert watched.posts_to_verify() == 1

    tokens = dev.wait()
    assert set(tokens) >= {"access_token", "token_type", "expires_in", "refresh_token", "scope"}, tokens
    assert tokens["token_type"] == "Bearer"
    claims = verified_claims(stack, tokens["access_token"])
    assert claims["sub"] == person.sub
    assert claims["org_id"] == stack.demo.organization_id
    assert claims["client_id"] == stack.clients.public.client_id
    assert dev.polls[0] == "authorization_pending" and dev.polls[-1] == "tokens"

    # the same code again: it has been used, and the refusal is tied to the field
    page.get_by_role("button", name="Connect another device").click()
    enter_code(page, dev.user_code)
    expect_refused_code(page, "already been used")
    shots(page, "code-already-used")


def test_deny_gives_the_device_access_denied_and_the_account_stays_visible_on_a_phone(
    stack: StackInfo, open_page: OpenPage, device: StartDevice, shots: Shots
) -> None:
    dev = device()
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, demo(stack))
    enter_code(page, dev.user_code)
    expect(page.get_by_role("heading", name="Allow Demo CLI to access your account?")).to_be_visible()
    page.set_viewport_size({"width": 320, "height": 700})  # a small phone
    account = page.locator("#who-email")
    expect(account).to_be_visible()  # wrapped onto its own line, cut with an ellipsis if need be
    assert account.bounding_box()["width"] > 0  # type: ignore[index]
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")  # no sideways scroll
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shots(page, "consent-on-a-phone")
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Request denied")).to_be_focused()
    expect(page.locator("#step-done")).to_contain_text("will not get access")
    shots(page, "denied")
    outcome = dev.wait()
    assert outcome["error"] == "access_denied", outcome
    assert "access_token" not in outcome

    # Sign out ends the identity provider's session too: the next Sign in asks for the password again
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    expect(page.get_by_role("heading", name="Sign in to connect a device")).to_be_visible()
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Email address")).to_be_visible()
    shots(page, "signed-out")


def test_prefilled_code_survives_the_sign_in_and_waits_for_an_explicit_decision(
    stack: StackInfo, open_page: OpenPage, device: StartDevice, shots: Shots
) -> None:
    dev = device()
    page, watched = open_page(dev.started["verification_uri_complete"])
    shots(page, "sign-in-with-code-in-url")
    sign_in_on_page(page, demo(stack))  # to the identity provider and back: the code comes back too
    code = page.get_by_label("Code", exact=True)
    expect(code).to_have_value(dev.user_code)
    expect(code).to_be_focused()
    expect(page.locator("#code-lead")).to_contain_text("Check that this is the code your device shows")
    shots(page, "prefilled-code")

    # the page waits: a full poll interval later, the device is still pending and nothing was posted
    assert dev.next_poll() == "authorization_pending"
    expect(page.locator("#step-consent")).to_be_hidden()
    assert watched.posts_to_verify() == 0

    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Allow Demo CLI to access your account?")).to_be_visible()
    assert dev.next_poll() == "authorization_pending"
    assert watched.posts_to_verify() == 0
    shots(page, "consent")

    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Device connected")).to_be_visible()
    assert "access_token" in dev.wait()


def test_a_wrong_code_is_refused_on_its_field(
    stack: StackInfo, open_page: OpenPage, new_user: NewUser, shots: Shots
) -> None:
    person = new_user()  # wrong codes are counted per person: a fresh one (a member: strangers get 403)
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, person)
    page.get_by_role("button", name="Continue").click()  # nothing entered
    expect_refused_code(page, "Enter the code your device shows.")
    enter_code(page, "BCDF-GHJK")
    expect_refused_code(page, "That code is wrong or has expired")
    expect(alert(page)).to_be_empty()  # the message is the field's, not a page-wide alert
    expect(page.locator("#step-consent")).to_be_hidden()
    shots(page, "wrong-code")


def test_a_wrong_password_is_refused_by_the_identity_provider_not_the_page(
    stack: StackInfo, open_page: OpenPage, shots: Shots
) -> None:
    page, watched = open_page(f"{stack.api_url}/device")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_label("Email address").fill(stack.demo.username)
    page.get_by_label("Password").fill("Not-The-Passw0rd")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Incorrect username or password.")
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    assert page.url.startswith(stack.sign_in_url)  # still at the identity provider
    shots(page, "sign-in-failed")
    # the page never saw a password: it sent nothing to the API but its own GET
    assert [(m, u) for m, u in watched.requests if u.startswith(stack.api_url)] == [
        ("GET", f"{stack.api_url}/device")
    ]

    page.get_by_label("Password").fill(stack.demo.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_label("Code", exact=True)).to_be_focused()


def test_too_many_wrong_codes_asks_the_person_to_wait(
    stack: StackInfo, open_page: OpenPage, new_user: NewUser, shots: Shots
) -> None:
    person = new_user()  # wrong codes are counted per person: a fresh one (a member: strangers get 403)
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, person)
    for _ in range(30):
        enter_code(page, "BCDF-GHJK")
        expect(code_error(page)).to_contain_text(re.compile("wrong or has expired|Too many wrong codes"))
        if "Too many" in code_error(page).inner_text():
            break
    expect_refused_code(page, re.compile(r"Too many wrong codes\. Wait (a minute|\d+ minutes), then"))
    shots(page, "too-many-attempts")


def test_a_person_in_several_organizations_picks_one(
    stack: StackInfo, open_page: OpenPage, device: StartDevice, new_user: NewUser, shots: Shots
) -> None:
    person = new_user()  # a member of the demo organization
    other = another_organization(stack, person.sub, "Umbrella Research")
    dev = device()
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, person)
    enter_code(page, dev.user_code)
    picker = page.get_by_role("group", name="Sign in to which organization?")
    expect(picker).to_be_visible()
    expect(picker.get_by_role("radio")).to_have_count(2)

    page.get_by_role("button", name="Approve").click()  # none chosen yet
    group = page.get_by_role("radiogroup")
    expect(page.locator("#org-error")).to_have_text(
        "Choose the organization to sign in to, then choose Approve."
    )
    expect(group).to_have_attribute("aria-invalid", "true")
    expect(group).to_have_attribute("aria-errormessage", "org-error")
    expect(picker.get_by_role("radio").first).to_be_focused()
    shots(page, "organization-required")

    picker.get_by_role("radio", name="Umbrella Research (member)").check()
    expect(page.locator("#org-error")).to_be_hidden()  # choosing clears the request to choose
    expect(group).not_to_have_attribute("aria-invalid", "true")
    shots(page, "organization-chosen")
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", name="Device connected")).to_be_visible()
    claims = verified_claims(stack, dev.wait()["access_token"])
    assert claims["sub"] == person.sub
    assert claims["org_id"] == other != stack.demo.organization_id


def test_a_code_decided_in_another_tab_cannot_be_decided_again(
    stack: StackInfo, open_page: OpenPage, device: StartDevice, shots: Shots
) -> None:
    dev = device()
    tabs = []
    for _ in range(2):  # the second tab's sign-in is remembered by the identity provider
        page, _ = open_page(f"{stack.api_url}/device")
        sign_in_on_page(page, demo(stack))
        enter_code(page, dev.user_code)
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        tabs.append(page)
    first, second = tabs
    first.get_by_role("button", name="Approve").click()
    expect(first.get_by_role("heading", name="Device connected")).to_be_visible()
    second.get_by_role("button", name="Deny").click()
    expect_refused_code(second, "already been used")
    shots(second, "decided-elsewhere")
    assert "access_token" in dev.wait()


def _device_code_from(api_url: str, source: str, headers: dict[str, str]) -> dict[str, Any]:
    """POST /oauth/device/code from a chosen loopback address (127.0.1.1 is another /24 than 127.0.0.1)."""
    import http.client
    import json
    from urllib.parse import urlsplit

    url = urlsplit(api_url)
    connection = http.client.HTTPConnection(
        url.hostname or "", url.port, timeout=10, source_address=(source, 0)
    )
    try:
        connection.request(
            "POST",
            "/oauth/device/code",
            body="client_id=demo-cli",
            headers={"content-type": "application/x-www-form-urlencoded", **headers},
        )
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())  # type: ignore[no-any-return]
    finally:
        connection.close()


def test_the_page_shows_where_the_request_came_from(
    stack: StackInfo, open_page: OpenPage, new_user: NewUser, shots: Shots
) -> None:
    """RFC 8628 §5.4: the person sees the device's address, client and version before deciding."""
    person = new_user()
    started = _device_code_from(
        stack.api_url, "127.0.0.1", {"user-agent": "demo-cli/1.4.2 (Linux)", "x-client-version": "1.4.2"}
    )
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, person)
    enter_code(page, started["user_code"])
    origin = page.locator("#device-origin")
    expect(origin).to_contain_text("Requested just now from 127.0.0.1")
    expect(origin).to_contain_text("Demo CLI 1.4.2")
    expect(origin).to_contain_text("demo-cli/1.4.2 (Linux)")
    expect(page.locator("#device-warning")).to_be_hidden()  # the same network as the browser
    shots(page, "consent-with-device")


def test_the_page_warns_when_the_device_is_on_another_network(
    stack: StackInfo, open_page: OpenPage, new_user: NewUser, shots: Shots
) -> None:
    person = new_user()
    started = _device_code_from(stack.api_url, "127.0.1.1", {"user-agent": "curl/8"})
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, person)
    enter_code(page, started["user_code"])
    expect(page.locator("#device-origin")).to_contain_text("from 127.0.1.1")
    warning = page.locator("#device-warning")
    expect(warning).to_be_visible()
    expect(warning).to_contain_text("different network")
    expect(warning).to_contain_text("If you did not start it yourself, deny it.")
    shots(page, "consent-other-network")


def test_the_page_in_german_with_the_persons_time_zone_and_a_switch_back_to_english(
    stack: StackInfo, pages: Pages, device: StartDevice, new_user: NewUser, shots: Shots
) -> None:
    """Accept-Language picks German (the server renders it: the page reads German before any script);
    times are in the person's zone, shown; the language links switch in place, still signed in."""
    person = new_user()
    dev = device()
    context = pages.context(locale="de-DE", timezone_id="Europe/Berlin")
    page, _ = pages.open(f"{stack.api_url}/device", context=context)
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_role("heading", name="Anmelden, um ein Gerät zu verbinden")).to_be_visible()
    expect(page).to_have_title(re.compile("^Anmelden \u2013 Geräte-Anmeldung$"))
    shots(page, "anmelden")
    sign_in_on_page(page, person, lang="de")  # the identity provider's page in German too (ui_locales)
    expect(page.get_by_role("heading", name="Code Ihres Geräts eingeben")).to_be_visible()
    page.get_by_label("Code", exact=True).fill(dev.user_code)
    page.get_by_role("button", name="Weiter").click()

    expect(page.get_by_role("heading", name="Demo CLI Zugriff auf Ihr Konto erlauben?")).to_be_focused()
    consent = page.locator("#step-consent")
    expect(consent).to_contain_text("Ihre Daten lesen")
    expect(consent).to_contain_text(f"Organisation: {stack.demo.organization_name} (Ihre Rolle: Mitglied)")
    expect(page.locator("#device-origin")).to_contain_text("Angefragt gerade eben von 127.0.0.1")
    # a live countdown, and the time of day in the person's zone, with the zone named
    expiry = page.locator("#expiry")
    expect(expiry).to_have_text(
        re.compile(r"^Diese Anfrage läuft in 1[45]:\d\d ab, um \d\d:\d\d (MEZ|MESZ)\.$")
    )
    first = expiry.inner_text()
    expect(expiry).not_to_have_text(first)  # it counts down
    shots(page, "zustimmung")
    page.get_by_role("button", name="Bestätigen").click()
    expect(page.get_by_role("heading", name="Gerät verbunden")).to_be_focused()
    expect(page.get_by_role("status")).to_have_text("Bestätigt. Sie können zu Ihrem Gerät zurückkehren.")
    assert "access_token" in dev.wait()

    page.get_by_role("navigation", name="Sprache").get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="Device connected")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text("Approved. You can return to your device.")
    expect(page.locator("#who")).to_contain_text("Signed in as")  # switched in place: still signed in
    assert page.url.endswith("/device?lang=en")
    shots(page, "switched-to-english")


def test_an_expiry_seen_live_changes_the_screen_instead_of_failing_on_approve(
    clocked_stack: ClockedStack, pages: Pages, shots: Shots
) -> None:
    """The countdown reaches zero on the page (the browser's clock, moved by the test) while the
    service's clock is moved past the same deadline: the screen says the request expired, offers no
    Approve, and the service agrees."""
    info = clocked_stack.info
    context = pages.context()
    context.clock.install()  # the page's clock: the test moves it instead of waiting 15 minutes
    page, watched = pages.open(f"{info.api_url}/device", context=context, info=info)
    sign_in_on_page(page, demo(info))
    started = flows.start_device_flow(info.api_url, info.clients.public.client_id)
    enter_code(page, started["user_code"])
    expect(page.locator("#expiry")).to_have_text(re.compile(r"expires in 1[45]:\d\d, at \d\d:\d\d UTC"))
    shots(page, "counting-down")

    ahead = clocked_stack.now() - time.time()  # the functions' clock runs this far ahead of the page's
    clocked_stack.advance(started["expires_in"] + 1)
    page.clock.fast_forward(int((started["expires_in"] + ahead + 2) * 1000))
    expect(page.get_by_role("heading", name="This request has expired")).to_be_focused()
    expect(page.locator("#consent-expired")).to_contain_text(started["user_code"])
    expect(page.get_by_role("button", name="Approve")).to_be_hidden()
    expect(page).to_have_title(re.compile(r"^Request expired"))
    expect(page.get_by_role("status")).to_have_text("The request has expired.")
    assert watched.posts_to_verify() == 0  # nothing was sent to fail
    shots(page, "expired")

    polled = requests.post(
        f"{info.api_url}/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": "demo-cli"},
        timeout=10,
    )
    assert polled.status_code == 400 and polled.json()["error"] == "expired_token", polled.text
    page.get_by_role("button", name="Enter a different code").click()
    enter_code(page, started["user_code"])
    expect_refused_code(page, "That code is wrong or has expired")


def test_without_javascript_the_page_says_why_and_its_controls_are_off(
    stack: StackInfo, pages: Pages, shots: Shots
) -> None:
    context = pages.context(java_script_enabled=False)
    page, _ = pages.open(f"{stack.api_url}/device?user_code=BCDF-GHJK", context=context)
    expect(page.locator("#noscript")).to_be_visible()
    expect(page.locator("#noscript")).to_contain_text("This page needs JavaScript")
    expect(page.get_by_role("button", name="Sign in")).to_be_disabled()
    expect(page.locator("#user-code")).to_be_disabled()
    expect(page.locator("#code-button")).to_be_disabled()
    shots(page, "no-javascript")


def _session(stack: StackInfo, id_token: str, user_agent: str, version: str | None) -> dict[str, Any]:
    """A device signed in as the person (device flow approved over HTTP): its token response."""
    headers = {"user-agent": user_agent, **({"x-client-version": version} if version else {})}
    started = requests.post(
        f"{stack.api_url}/oauth/device/code", data={"client_id": "demo-cli"}, headers=headers, timeout=10
    ).json()
    flows.approve(stack.api_url, id_token, started["user_code"])
    tokens = requests.post(
        f"{stack.api_url}/oauth/token",
        data={"grant_type": DEVICE_GRANT, "device_code": started["device_code"], "client_id": "demo-cli"},
        timeout=10,
    )
    assert tokens.status_code == 200, tokens.text
    return tokens.json()  # type: ignore[no-any-return]


def _refresh(stack: StackInfo, refresh_token: str) -> requests.Response:
    return requests.post(
        f"{stack.api_url}/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "demo-cli"},
        timeout=10,
    )


def test_your_devices_lists_the_sessions_and_signs_them_out_one_or_all(
    stack: StackInfo, open_page: OpenPage, new_user: NewUser, shots: Shots
) -> None:
    person = new_user()
    token = person.id_token()
    linux = _session(stack, token, "demo-cli/1.4.2 (Linux)", "1.4.2")
    mac = _session(stack, token, "demo-cli/2.0.0 (macOS)", "2.0.0")
    other = _session(stack, token, "curl/8", None)

    page, _ = open_page(f"{stack.api_url}/device/sessions")
    expect(page.get_by_role("heading", name="Sign in to see your devices")).to_be_visible()
    sign_in_on_page(page, person)  # and back to Your devices, not to the code
    assert page.url == f"{stack.api_url}/device/sessions"
    expect(page.get_by_role("heading", name="Your devices", exact=True)).to_be_visible()
    items = page.locator("#sessions-list > li")
    expect(items).to_have_count(3)
    expect(page.locator("#sessions-summary")).to_have_text("3 devices are signed in.")
    expect(page.locator("#sessions-zone")).to_have_text("Times are in your time zone, UTC.")
    on_linux = items.filter(has_text="demo-cli/1.4.2 (Linux)")
    expect(on_linux).to_contain_text("Demo CLI in Demo Org")
    expect(on_linux).to_contain_text("version 1.4.2 · 127.0.0.1")
    expect(on_linux.locator("time").first).to_have_text(re.compile(r"\d{4}, \d\d:\d\d UTC$"))
    shots(page, "your-devices")

    # sign out one: it leaves the list, and its refresh token is refused at once
    on_linux.get_by_role("button", name="Sign out this device").click()
    expect(items).to_have_count(2)
    expect(page.get_by_role("status")).to_have_text("Demo CLI is signed out on that device.")
    expect(items.filter(has_text="(Linux)")).to_have_count(0)
    ended = _refresh(stack, linux["refresh_token"])
    assert ended.status_code == 400 and ended.json()["error"] == "invalid_grant", ended.text
    still = _refresh(stack, mac["refresh_token"])  # the others live on
    assert still.status_code == 200, still.text
    shots(page, "one-signed-out")

    # sign out everywhere, after a confirmation
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_role("group")).to_contain_text("Sign out all 2 devices?")
    expect(page.get_by_role("button", name="Cancel")).to_be_focused()
    page.get_by_role("button", name="Yes, sign out everywhere").click()
    expect(page.get_by_role("status")).to_have_text("Signed out everywhere: 2 devices.")
    expect(items).to_have_count(0)
    expect(page.locator("#sessions-summary")).to_have_text("No device is signed in as you.")
    shots(page, "signed-out-everywhere")
    for refresh_token in (still.json()["refresh_token"], other["refresh_token"]):
        refused = _refresh(stack, refresh_token)
        assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text

    # the page's own sign-in is not a session of the service: Connect a device goes on, signed in
    page.get_by_role("link", name="Connect a device").click()
    expect(page.get_by_label("Code", exact=True)).to_be_focused()
    assert page.url == f"{stack.api_url}/device"
    expect(page.locator("#who-email")).to_have_text(person.username)


def test_the_local_sign_in_is_a_strict_openid_provider_of_the_pools_tokens(stack: StackInfo) -> None:
    """No browser: the stand-in for the user pool's managed login (local.oidc) refuses what a strict
    provider refuses (a redirect URI not the page's, PKCE missing or `plain`, no nonce, a wrong
    verifier, a code used twice), and its ID tokens are the pool's: its issuer, the page's client as
    audience, signed by a key of the JWKS the stack gives the functions, which accept them."""
    import base64
    import hashlib
    from urllib.parse import parse_qs, urlsplit

    import jwt

    discovery = requests.get(f"{stack.sign_in_url}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == stack.user_pool_issuer
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    verifier = base64.urlsafe_b64encode(uuid.uuid4().bytes * 3).rstrip(b"=").decode()
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    page = f"{stack.api_url}/device"
    good = {
        "response_type": "code", "client_id": stack.user_pool_client_id, "redirect_uri": page,
        "scope": "openid email profile", "state": "st", "nonce": "nonce-1", "code_challenge": challenge,
        "code_challenge_method": "S256",
    }  # fmt: skip
    credentials = {"username": stack.demo.username, "password": stack.demo.password}

    def authorize(**changes: str | None) -> requests.Response:
        fresh = {"nonce": f"nonce-{uuid.uuid4().hex}"}  # a nonce already given out is refused (replay)
        query = {k: v for k, v in {**good, **fresh, **changes}.items() if v is not None}
        return requests.post(
            discovery["authorization_endpoint"],
            params=query,
            data=credentials,
            allow_redirects=False,
            timeout=10,
        )

    def redirected_error(response: requests.Response) -> str:
        assert response.status_code == 302, response.text
        location = response.headers["location"]
        assert location.startswith(page + "?"), location
        return parse_qs(urlsplit(location).query)["error"][0]

    def exchange(code: str, code_verifier: str | None = verifier) -> requests.Response:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": page,
            "client_id": good["client_id"],
        }
        if code_verifier is not None:
            form["code_verifier"] = code_verifier
        return requests.post(discovery["token_endpoint"], data=form, timeout=10)

    stranger = authorize(redirect_uri="https://evil.example/device")
    assert stranger.status_code == 400 and "location" not in stranger.headers  # never sent elsewhere
    assert redirected_error(authorize(code_challenge_method="plain")) == "invalid_request"
    assert redirected_error(authorize(nonce=None)) == "invalid_request"
    without_pkce = parse_qs(
        urlsplit(authorize(code_challenge=None, code_challenge_method=None).headers["location"]).query
    )
    assert exchange(without_pkce["code"][0], None).json()["error"] == "invalid_request"  # a public client

    code = parse_qs(urlsplit(authorize(nonce="nonce-1").headers["location"]).query)["code"][0]
    replayed = authorize(nonce="nonce-1")  # the same nonce again, while its code is unused
    assert redirected_error(replayed) == "invalid_request"
    wrong = exchange(code, verifier[:-1] + ("A" if verifier[-1] != "A" else "B"))
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    answered = exchange(code)
    assert answered.status_code == 200, answered.text
    again = exchange(code)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"  # once only

    id_token = answered.json()["id_token"]
    keys = jwt.PyJWKClient(discovery["jwks_uri"])
    claims = jwt.decode(
        id_token, keys.get_signing_key_from_jwt(id_token).key, algorithms=["RS256"],
        audience=stack.user_pool_client_id, issuer=stack.user_pool_issuer,
    )  # fmt: skip
    assert claims["sub"] == stack.demo.sub and claims["nonce"] == "nonce-1" and claims["token_use"] == "id"
    listed = requests.get(f"{stack.api_url}/auth/sessions", headers=flows.bearer(id_token), timeout=10)
    assert listed.status_code == 200, listed.text  # the service trusts it, as it trusts the pool's own
