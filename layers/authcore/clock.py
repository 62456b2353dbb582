"""The service's one notion of "now", in whole epoch seconds.

Every expiry, grace period and polling interval is decided against `now()`. Tests, the model test and
the local stack move time by installing another source (`use`), never by sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable

_source: Callable[[], float] = time.time


def now() -> int:
    return int(_source())


def use(source: Callable[[], float] | None) -> None:
    """Read time from ``source`` (None: the wall clock again)."""
    global _source
    _source = source or time.time


class Manual:
    """A clock that moves only when told: ``clock = Manual(1_800_000_000); use(clock); clock.advance(11)``."""

    def __init__(self, start: float | None = None) -> None:
        self.value = float(int(time.time()) if start is None else start)

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds
