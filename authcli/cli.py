"""The commands: login, whoami, token, logout.

Exit status: 0 success, 1 failure (denied, expired, server trouble), 2 usage, 4 not logged in or the
session has ended (log in again), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import webbrowser
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from authcli import __version__, api, credentials
from authcli.api import ApiError, BadAnswer, Failure, Unreachable
from authcli.console import Clock, Console, Countdown, isatty
from authcli.credentials import Credentials, NotLoggedIn, Organization, User

PROG = "python -m authcli"
LOGIN = f"`{PROG} login`"
SERVE_JSON = Path(".local") / "serve.json"
REFRESH_MARGIN = 60  # seconds: `token` refreshes when the access token has less than this left
DEFAULT_INTERVAL = 5  # RFC 8628 §3.2
MAX_TRANSIENT = 3  # consecutive server failures tolerated while polling


class Denied(Failure):
    pass


class SessionEnded(Failure):
    exit_code = 4


# ------------------------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class Endpoints:
    device_authorization: str
    device_exchange: str
    refresh: str
    logout: str


def discover(server: str) -> Endpoints:
    """RFC 8414 metadata, including the product's non-standard endpoints."""
    reply = api.call("GET", f"{server}/.well-known/oauth-authorization-server")
    meta = reply.body
    issuer = meta.get("issuer")
    if not isinstance(issuer, str):
        raise BadAnswer(f"The metadata at {server} has no issuer; is that the token service?")
    # RFC 8414 §3.3: the issuer must be the address the metadata was fetched from.
    if issuer.rstrip("/").lower() != server.lower():
        raise Failure(
            f"The server at {server} says its address is {issuer}; use --server {issuer} "
            "(RFC 8414 requires the two to match)."
        )

    def endpoint(key: str) -> str:
        value = meta.get(key)
        if not isinstance(value, str) or not value:
            raise BadAnswer(f"The metadata at {server} has no {key}; is that the token service?")
        api.check_transport(value)
        return value

    return Endpoints(
        device_authorization=endpoint("device_authorization_endpoint"),
        device_exchange=endpoint("device_exchange_endpoint"),
        refresh=endpoint("refresh_endpoint"),
        logout=endpoint("logout_endpoint"),
    )


def upgrade_required(err: ApiError) -> Failure:
    return Failure(f"This authcli ({__version__}) is too old for the server: {err.message} Please upgrade.")


# ------------------------------------------------------------------------------------------- defaults


@dataclass(frozen=True)
class Target:
    server: str
    client_id: str
    source: str  # where they came from, to tell a newcomer


def _serve_json() -> tuple[Path, Mapping[str, Any]] | None:
    """What `make serve` wrote: the local stack's address and its public client."""
    package_root = Path(__file__).resolve().parent.parent
    for folder in dict.fromkeys((Path.cwd(), package_root)):
        file = folder / SERVE_JSON
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            return file, data
    return None


def _same(server: str | None, other: object) -> bool:
    return (
        bool(server)
        and isinstance(other, str)
        and api.normalize_server(server or "") == api.normalize_server(other)
    )


def resolve_target(server: str | None, client_id: str | None) -> Target:
    """--server / --client-id, else AUTHCLI_SERVER / AUTHCLI_CLIENT_ID, else what `make serve` wrote."""
    server = server or os.environ.get("AUTHCLI_SERVER") or None
    client_id = client_id or os.environ.get("AUTHCLI_CLIENT_ID") or None
    source = ""
    local = _serve_json()
    if local is not None:
        file, data = local
        api_url = data.get("api_url")
        clients = data.get("clients")
        public = clients.get("public") if isinstance(clients, dict) else None
        local_client = public.get("client_id") if isinstance(public, dict) else None
        if server is None and isinstance(api_url, str):
            server, source = api_url, f" (the local stack, from {file})"
        # The local client id only makes sense against the local stack.
        if client_id is None and isinstance(local_client, str) and _same(server, api_url):
            client_id = local_client
    if not server:
        raise Failure(
            "No server to log in to: pass --server URL or set AUTHCLI_SERVER "
            "(or run `make serve` in the repository first, which starts one locally)."
        )
    if not client_id:
        raise Failure("No client id: pass --client-id ID or set AUTHCLI_CLIENT_ID.")
    return Target(api.normalize_server(server), client_id, source)


# ------------------------------------------------------------------------------------------- login


