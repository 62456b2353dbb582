"""Run the whole API on localhost, on embedded AWS services (`make serve`).

    python -m local.serve [--port 3000] [--host 127.0.0.1] [--allow-origin URL ...] [--info-file PATH]
                          [--clock-file PATH] [--runtime {process,lambda}] [--concurrency N] [--no-examples]

examples/ are served beside the API (the resource server at /demo/me, the web app quick-start at
/demo/app: local.examples) unless `--no-examples`.

`--runtime lambda` runs the functions on the real Lambda runtime (local.invoke: the Runtime Interface
Emulator and awslambdaric, `--concurrency` of them per function) instead of worker processes; `make
serve ARGS="--runtime lambda"` installs it first (docs/invoke.md).

Prints where everything is (and writes it as JSON to .local/serve.json), then serves until Ctrl-C or
SIGTERM, and stops every process it started. The terminal stays readable: one short line per request
(stderr) and per audit event, warning or error of a function (stdout); every raw line (the gateway's JSON
access lines, the functions' JSON logs and metrics) goes to .local/serve.log, beside the info file. A
port that is busy or invalid: one line, exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from local.stack import DEFAULT_INFO_FILE, RUNTIMES, LocalStack, PortUnavailable, StackInfo, UnknownParameter
from local.terminal import Terminal

EXIT_USAGE = 2
LOG_FILE_NAME = "serve.log"  # beside the info file: every raw line of the functions and the gateway


class _Stop(Exception):
    """A signal asked the server to stop."""


class _Signals:
    """SIGINT and SIGTERM stop the server. During start-up a signal is only noted, and acted on once
    start-up is over: interrupting it halfway could leave a child process nobody stops."""

    def __init__(self) -> None:
        self.starting = True
        self.requested = False
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        if not self.starting:
            self.ignore()  # a second signal must not interrupt the shutdown
            raise _Stop(signum)

    def started(self) -> None:
        self.starting = False
        if self.requested:
            self.ignore()
            raise _Stop()

    @staticmethod
    def ignore() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 65535, not {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 65535, not {port}")
    return port


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # One line, not usage plus message: the Makefile passes the port through, and this is what shows.
        message = message.removeprefix("argument ").replace(": must be", " must be", 1)
        self.exit(EXIT_USAGE, f"error: {message}\n")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = _Parser(prog="python -m local.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=3000, help="port to listen on; 0: any free port")
    parser.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="URL",
        help="another browser origin allowed to call the API (CORS and cookie refresh); repeatable",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=2,
        help="execution environments: requests served at once (default 2); with --runtime lambda, per function",
    )
    parser.add_argument(
        "--runtime",
        choices=RUNTIMES,
        default="process",
        help="process: worker processes that import every function (default); lambda: the real Lambda "
        "runtime, an emulator per function and execution environment (docs/invoke.md)",
    )
    parser.add_argument(
        "--info-file", type=Path, default=DEFAULT_INFO_FILE, help="where to write the summary"
    )
    parser.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        type=_override,
        metavar="KEY=VALUE",
        help="template parameters, as `sam deploy --parameter-overrides` takes them "
        "(e.g. DeviceAuthorizationsPerIp=0 for a load test from one address)",
    )
    parser.add_argument(
        "--no-examples",
        dest="examples",
        action="store_false",
        help="do not serve examples/ (the resource server at /demo/me, the web app at /demo/app)",
    )
    parser.add_argument(
        "--clock-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="testing only: the functions' clock is the wall clock plus the seconds written in PATH "
        "(re-read when it changes); off unless given",
    )
    return parser.parse_args(argv)


def _override(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    return key, value


def summary(info: StackInfo, info_file: Path, seconds: float, log_file: Path | None = None) -> str:
    public, confidential = info.clients.public, info.clients.confidential
    return "\n".join(
        [
            f"Local token service ready in {seconds:.1f} s",
            f"  API                  {info.api_url}",
            f"  discovery            {info.api_url}/.well-known/oauth-authorization-server",
            f"  embedded AWS         {info.aws_endpoint_url}  (region {info.region})",
            f"  functions            {_runtime_line(info)}",
            f"  Cognito user pool    {info.user_pool_id}  app client {info.user_pool_client_id}",
            f"  verification page    {info.api_url}/device  (Your devices: {info.api_url}/device/sessions)",
            f"  sign-in              {info.sign_in_url}  (the user pool's managed login, locally)",
            f"  demo user            {info.demo.username} / {info.demo.password}"
            f"  (organization {info.demo.organization_id}, sub {info.demo.sub})",
            "                       sign in with these on the sign-in page the verification page opens",
            f"  public client        {public.client_id}",
            f"  confidential client  {confidential.client_id}  (its secret is in the file below)",
            f"  table                {info.table_name}",
            f"  keys secret          {info.keys_secret_id}  (public keys: {info.jwks_secret_id})",
            '  admin                make admin ARGS="clients list"  (this stack, from the file below)',
            *_example_lines(info),
            f"  written to           {info_file}",
            *(
                [f"  raw logs (JSON)      {log_file}  (here: a line per request and per audit event)"]
                if log_file
                else []
            ),
            "Ctrl-C stops it.",
        ]
    )


def _example_lines(info: StackInfo) -> list[str]:
    shown = {
        "resource_server": "resource server    ",
        "web_app": "web app quick-start",
    }
    return [
        f"  {shown.get(name, name.ljust(19))}  {url}  (examples/{name}/README.md)"
        for name, url in info.examples.items()
    ]


def _runtime_line(info: StackInfo) -> str:
    if info.runtime == "lambda":
        return "on the Lambda runtime (an emulator per function and environment; cold start at first use)"
    return "in worker processes (every function warm in each)"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runtime == "lambda":
        from local.invoke import unavailable

        if args.clock_file is not None:
            print("error: --clock-file works with --runtime process only", file=sys.stderr)
            return EXIT_USAGE
        reason = unavailable()
        if reason is not None:
            print(f"error: {reason}", file=sys.stderr)
            return EXIT_USAGE
    signals = _Signals()
    started = time.monotonic()
    # The terminal: a short line per request and per audit event; every raw line in the log file.
    terminal = Terminal(args.info_file.parent / LOG_FILE_NAME, sys.stdout, sys.stderr)
    capturing = contextlib.ExitStack()
    capturing.enter_context(terminal.capture())
    stack = LocalStack(
        args.host,
        args.port,
        concurrency=max(1, args.concurrency),
        allowed_origins=args.allow_origin,
        info_file=args.info_file,
        clock_file=args.clock_file,
        runtime=args.runtime,
        parameters=dict(args.parameter_overrides),
        examples=args.examples,
        access_log=terminal.access,
    )
    try:
        try:
            info = stack.start()
        except (PortUnavailable, UnknownParameter) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        signals.started()
        print(summary(info, args.info_file, time.monotonic() - started, terminal.log_path), flush=True)
        while True:
            signal.pause()
    except _Stop:
        pass
    finally:
        signals.ignore()
        stack.stop()
        capturing.close()
        terminal.close()
    print("Stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
