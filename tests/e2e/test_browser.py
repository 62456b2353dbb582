"""The verification page in a real browser, against the local stack, with a real device polling.

Chromium is Debian's (/usr/bin/chromium, installed by `make browser`), driven through Playwright's
Python package; Playwright never downloads a browser of its own. Each test starts a device (POST
/oauth/device/code) in a thread that polls POST /oauth/token as RFC 8628 says (honouring `interval` and
`slow_down`), while the browser signs in, enters the code and decides. Every step is photographed
under test-output/browser/<test>/.
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
from playwright.sync_api import Browser, ConsoleMessage, Locator, Page, expect, sync_playwright

from authcore import admin
from authcore.store import Store
from local.stack import StackInfo
from tests.e2e.conftest import CognitoUser, NewUser
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

    requests: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def posts_to_verify(self) -> int:
        return sum(1 for method, url in self.requests if method == "POST" and "/oauth/device/verify" in url)


OpenPage = Callable[[str], tuple[Page, Watched]]
StartDevice = Callable[[], Device]


@pytest.fixture
def open_page(browser: Browser, stack: StackInfo) -> Iterator[OpenPage]:
    """Opens pages in a fresh browser context (no shared storage) and checks, at the end, that they
    talked only to the API and the user pool, broke no CSP rule and threw no script error."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(10_000)
    watched: list[Watched] = []

    def opener(url: str) -> tuple[Page, Watched]:
        page = context.new_page()
        seen = Watched()
        page.on("request", lambda r: seen.requests.append((r.method, r.url)))
        page.on("pageerror", lambda error: seen.problems.append(f"script error: {error}"))

        def console(message: ConsoleMessage) -> None:
            if "Content Security Policy" in message.text:  # Chromium reports each violation here
                seen.problems.append(f"CSP violation: {message.text}")

        page.on("console", console)
        page.goto(url)
        watched.append(seen)
        return page, seen

    yield opener
    context.close()
    allowed = (stack.api_url, stack.aws_endpoint_url)
    for seen in watched:
        assert not seen.problems, seen.problems
        elsewhere = [url for _, url in seen.requests if not url.startswith(allowed)]
        assert not elsewhere, f"the page reached beyond the API and the user pool: {elsewhere}"


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


def sign_in_on_page(page: Page, person: Person | CognitoUser) -> None:
    page.get_by_label("Email").fill(person.username)
    page.get_by_label("Password").fill(person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Enter the code from your device")).to_be_visible()


def enter_code(page: Page, code: str) -> None:
    page.get_by_label("Code", exact=True).fill(code)
    page.get_by_role("button", name="Continue").click()


def alert(page: Page) -> Locator:
    return page.get_by_role("alert")


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

    # sign in: the email field has the focus; Tab, Enter; no mouse from here to the end
    expect(page.get_by_role("heading", name="Sign in to connect a device")).to_be_visible()
    expect(page.get_by_label("Email")).to_be_focused()
    page.keyboard.type(person.username)
    page.keyboard.press("Tab")
    page.keyboard.type(person.password)
    shots(page, "sign-in")
    page.keyboard.press("Enter")

    # the code: typed as a person might, lower case and without the hyphen
    expect(page.get_by_label("Code", exact=True)).to_be_focused()
    expect(page.get_by_text(f"Signed in as {person.username}")).to_be_visible()
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

    # the same code again: it has been used
    page.get_by_role("button", name="Connect another device").click()
    enter_code(page, dev.user_code)
    expect(alert(page)).to_contain_text("already been used")
    expect(page.get_by_label("Code", exact=True)).to_be_focused()
    shots(page, "code-already-used")


def test_deny_gives_the_device_access_denied(
    stack: StackInfo, open_page: OpenPage, device: StartDevice, shots: Shots
) -> None:
    dev = device()
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, demo(stack))
    enter_code(page, dev.user_code)
    expect(page.get_by_role("heading", name="Allow Demo CLI to access your account?")).to_be_visible()
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    shots(page, "consent-on-a-phone")
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Request denied")).to_be_focused()
    expect(page.locator("#step-done")).to_contain_text("will not get access")
    shots(page, "denied")
    outcome = dev.wait()
    assert outcome["error"] == "access_denied", outcome
    assert "access_token" not in outcome


def test_prefilled_code_waits_for_an_explicit_decision(
    stack: StackInfo, open_page: OpenPage, device: StartDevice, shots: Shots
) -> None:
    dev = device()
    page, watched = open_page(dev.started["verification_uri_complete"])
    shots(page, "sign-in-with-code-in-url")
    sign_in_on_page(page, demo(stack))
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


def test_a_wrong_code_says_so_and_keeps_the_person_on_the_code(
    stack: StackInfo, open_page: OpenPage, new_user: NewUser, shots: Shots
) -> None:
    person = new_user()  # wrong codes are counted per person: a fresh one (a member: strangers get 403)
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, person)
    enter_code(page, "BCDF-GHJK")
    expect(alert(page)).to_contain_text("That code is wrong or has expired")
    code = page.get_by_label("Code", exact=True)
    expect(code).to_be_focused()
    expect(code).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#step-consent")).to_be_hidden()
    shots(page, "wrong-code")


def test_a_wrong_password_is_a_sign_in_failure(stack: StackInfo, open_page: OpenPage, shots: Shots) -> None:
    page, _ = open_page(f"{stack.api_url}/device")
    page.get_by_label("Email").fill(stack.demo.username)
    page.get_by_label("Password").fill("Not-The-Passw0rd")
    page.get_by_role("button", name="Sign in").click()
    expect(alert(page)).to_contain_text("Sign-in failed: the email or password is not right")
    expect(page.get_by_label("Password")).to_be_focused()
    expect(page.get_by_role("heading", name="Sign in to connect a device")).to_be_visible()
    shots(page, "sign-in-failed")


def test_too_many_wrong_codes_asks_the_person_to_wait(
    stack: StackInfo, open_page: OpenPage, new_user: NewUser, shots: Shots
) -> None:
    person = new_user()  # wrong codes are counted per person: a fresh one (a member: strangers get 403)
    page, _ = open_page(f"{stack.api_url}/device")
    sign_in_on_page(page, person)
    for _ in range(30):
        enter_code(page, "BCDF-GHJK")
        expect(alert(page)).to_contain_text(re.compile("wrong or has expired|Too many wrong codes"))
        if "Too many" in alert(page).inner_text():
            break
    expect(alert(page)).to_contain_text(
        re.compile(r"Too many wrong codes\. Wait (a minute|\d+ minutes), then")
    )
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
    expect(alert(page)).to_contain_text("Choose the organization")
    expect(picker.get_by_role("radio").first).to_be_focused()
    shots(page, "organization-required")

    picker.get_by_role("radio", name="Umbrella Research (member)").check()
    expect(page.locator("#alert")).to_be_empty()  # choosing clears the request to choose
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
    pages = []
    for _ in range(2):
        page, _ = open_page(f"{stack.api_url}/device")
        sign_in_on_page(page, demo(stack))
        enter_code(page, dev.user_code)
        expect(page.get_by_role("button", name="Approve")).to_be_visible()
        pages.append(page)
    first, second = pages
    first.get_by_role("button", name="Approve").click()
    expect(first.get_by_role("heading", name="Device connected")).to_be_visible()
    second.get_by_role("button", name="Deny").click()
    expect(alert(second)).to_contain_text("already been used")
    expect(second.get_by_label("Code", exact=True)).to_be_focused()
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
