"""Lambda-like execution environments: worker processes that each handle one invocation at a time.

Lambda runs concurrent requests in separate execution environments, never two at once in one. Our
handlers rely on that (Powertools' resolver keeps the current event on the app; Metrics keeps one
metric set), so concurrent local traffic (the local server, race tests, the benchmark) goes through a
pool of processes rather than threads of one process. Each worker keeps its imported functions warm,
as an execution environment does.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import threading
import traceback
from multiprocessing.connection import Connection
from typing import Any

_CTX = multiprocessing.get_context("spawn")


def _worker(conn: Connection, env: dict[str, str], setup: str | None, preload: list[tuple[str, str]]) -> None:
    os.environ.clear()
    os.environ.update(env)
    import importlib

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
    """The handler raised: Lambda would answer the HTTP API with a 500 (Internal Server Error)."""


class Environments:
    """A pool of execution environments. `invoke` blocks until one is free (up to `size` at once)."""

    def __init__(
        self,
        env: dict[str, str],
        size: int = 4,
        setup: str | None = None,
        preload: list[tuple[str, str]] | None = None,
    ) -> None:
        self.size = size
        self._idle: queue.Queue[tuple[Any, Connection]] = queue.Queue()
        self._all: list[tuple[Any, Connection]] = []
        self._lock = threading.Lock()
        for _ in range(size):
            parent, child = _CTX.Pipe()
            process = _CTX.Process(target=_worker, args=(child, dict(env), setup, preload or []), daemon=True)
            process.start()
            child.close()
            self._all.append((process, parent))
        for process, parent in self._all:  # started in parallel; wait until each is warm
            if not parent.poll(60) or parent.recv() != ("ready",):
                self.close()
                raise RuntimeError("an execution environment failed to start")
            self._idle.put((process, parent))

    def invoke(self, code_uri: str, handler: str, event: dict[str, Any], function_name: str = "local") -> Any:
        worker = self._idle.get()
        try:
            worker[1].send((code_uri, handler, function_name, event))
            reply = worker[1].recv()
        finally:
            self._idle.put(worker)
        if reply[0] == "ok":
            return reply[1]
        raise InvocationError(f"{reply[1]}\n{reply[2]}")

    def close(self) -> None:
        with self._lock:
            for _process, conn in self._all:
                with contextlib.suppress(OSError):
                    conn.send(None)
            for process, conn in self._all:
                process.join(timeout=5)
                if process.is_alive():
                    process.kill()
                    process.join()
                conn.close()
            self._all.clear()

    def __enter__(self) -> Environments:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