def can_open_browser(console: Console) -> bool:
    if not console.tty or not isatty(sys.stdin):
        return False
    if sys.platform in ("darwin", "win32") or os.environ.get("BROWSER"):
        return True
    # Without a display, webbrowser would fall back to a text browser and take over the terminal.
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def cmd_login(args: argparse.Namespace, console: Console) -> int:
    target = resolve_target(args.server, args.client_id)
    endpoints = discover(target.server)
    form = {"client_id": target.client_id}
    if args.scope:
        form["scope"] = args.scope
    try:
        started = api.call("POST", endpoints.device_authorization, form=form).body
    except ApiError as err:
        if err.type == "invalid_client":
            raise Failure(f"The server does not know the client id {target.client_id!r}: {err}") from None
        if err.type == "invalid_scope":
            raise Failure(f"The client may not ask for scope {args.scope!r}: {err}") from None
        if err.status == 426:
            raise upgrade_required(err) from None
        if err.status == 429:
            wait = f" in {int(err.retry_after)} seconds" if err.retry_after else " later"
            raise Failure(f"Too many sign-ins were started from this network; try again{wait}.") from None
        raise Failure(f"The server refused to start a login: {err}") from None
    began = console.clock.monotonic()

    device_code, user_code, page = (
        _text(started, k) for k in ("device_code", "user_code", "verification_uri")
    )
    page_with_code = started.get("verification_uri_complete")
    expires_in = _number(started, "expires_in")
    interval = started.get("interval", DEFAULT_INTERVAL)
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
        interval = DEFAULT_INTERVAL
    for link in (page, page_with_code):
        if isinstance(link, str):
            api.check_transport(link)

    console.say(f"Logging in to {target.server}{target.source}")
    console.say()
    console.say(f"  Your one-time code:  {console.highlight(user_code)}")
    # What the page will say about this device (RFC 8628 §5.4): a request that shows anything else is
    # someone else's, whoever asks you to approve it.
    console.say(f"  The page will show:  client {target.client_id}, version {__version__}")
    console.say(f"                       {api.USER_AGENT}")
    console.say("  Approve there only if it does, and only a code you started yourself.")
    console.say()
    if isinstance(page_with_code, str) and page_with_code:
        console.say(f"Open {console.bold(page_with_code)}")
        console.say(f"(or open {page} and type the code), then sign in and approve.")
        to_open = page_with_code
    else:
        console.say(f"Open {console.bold(page)}, type the code, then sign in and approve.")
        to_open = page
    if not args.no_browser and can_open_browser(console):
        try:
            opened = webbrowser.open(to_open)
        except Exception:  # a broken browser setup must not end the login
            opened = False
        if opened:
            console.say("Opened the page in your browser.")
    console.say()

    countdown = Countdown(console, deadline=began + expires_in)
    tokens = poll(endpoints.device_exchange, target.client_id, device_code, float(interval), countdown)
    now = int(time.time())
    creds = Credentials(
        server=target.server,
        client_id=target.client_id,
        access_token=_text(tokens, "access_token"),
        expires_at=now + int(_number(tokens, "expires_in")),
        refresh_token=_text(tokens, "refresh_token"),
        scope=str(tokens.get("scope") or args.scope or ""),
        user=_user(tokens),
        organization=_organization(tokens),
    )
    file = credentials.save(creds)
    console.say(f"Logged in as {console.bold(creds.user.email)} ({creds.organization.name})")
    console.say(console.dim(f"Credentials saved in {file}"))
    return 0


