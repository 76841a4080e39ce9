"""Errors a user can fix, and the translation of a full disk into one of them.

The command line prints a `UserError` as one line (no traceback unless `--debug`) and exits non-zero. Library
and job code raise it (or a subclass) for bad configs, unreadable inputs, a directory in use, a full disk.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
_NO_SPACE_TEXT = ("No space left on device", "os error 28", "Disk quota exceeded", "os error 122")
_NEARLY_FULL_BYTES = 1 << 20  # below this much free space a failed write is taken for a full disk
# What torch.save's C++ writer says when a write fails (no errno): full disk or not, the free space decides.
_TORCH_WRITE_FAILURE = (
    "iostream error",
    "unexpected pos",
    "file write failed",
    "PytorchStreamWriter",
)


class UserError(Exception):
    """A problem the user can fix: the command line prints the message as one line and exits non-zero."""


class DiskFull(UserError):
    """No space left on the device that holds `path`."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = None if path is None else str(path)
        where = f"writing {self.path}" if self.path else "while writing (file unknown)"
        super().__init__(
            f"no space left on {device_of(self.path) if self.path else 'the device'} {where}"
        )


def device_of(path: str | os.PathLike) -> str:
    """The device holding `path`, as 'SOURCE (mounted on MOUNTPOINT)' from /proc/self/mounts, else 'device M:N'."""
    target = _existing_ancestor(Path(path))
    try:
        best = ("", "")
        with open("/proc/self/mounts") as fh:
            for line in fh:
                source, mountpoint = line.split()[:2]
                mountpoint = mountpoint.replace("\\040", " ")
                inside = str(target) == mountpoint or str(target).startswith(
                    mountpoint.rstrip("/") + "/"
                )
                if inside and len(mountpoint) >= len(best[1]):
                    best = (source, mountpoint)
        if best[1]:
            return f"{best[0]} (mounted on {best[1]})"
    except OSError:
        pass
    st = os.stat(target)
    return f"device {os.major(st.st_dev)}:{os.minor(st.st_dev)}"


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path.resolve()


def free_bytes(path: str | os.PathLike) -> int:
    """Bytes available to this user on the device holding `path` (or its nearest existing parent)."""
    st = os.statvfs(_existing_ancestor(Path(path)))
    return st.f_bavail * st.f_frsize


def is_disk_full(exc: BaseException, path: str | os.PathLike) -> bool:
    """Whether `exc`, raised while writing `path`, means the device is full: an OSError ENOSPC/EDQUOT, a message
    saying so (safetensors, LMDB), or a RuntimeError from torch.save (its C++ writer reports a full disk as
    'basic_ios::clear: iostream error' or 'unexpected pos') on a device with almost no space left."""
    if isinstance(exc, OSError) and exc.errno in _NO_SPACE:
        return True
    if any(text in str(exc) for text in _NO_SPACE_TEXT):
        return True
    if isinstance(exc, RuntimeError) and any(text in str(exc) for text in _TORCH_WRITE_FAILURE):
        try:
            return free_bytes(path) < _NEARLY_FULL_BYTES
        except OSError:
            return False
    return False


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Run a block that writes `path` (a file or a directory of files); a full disk becomes DiskFull naming the
    device and `path`, every other error passes unchanged."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as exc:
        if is_disk_full(exc, path):
            raise DiskFull(path) from exc
        raise
