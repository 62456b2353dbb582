"""Lambda-like execution environments: worker processes that each handle one invocation at a time.

Lambda runs concurrent requests in separate execution environments, never two at once in one. Our
handlers rely on that (Powertools' resolver keeps the current event on the router; the Logger keeps the
invocation's keys), so concurrent local traffic (the local server, race tests, the benchmark) goes through a
pool of processes rather than threads of one process. Each worker keeps its imported functions warm,
as an execution environment does. A worker that dies or overruns its timeout is replaced, as Lambda
replaces a failed environment.

For tests, an environment can read its time from a clock file (`clock_file`, see `FileClock`): the
wall clock plus an offset that the test writes, so that a test moves the functions' time (expiries,
grace periods, polling intervals) instead of waiting for it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
import traceback
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

_CTX = multiprocessing.get_context("spawn")
Worker = tuple[BaseProcess, Connection]


class FileClock:
    """The wall clock plus an offset, in seconds, read from a file: a test-only clock source for the
    functions (``authcore.clock.use(FileClock(path))``), so that a test moves a running stack's time by
    writing the file (`write_clock_offset`) instead of sleeping.

    A missing file is an offset of 0. The file is re-read only when its stat changes (a write through
    `write_clock_offset` replaces it, so its inode and times change), so a reading costs one stat. A
    file that does not hold a number raises: a test that asked for a moved clock must not silently get
    the wall clock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._seen: tuple[int, int, int, int] | None = None
        self._offset = 0.0

    def offset(self) -> float:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._offset = None, 0.0
            return 0.0
        seen = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if seen != self._seen:
            text = self.path.read_text(encoding="ascii").strip()
            try:
                offset = float(text)
            except ValueError:
                raise ValueError(f"the clock file {self.path} does not hold a number of seconds") from None
            self._seen, self._offset = seen, offset
        return self._offset

    def __call__(self) -> float:
        return time.time() + self.offset()


def write_clock_offset(path: str | Path, seconds: float) -> None:
    """Set the offset a `FileClock` on ``path`` adds to the wall clock; atomic (a new file replaces the
    old one), so a reader sees the old offset or the new one, never a partial write."""
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_text(f"{seconds!r}\n", encoding="ascii")
    os.replace(partial, target)


def read_clock_offset(path: str | Path) -> float:
    return FileClock(path).offset()


def _use_clock_file(path: str) -> None:
    from authcore import clock

    clock.use(FileClock(path))


def _worker(
    conn: Connection,
    env: dict[str, str],
    setup: str | None,
    preload: list[tuple[str, str]],
    clock_file: str | None = None,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when environments stop
    os.environ.clear()
    os.environ.update(env)
    import importlib

    if clock_file:  # tests only: the functions' time is the wall clock plus the file's offset
        _use_clock_file(clock_file)
    if setup:  # "module:function", run once in the environment before any invocation (tests only)
        module, _, func = setup.partition(":")
        getattr(importlib.import_module(module), func)()
    from local.lambda_host import LambdaContext, load_function

    for code_uri, handler_name in preload:  # like provisioned concurrency: no cold start on first use
        load_function(code_uri, handler_name)
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        code_uri, handler_name, function_name, event = message
        try:
            handler = load_function(code_uri, handler_name)
            conn.send(("ok", handler(event, LambdaContext(function_name=function_name))))
        except Exception as exc:
            conn.send(("error", f"{type(exc).__name__}", traceback.format_exc(limit=5)))


class InvocationError(RuntimeError):
    """The handler raised or its environment died: the HTTP API would answer 500."""


class InvocationTimeout(InvocationError):
    """The handler overran the function's timeout: the HTTP API would answer 503."""


class Environments:
    """A pool of execution environments. `invoke` blocks until one is free (up to `size` at once)."""

    def __init__(
        self,
        env: dict[str, str],
        size: int = 4,
        setup: str | None = None,
        preload: list[tuple[str, str]] | None = None,
        timeout: float = 30,
        clock_file: str | Path | None = None,
    ) -> None:
        """`clock_file` (tests only): each environment reads its time through a `FileClock` on it."""
        self.size = size
        self.timeout = timeout
        self._args = (dict(env), setup, list(preload or []), str(clock_file) if clock_file else None)
        self._idle: queue.Queue[Worker] = queue.Queue()
        self._all: list[Worker] = []
        self._lock = threading.Lock()
        started = [self._spawn() for _ in range(size)]  # in parallel; then wait until each is warm
        try:
            for worker in started:
                self._await_ready(worker)
                self._idle.put(worker)
        except Exception:
            self.close()
            raise

    def _spawn(self) -> Worker:
        parent, child = _CTX.Pipe()
        process = _CTX.Process(target=_worker, args=(child, *self._args), daemon=True)
        process.start()
        child.close()
        with self._lock:
            self._all.append((process, parent))
        return process, parent

    @staticmethod
    def _await_ready(worker: Worker) -> None:
        try:
            ready = worker[1].poll(120) and worker[1].recv() == ("ready",)
        except (EOFError, OSError):
            ready = False
        if not ready:
            raise RuntimeError("an execution environment failed to start")

    def _retire(self, worker: Worker) -> None:
        process, conn = worker
        if process.is_alive():
            process.kill()
        process.join(timeout=5)
        conn.close()
        with self._lock:
            if worker in self._all:
                self._all.remove(worker)

    def _replace(self, worker: Worker) -> None:
        self._retire(worker)
        fresh = self._spawn()
        try:
            self._await_ready(fresh)
        except RuntimeError:
            self._retire(fresh)
            raise
        self._idle.put(fresh)

    def invoke(self, code_uri: str, handler: str, event: dict[str, Any], function_name: str = "local") -> Any:
        worker = self._idle.get()
        try:
            worker[1].send((code_uri, handler, function_name, event))
            if not worker[1].poll(self.timeout):
                self._replace(worker)
                raise InvocationTimeout(f"{function_name} timed out after {self.timeout:g} s")
            reply = worker[1].recv()
        except (EOFError, OSError) as exc:
            self._replace(worker)
            raise InvocationError(f"{function_name}: the execution environment died") from exc
        self._idle.put(worker)
        if reply[0] == "ok":
            return reply[1]
        raise InvocationError(f"{reply[1]}\n{reply[2]}")

    def close(self) -> None:
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for _process, conn in workers:
            with contextlib.suppress(OSError):
                conn.send(None)
        for process, conn in workers:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
            conn.close()

    def __enter__(self) -> Environments:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
