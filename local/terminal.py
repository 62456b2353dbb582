"""What `make serve`'s terminal shows: one short line per request and per audit event (and the functions'
warnings and errors), never a wall of JSON. Everything, raw, goes to a log file the summary names.

The functions run in other processes (worker processes, or Lambda runtimes) that write their logs to the
stdout they inherit: `capture()` points this process's file descriptor 1 at a pipe before they start, and
a thread reads it. The access lines come from the gateway through `access` (a file-like object).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

# audit fields worth a glance, in this order (identifiers only: never a token, code or secret)
AUDIT_FIELDS = ("by", "reason", "limit", "client_id", "user_id", "org_id", "grant_id", "generation")
QUIET_LAMBDA_LINES = ("START RequestId:", "END RequestId:", "REPORT RequestId:", "INIT_START")


def short_access(record: dict[str, Any]) -> str:
    """`POST /oauth/token 200 12 ms TokenFunction` from the gateway's JSON access line."""
    route = record.get("routeKey") or f"{record.get('httpMethod', '-')} {record.get('path', '-')}"
    if route == "$default":
        route = f"{record.get('httpMethod', '-')} {record.get('path', '-')}"
    parts = [str(route), str(record.get("status", "-")), f"{record.get('responseLatency', '-')} ms"]
    if record.get("function") not in (None, "-"):
        parts.append(str(record["function"]))
    if record.get("integrationErrorMessage") not in (None, "-", ""):
        parts.append(f"({record['integrationErrorMessage']})")
    return " ".join(parts)


def short_log(record: dict[str, Any]) -> str | None:
    """An audit event or a warning/error of a function, in one line; None: the log file only."""
    if record.get("message") == "audit":
        fields = " ".join(f"{k}={record[k]}" for k in AUDIT_FIELDS if record.get(k) not in (None, ""))
        return f"  audit {record.get('audit_event', '?')} {fields}".rstrip()
    level = str(record.get("level", "")).upper()
    if level in ("WARNING", "ERROR", "CRITICAL"):
        where = record.get("function_name") or record.get("service") or ""
        extra = record.get("problem") or record.get("error_type") or ""
        return f"  {level.lower()} {where}: {record.get('message', '')} {extra}".rstrip()
    return None


class Terminal:
    """The terminal (``out``, ``err``) and the raw log (``log_path``)."""

    def __init__(self, log_path: Path, out: IO[str], err: IO[str]) -> None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log = log_path.open("a", encoding="utf-8")
        self._lock = threading.Lock()
        self.out = out
        self.err = err
        self.access: IO[str] = cast(IO[str], _Lines(self._access_line))

    def _raw(self, line: str) -> None:
        with self._lock:
            self._log.write(line + "\n")
            self._log.flush()

    def _access_line(self, line: str) -> None:
        self._raw(line)
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        print(short_access(record) if isinstance(record, dict) else line, file=self.err, flush=True)

    def function_line(self, line: str) -> None:
        """A line a function (or this process) wrote to stdout."""
        self._raw(line)
        stripped = line.strip()
        if not stripped or stripped.startswith(QUIET_LAMBDA_LINES):
            return
        try:
            record = json.loads(stripped)
        except ValueError:
            record = None
        if isinstance(record, dict):
            if "_aws" in record and "audit_event" not in record:  # a metric line only: the log only
                return
            shown = short_log(record)
            if shown is not None:
                print(shown, file=self.out, flush=True)
            return
        print(line, file=self.out, flush=True)  # not JSON: our own output (the summary), a traceback

    @contextlib.contextmanager
    def capture(self) -> Iterator[None]:
        """File descriptor 1 into a pipe for the time of the block (child processes inherit it)."""
        import sys

        sys.stdout.flush()
        saved = os.dup(1)
        read_end, write_end = os.pipe()
        os.dup2(write_end, 1)
        os.close(write_end)
        self.out = os.fdopen(os.dup(saved), "w", buffering=1, encoding="utf-8", errors="replace")
        reader = threading.Thread(target=self._read, args=(read_end,), name="serve-terminal", daemon=True)
        reader.start()
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)  # the pipe's last writer here is gone; children that outlive us keep theirs
            os.close(saved)
            reader.join(timeout=2)

    def _read(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as pipe:
            for line in pipe:
                self.function_line(line.rstrip("\n"))

    def close(self) -> None:
        with self._lock:
            self._log.close()


class _Lines(io.TextIOBase):
    """A file-like object that hands each complete line to ``sink``."""

    def __init__(self, sink: Any) -> None:
        super().__init__()
        self._sink = sink
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line:
                self._sink(line)
        return len(text)
