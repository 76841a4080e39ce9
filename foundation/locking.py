"""One writer per directory: an exclusive lock file that names its owner (host, pid, command, start time).

The arbiter is the kernel's `flock` on the lock file: it is released when its holder ends in any way (kill -9,
a crashed node once its NFS lease expires), so a second writer is refused while the first lives and a dead
owner's lock is taken over, with a warning naming it. The owner record is for people (the error says who holds
the directory) and the fallback where a file system refuses `flock`: a record naming a live process on this
host, or any process on another host, is then honoured until it is deleted by hand.

    with DirectoryLock(run_dir):   # raises DirectoryLocked naming the directory and its owner
        ...                        # the lock file is removed on exit
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from foundation.errors import UserError

LOCK_NAME = ".lock"
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)
log = logging.getLogger(__name__)


class DirectoryLocked(UserError):
    """Another process writes this directory."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _describe(owner: dict[str, Any] | None) -> str:
    if not owner:
        return "another process (its lock file names no owner yet)"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return f"pid {owner.get('pid')} on host {owner.get('host')} since {started} ({owner.get('command', '?')})"


def _read_owner(fd: int) -> dict[str, Any] | None:
    try:
        text = os.pread(fd, 4096, 0).decode()
        owner = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


class DirectoryLock:
    """An exclusive lock on `directory` (created if missing), held from `acquire()` (or `with`) to `release()`.
    `name`: the lock file (several locks may share a directory, e.g. one per chunk of work)."""

    def __init__(
        self, directory: str | os.PathLike, name: str = LOCK_NAME, label: str | None = None
    ):
        self.directory = Path(directory)
        self.path = self.directory / name
        self.label = label or str(self.directory)  # what the messages call the locked thing
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> DirectoryLock:
        """Take the lock or raise DirectoryLocked naming the directory and the owner."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path}: already held by this DirectoryLock")
        self.directory.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                kernel_lock = self._flock(fd)
                if kernel_lock and not self._still_named(fd):
                    os.close(
                        fd
                    )  # the previous owner removed the file between our open and our flock: retry
                    continue
                self._take(fd, _read_owner(fd), kernel_lock)
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            return self

    def _flock(self, fd: int) -> bool:
        """True with the kernel's lock taken; False where the file system has no flock; raises when it is held."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            raise DirectoryLocked(
                f"{self.label} is in use by {_describe(_read_owner(fd))}; wait for it to end "
                f"or stop it (lock file {self.path})"
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_FLOCK:
                raise
            log.warning(
                "%s: the file system does not support flock (%s); relying on the owner record",
                self.path,
                exc.strerror,
            )
            return False

    def _still_named(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def _take(self, fd: int, previous: dict[str, Any] | None, kernel_lock: bool) -> None:
        me = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": time.time(),
            "command": " ".join(sys.argv)[:300],
        }
        if previous and (previous.get("host"), previous.get("pid")) != (me["host"], me["pid"]):
            same_host = previous.get("host") == me["host"]
            pid = previous.get("pid")
            live = same_host and isinstance(pid, int) and _alive(pid)
            if not kernel_lock and (live or not same_host):
                raise DirectoryLocked(
                    f"{self.label} is in use by {_describe(previous)} (no flock on this file "
                    f"system to tell whether it still runs; delete {self.path} if it does not)"
                )
            state = "no longer running" if same_host and not live else "its lock was released"
            log.warning(
                "%s: taking over the stale lock of %s: %s", self.label, _describe(previous), state
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
        os.fsync(fd)

    def release(self) -> None:
        """Remove the lock file and let the lock go (a no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if self._still_named(fd):
                self.path.unlink()
        finally:
            os.close(fd)

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
