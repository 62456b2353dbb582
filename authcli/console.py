"""Terminal output: plain lines when piped, a one-line animated status when stdout is a terminal."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
ASCII_SPINNER = "|/-\\"
TICK = 0.1  # seconds between spinner frames
PLAIN_EVERY = 60.0  # seconds between progress lines when not a terminal


def isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


@dataclass(frozen=True)
class Clock:
    """Where the CLI reads the time (monotonic seconds) and how it waits. Tests pass their own: a sleep
    that records each wait and moves their clock instead of waiting."""

    monotonic: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


class Console:
    def __init__(self, out: TextIO, err: TextIO, clock: Clock | None = None) -> None:
        self.out, self.err = out, err
        self.clock = clock or Clock()
        self.tty = isatty(out)
        self.color = self.tty and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"
        encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "")
        self.frames = SPINNER if encoding == "utf8" else ASCII_SPINNER
        self._status_shown = False

    def say(self, text: str = "") -> None:
        self.clear_status()
        print(text, file=self.out, flush=True)

    def warn(self, text: str) -> None:
        self.clear_status()
        print(text, file=self.err, flush=True)

    def status(self, text: str) -> None:
        """Redraw the status line (terminals only)."""
        if not self.tty:
            return
        self.out.write("\r\x1b[K" + text)
        self.out.flush()
        self._status_shown = True

    def clear_status(self) -> None:
        if self._status_shown:
            self._status_shown = False
            self.out.write("\r\x1b[K")
            self.out.flush()

    def bold(self, text: str) -> str:
        return f"\x1b[1m{text}\x1b[0m" if self.color else text

    def highlight(self, text: str) -> str:
        return f"\x1b[1;33m{text}\x1b[0m" if self.color else text

    def dim(self, text: str) -> str:
        return f"\x1b[2m{text}\x1b[0m" if self.color else text


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds + 0.999))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Countdown:
    """Waits while showing how long the user code has left: a spinner on a terminal, otherwise a plain
    line now and then."""

    def __init__(self, console: Console, deadline: float, what: str = "Waiting for approval") -> None:
        self.console = console
        self.clock = console.clock
        self.deadline = deadline  # on self.clock.monotonic()
        self.what = what
        self.frame = 0
        self.next_line = self.clock.monotonic() + PLAIN_EVERY

    def remaining(self) -> float:
        return self.deadline - self.clock.monotonic()

    def start(self) -> None:
        if not self.console.tty:
            self.console.say(f"{self.what} (the code expires in {clock(self.remaining())})...")

    def wait(self, seconds: float) -> None:
        end = min(self.clock.monotonic() + seconds, self.deadline)
        while True:
            now = self.clock.monotonic()
            if now >= end:
                return
            if self.console.tty:
                spin = self.console.frames[self.frame % len(self.console.frames)]
                self.frame += 1
                left = clock(self.deadline - now)
                self.console.status(f"{spin} {self.what}... {self.console.dim(f'code expires in {left}')}")
                self.clock.sleep(min(TICK, end - now))
            else:
                if now >= self.next_line:
                    self.console.say(f"Still waiting; the code expires in {clock(self.deadline - now)}.")
                    self.next_line = now + PLAIN_EVERY
                self.clock.sleep(min(end, self.next_line) - now)