def poll(url: str, client_id: str, device_code: str, interval: float, countdown: Countdown) -> dict[str, Any]:
    """Ask for the tokens every `interval` seconds until the user decides (RFC 8628 §3.4, §3.5)."""
    console = countdown.console
    countdown.start()
    wait, failures = interval, 0
    while True:
        countdown.wait(wait)
        if countdown.remaining() <= 0:
            raise Failure(f"The code expired before the login was approved. Run {LOGIN} again.")
        try:
            return api.call("POST", url, json_body={"device_code": device_code, "client_id": client_id}).body
        except ApiError as err:
            if err.type == "authorization_pending":
                wait, failures = interval, 0
            elif err.type == "slow_down":
                # The product API says the new interval in Retry-After; the OAuth dialect in the body.
                said = err.retry_after if err.retry_after is not None else err.body.get("interval")
                if isinstance(said, (int, float)) and not isinstance(said, bool) and said > interval:
                    interval = float(said)
                else:
                    interval += 5
                wait, failures = interval, 0
            elif err.type == "access_denied":
                raise Denied(f"Login denied: {err.message or 'the request was denied.'}") from None
            elif err.type == "expired_token":
                raise Failure(f"The code expired before the login was approved. Run {LOGIN} again.") from None
            elif err.type == "invalid_grant":
                raise Failure(
                    f"The server no longer accepts this login (the code was already used or is unknown). "
                    f"Run {LOGIN} again."
                ) from None
            elif err.status == 426:
                raise upgrade_required(err) from None
            elif err.transient and failures < MAX_TRANSIENT:
                failures += 1
                wait = max(interval, err.retry_after or 0.0) * failures
                console.warn(f"{err} Trying again in {wait:g} s.")
            else:
                raise Failure(f"The server refused the login: {err}") from None
        except Unreachable as err:
            if failures >= MAX_TRANSIENT:
                raise
            failures += 1
            wait = interval * failures
            console.warn(f"{err} Trying again in {wait:g} s.")


