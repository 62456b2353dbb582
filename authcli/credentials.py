"""The credentials file: one login, readable by its owner only, never half-written.

It lives in ``$XDG_CONFIG_HOME/token-service/credentials.json`` (``~/.config/token-service/`` when the
variable is unset). The directory is created 0700 and the file 0600, from the moment it exists: it is
created with those modes, not chmod-ed afterwards. Every write goes to a new private temporary file in
the same directory that then replaces the old one (``os.replace`` is atomic), so a reader sees the old
tokens or the new ones, never a mixture, and a crash mid-write loses nothing. Refreshes hold an
advisory lock so that two processes do not rotate the same refresh token.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from authcli.api import Failure

APP_NAME = "token-service"
FILE_NAME = "credentials.json"
LOCK_NAME = "credentials.lock"


class NotLoggedIn(Failure):
    exit_code = 4


@dataclass(frozen=True)
class User:
    id: str
    email: str
    name: str


@dataclass(frozen=True)
class Organization:
    id: str
    name: str
    role: str


@dataclass(frozen=True)
class Credentials:
    server: str
    client_id: str
    access_token: str
    expires_at: int  # Unix time, seconds
    refresh_token: str
    scope: str
    user: User
    organization: Organization

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Credentials:
        """Raises KeyError, TypeError or ValueError when a field is missing or of the wrong type."""

        def text(obj: Mapping[str, Any], key: str) -> str:
            value = obj[key]
            if not isinstance(value, str):
                raise TypeError(key)
            return value

        user, org = data["user"], data["organization"]
        if not isinstance(user, Mapping) or not isinstance(org, Mapping):
            raise TypeError("user/organization")
        expires_at = data["expires_at"]
        if isinstance(expires_at, bool) or not isinstance(expires_at, (int, float)):
            raise TypeError("expires_at")
        return cls(
            server=text(data, "server"),
            client_id=text(data, "client_id"),
            access_token=text(data, "access_token"),
            expires_at=int(expires_at),
            refresh_token=text(data, "refresh_token"),
            scope=text(data, "scope"),
            user=User(id=text(user, "id"), email=text(user, "email"), name=text(user, "name")),
            organization=Organization(id=text(org, "id"), name=text(org, "name"), role=text(org, "role")),
        )


def config_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_CONFIG_HOME", "")
    if not base or not os.path.isabs(base):  # the XDG spec: a relative value is invalid, ignore it
        base = os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / APP_NAME


def path(directory: Path | None = None) -> Path:
    return (directory or config_dir()) / FILE_NAME


def load(directory: Path | None = None) -> Credentials | None:
    """The stored login, or None when there is none."""
    file = path(directory)
    try:
        raw = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as err:
        raise Failure(f"Cannot read {file}: {err.strerror or err}.") from None
    try:
        return Credentials.from_mapping(json.loads(raw))
    except (ValueError, KeyError, TypeError):
        raise Failure(
            f"The credentials file {file} is damaged; delete it and run `python -m authcli login`."
        ) from None


def save(creds: Credentials, directory: Path | None = None) -> Path:
    """Write atomically: a fresh 0600 temporary file beside the target, fsync, then os.replace."""
    folder = ensure_dir(directory or config_dir())
    target = folder / FILE_NAME
    temp = folder / f".{FILE_NAME}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # O_EXCL: never write through a file (or symlink) that someone else put there.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            if hasattr(os, "fchmod"):
                os.fchmod(out.fileno(), 0o600)  # exactly 0600, whatever the umask
            out.write(creds.to_json().encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_dir(folder)
    return target


def delete(directory: Path | None = None) -> bool:
    try:
        os.unlink(path(directory))
    except FileNotFoundError:
        return False
    return True


def ensure_dir(folder: Path) -> Path:
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            return folder  # someone else made it just now; leave it as they made it
        os.chmod(folder, 0o700)  # the umask may have taken bits away
    return folder


@contextlib.contextmanager
def locked(directory: Path | None = None) -> Iterator[None]:
    """An exclusive advisory lock for read-refresh-write (POSIX; elsewhere a no-op)."""
    folder = ensure_dir(directory or config_dir())
    if sys.platform == "win32":
        yield
        return
    import fcntl

    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _fsync_dir(folder: Path) -> None:
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
