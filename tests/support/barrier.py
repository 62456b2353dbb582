"""A barrier shared by processes: how the race tests' negative controls force a bad interleaving.

The test process runs a `BarrierServer` (one thread, a TCP socket on 127.0.0.1). A deliberately broken
variant (tests/support/broken.py), installed in the worker processes, calls `Barrier(spec).wait()` at
the point where the interleaving must happen, e.g. after reading an item and before writing it: no
racer of a round goes on until every racer of that round has arrived.

A round is `parties` callers; `arrivals` callers in all, so the last round may be smaller (with W
workers and N requests: rounds of W, then the rest). Each caller's arrival is one connection; the
server answers ``go`` to all of a round at once. Nothing here waits on time to make a race happen:
timeouts only turn a barrier that cannot fill into a loud failure, never a hang. A round not full
within `timeout` breaks: its callers, and every later one, are answered ``broken`` (the worker raises
`threading.BrokenBarrierError`, the request answers 500), and `BarrierServer.check()` fails the test
saying which round. So is an arrival beyond `arrivals` (the variant was reached more often than the
test expected), unless the barrier was made with ``then="pass"``: then, once the race is over, later
callers pass at once, for a test that goes on using the broken variant after its race.

    with BarrierServer(parties=8, arrivals=30) as barrier:
        stack = Stack(url, setup=broken.setup("check_then_act_redeem", barrier))
        ... the race ...
        barrier.check()        # every one of the 30 arrived, in full rounds, nothing broke
"""

from __future__ import annotations

import secrets
import select
import socket
import threading
import time
from types import TracebackType
from typing import Literal

HOST = "127.0.0.1"
SERVER_TIMEOUT = 20.0  # a round must fill within this; under the workers' invocation timeout (30 s)
CLIENT_TIMEOUT = SERVER_TIMEOUT + 5.0  # a caller never waits longer than the server would
_HELLO_TIMEOUT = 5.0
_MAX_LINE = 128


def _read_line(sock: socket.socket) -> str:
    data = b""
    while not data.endswith(b"\n") and len(data) < _MAX_LINE:
        chunk = sock.recv(_MAX_LINE - len(data))
        if not chunk:
            break
        data += chunk
    return data.decode("ascii", "replace").strip()


class BarrierServer:
    """Releases callers `parties` at a time, `arrivals` in all. `spec` is what a caller needs (address
    and a per-barrier key, so a stray connection is never counted as a racer)."""

    def __init__(
        self,
        parties: int,
        arrivals: int | None = None,
        timeout: float = SERVER_TIMEOUT,
        then: Literal["break", "pass"] = "break",
    ) -> None:
        if parties < 1 or (arrivals is not None and arrivals < 1):
            raise ValueError("a barrier needs at least one party")
        self.parties = parties
        self.then = then
        self.arrivals = parties if arrivals is None else arrivals
        self.timeout = timeout
        self._key = secrets.token_hex(16)
        self._listener = socket.create_server((HOST, 0), backlog=256)
        self.spec = f"{HOST}:{self._listener.getsockname()[1]}/{self._key}"
        self._lock = threading.Lock()
        self._errors: list[str] = []
        self._arrived = 0
        self._released = 0
        self._rounds = 0
        self._waiting: list[socket.socket] = []
        self._deadline: float | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, name="race-barrier", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the test's side

    @property
    def released(self) -> int:
        with self._lock:
            return self._released

    def check(self) -> None:
        """Every expected caller arrived and was released, in full rounds, and nothing broke."""
        with self._lock:
            errors, released, rounds = list(self._errors), self._released, self._rounds
        assert not errors, f"the race barrier broke: {errors}"
        assert released == self.arrivals, (
            f"the race barrier released {released} of {self.arrivals} callers ({rounds} rounds)"
        )

    def close(self) -> None:
        with self._lock:
            self._stopping = True
        self._wake_w.send(b"x")
        self._thread.join(timeout=10)
        self._listener.close()
        self._wake_r.close()
        self._wake_w.close()
        for conn in self._waiting:
            conn.close()
        self._waiting.clear()

    def __enter__(self) -> BarrierServer:
        return self

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.close()

    # ------------------------------------------------------------ the server thread

    def _round_size(self) -> int:
        return min(self.parties, self.arrivals - self._released)

    def _serve(self) -> None:
        while True:
            with self._lock:
                if self._stopping:
                    return
                deadline = self._deadline
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            readable, _, _ = select.select([self._listener, self._wake_r], [], [], wait)
            if self._wake_r in readable:
                return
            if self._listener in readable:
                conn, _addr = self._listener.accept()
                self._arrive(conn, time.monotonic())
            elif deadline is not None and time.monotonic() >= deadline:
                with self._lock:
                    self._errors.append(
                        f"round {self._rounds + 1}: {len(self._waiting)} of {self._round_size()} callers "
                        f"arrived within {self.timeout:g} s"
                    )
                    self._answer_all(b"broken: the round did not fill\n")
                    self._deadline = None

    def _arrive(self, conn: socket.socket, now: float) -> None:
        conn.settimeout(_HELLO_TIMEOUT)
        try:
            hello = _read_line(conn)
        except OSError:
            hello = ""
        with self._lock:
            if hello != self._key:
                self._errors.append("a caller without this barrier's key connected")
                conn.close()
                return
            if self._errors:
                self._send(conn, b"broken: the barrier broke earlier\n")
                return
            if self._arrived >= self.arrivals and self.then == "pass":
                self._send(conn, b"go\n")
                return
            if self._arrived >= self.arrivals:
                self._errors.append(f"more than {self.arrivals} callers arrived")
                self._send(conn, b"broken: more callers than expected\n")
                return
            self._arrived += 1
            self._waiting.append(conn)
            if len(self._waiting) == 1:
                self._deadline = now + self.timeout
            if len(self._waiting) == self._round_size():
                self._released += len(self._waiting)
                self._rounds += 1
                self._answer_all(b"go\n")
                self._deadline = None

    def _answer_all(self, message: bytes) -> None:
        waiting, self._waiting = self._waiting, []
        for conn in waiting:
            self._send(conn, message)

    @staticmethod
    def _send(conn: socket.socket, message: bytes) -> None:
        try:
            conn.sendall(message)
        except OSError:
            pass
        finally:
            conn.close()


class Barrier:
    """A caller's side, in a worker process: `wait()` returns when the caller's round is complete, or
    raises `threading.BrokenBarrierError` (the barrier broke, or did not answer within `timeout`)."""

    def __init__(self, spec: str, timeout: float = CLIENT_TIMEOUT) -> None:
        address, _, self._key = spec.partition("/")
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not self._key:
            raise ValueError(f"not a barrier address: {spec!r}")
        self._address = (host, int(port))
        self.timeout = timeout

    def wait(self) -> None:
        try:
            with socket.create_connection(self._address, timeout=self.timeout) as sock:
                sock.sendall(self._key.encode("ascii") + b"\n")
                answer = _read_line(sock)
        except OSError as exc:
            raise threading.BrokenBarrierError(f"the race barrier did not answer: {exc}") from None
        if answer != "go":
            raise threading.BrokenBarrierError(f"the race barrier broke: {answer or 'no answer'}")