def _text(body: Mapping[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise BadAnswer(f"The server's answer has no {key}; is that the token service?")
    return value


def _number(body: Mapping[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise BadAnswer(f"The server's answer has no valid {key}; is that the token service?")
    return float(value)


def _user(body: Mapping[str, Any]) -> User:
    user = body.get("user")
    if not isinstance(user, dict):
        raise BadAnswer("The server's answer does not say who logged in.")
    return User(id=_text(user, "id"), email=_text(user, "email"), name=str(user.get("name") or ""))


def _organization(body: Mapping[str, Any]) -> Organization:
    org = body.get("organization")
    if not isinstance(org, dict):
        raise BadAnswer("The server's answer does not say which organization.")
    return Organization(id=_text(org, "id"), name=str(org.get("name") or ""), role=str(org.get("role") or ""))


# ------------------------------------------------------------------------------------------- refresh


def stored() -> Credentials:
    creds = credentials.load()
    if creds is None:
        raise NotLoggedIn(f"Not logged in. Run {LOGIN} first.")
    return creds


def fresh(console: Console, margin: int) -> Credentials:
    """The stored login, refreshed first when its access token has less than `margin` seconds left.

    The refresh rotates the refresh token, so the new one is on disk before anything uses the new access
    token; the lock and the second read make concurrent invocations refresh once, not race."""
    creds = stored()
    if creds.expires_at - time.time() > margin:
        return creds
    with credentials.locked():
        creds = stored()  # another process may have refreshed while we waited for the lock
        if creds.expires_at - time.time() > margin:
            return creds
        try:
            renewed = refresh(creds)
        except (Unreachable, BadAnswer, ApiError) as err:
            transient = not isinstance(err, ApiError) or err.transient
            if transient and creds.expires_at - time.time() > 5:
                console.warn(f"Could not refresh the access token, using the current one: {err}")
                return creds
            raise
        credentials.save(renewed)
        return renewed


def refresh(creds: Credentials) -> Credentials:
    endpoints = discover(creds.server)
    now = int(time.time())
    try:
        body = api.call("POST", endpoints.refresh, json_body={"refresh_token": creds.refresh_token}).body
    except ApiError as err:
        if err.type == "invalid_grant" or err.status == 401:
            raise SessionEnded(
                f"Your session on {creds.server} has ended (logged out, expired or revoked). "
                f"Run {LOGIN} to log in again."
            ) from None
        if err.status == 426:
            raise upgrade_required(err) from None
        if err.transient:
            raise
        raise Failure(f"The server refused to refresh the access token: {err}") from None
    return replace(
        creds,
        access_token=_text(body, "access_token"),
        expires_at=now + int(_number(body, "expires_in")),
        refresh_token=_text(body, "refresh_token"),
        scope=str(body.get("scope") or creds.scope),
        user=_user(body) if "user" in body else creds.user,
        organization=_organization(body) if "organization" in body else creds.organization,
    )


# ------------------------------------------------------------------------------------------- commands


def cmd_whoami(args: argparse.Namespace, console: Console) -> int:
    creds = fresh(console, margin=0)
    if args.json:
        console.say(
            json.dumps(
                {
                    "server": creds.server,
                    "client_id": creds.client_id,
                    "user": {"id": creds.user.id, "email": creds.user.email, "name": creds.user.name},
                    "organization": {
                        "id": creds.organization.id,
                        "name": creds.organization.name,
                        "role": creds.organization.role,
                    },
                    "scope": creds.scope,
                    "expires_at": creds.expires_at,
                },
                indent=2,
            )
        )
        return 0
    user, org = creds.user, creds.organization
    who = f"{user.name} <{user.email}>" if user.name else user.email
    console.say(f"Logged in to {creds.server} as {console.bold(who)}")
    console.say(f"Organization: {org.name} ({org.id})" + (f", role {org.role}" if org.role else ""))
    if creds.scope:
        console.say(f"Scope: {creds.scope}")
    left = int(creds.expires_at - time.time())
    console.say(console.dim(f"Access token valid for {left // 60} more minutes"))
    return 0


def cmd_token(args: argparse.Namespace, console: Console) -> int:
    creds = fresh(console, margin=REFRESH_MARGIN)
    console.out.write(creds.access_token + "\n")
    console.out.flush()
    return 0


def cmd_logout(args: argparse.Namespace, console: Console) -> int:
    stored()  # not logged in: say so, and create nothing
    with credentials.locked():
        creds = stored()
        problem: Failure | None = None
        try:
            endpoints = discover(creds.server)
            api.call("POST", endpoints.logout, json_body={"refresh_token": creds.refresh_token})
        except Failure as err:
            problem = err
        credentials.delete()
    who = f"{creds.user.email} on {creds.server}"
    if problem is None:
        console.say(f"Logged out {who}; the session is revoked.")
    else:
        console.say(f"Logged out {who} on this machine.")
        console.warn(
            f"Warning: the session could not be revoked on the server, it stays valid there: {problem}"
        )
    return 0


# ------------------------------------------------------------------------------------------- entry


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog=PROG,
        description="Log in to the token service from a terminal, and hand access tokens to scripts.",
        epilog=f'Start with {LOGIN}; then `{PROG} whoami`, `curl -H "Authorization: Bearer $({PROG} token)" ...`.',
    )
    root.add_argument("--version", action="version", version=f"authcli {__version__}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND", required=True)

    login = commands.add_parser(
        "login",
        help="log in with a one-time code approved in the browser",
        description="Log in with the device flow: approve a one-time code in the browser, on any device. "
        "Defaults come from AUTHCLI_SERVER / AUTHCLI_CLIENT_ID, else from .local/serve.json "
        "(written by `make serve`).",
    )
    login.add_argument("--server", metavar="URL", help="the token service's address (env AUTHCLI_SERVER)")
    login.add_argument(
        "--client-id", metavar="ID", help="the public client to log in as (env AUTHCLI_CLIENT_ID)"
    )
    login.add_argument(
        "--scope", metavar="S", help="space-separated scopes (default: all the client may have)"
    )
    login.add_argument("--no-browser", action="store_true", help="do not open a browser; print the link only")
    login.set_defaults(run=cmd_login)

    whoami = commands.add_parser("whoami", help="show who is logged in, and in which organization")
    whoami.add_argument("--json", action="store_true", help="print JSON")
    whoami.set_defaults(run=cmd_whoami)

    token = commands.add_parser(
        "token",
        help="print a valid access token (refreshing it when needed)",
        description="Print a valid access token and nothing else, for $(python -m authcli token).",
    )
    token.set_defaults(run=cmd_token)

    logout = commands.add_parser("logout", help="revoke the session on the server and forget it here")
    logout.set_defaults(run=cmd_logout)
    return root


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Clock | None = None,
) -> int:
    """`clock`: how the CLI reads the time and waits (polling, the countdown); the real ones by default."""
    console = Console(out or sys.stdout, err or sys.stderr, clock)
    args = parser().parse_args(argv)
    try:
        code: int = args.run(args, console)
        return code
    except KeyboardInterrupt:
        console.warn("Cancelled.")
        return 130
    except Failure as failure:
        console.warn(str(failure))
        return failure.exit_code
    except BrokenPipeError:  # e.g. `python -m authcli token | head -c 10`
        if console.out is sys.__stdout__:
            _silence_stdout()
        return 1


def _silence_stdout() -> None:
    """After a broken pipe, stop the interpreter complaining when it flushes stdout at exit."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
