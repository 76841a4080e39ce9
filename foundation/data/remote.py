"""Dataset locations: local paths, URLs, and the one gate every opened location goes through.

A dataset's manifest lists shard paths relative to the dataset. A shard's location is the base (the dataset's URL,
or a separate shard base such as `data.shard_url_base`) joined with that path: `BASE/PATH`, or BASE with `{path}`
replaced when BASE holds that placeholder (`pipe:aws s3 cp s3://bucket/ds/{path} -`). Relative paths from a
manifest are checked before they enter a URL or a shell command: letters, digits, `._-/` only, no `..`.

http(s):// and file:// are read in Python (data/transfer.py: bounded waits, retries). Any other scheme runs a
program (webdataset's `pipe:COMMAND`, and its s3/gs/scp/... helpers): `check_location` honours one only when the
person at the command line gave that location on their own command and asked for it with `--allow-pipe` (or
FOUNDATION_ALLOW_PIPE=1); never when it was read from a file (a release, a run directory, a config, a manifest).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from foundation.data.transfer import HttpStream, RemoteError, TransferPolicy
from foundation.errors import UserError

__all__ = [
    "ALLOW_ENV",
    "RemoteError",
    "TransferPolicy",
    "UnsafeLocation",
    "check_location",
    "grant_command_line",
    "is_url",
    "join",
    "open_stream",
    "read_bytes",
    "runs_program",
]

ALLOW_ENV = (
    "FOUNDATION_ALLOW_PIPE"  # "1": the user's own command may name locations that run programs
)
GRANTED_ENV = (
    "FOUNDATION_GRANTED_LOCATIONS"  # those locations (a JSON list), inherited by ranks and workers
)
SAFE_SCHEMES = ("file", "http", "https")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SAFE_RELPATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


class UnsafeLocation(UserError, ValueError):
    """A location that would run a program without the user's own say-so, or a path leaving its directory."""


def scheme_of(location: str | os.PathLike) -> str | None:
    """`pipe`, `http`, ... for a URL; None for a local path."""
    text = str(location)
    if text.startswith("pipe:"):
        return "pipe"
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def is_url(location: str | os.PathLike) -> bool:
    """Whether `location` is a URL (scheme://... or pipe:...) rather than a local path."""
    return scheme_of(location) is not None


def runs_program(location: str | os.PathLike) -> bool:
    """Whether opening `location` would run a program (any scheme but file, http, https)."""
    scheme = scheme_of(location)
    return scheme is not None and scheme not in SAFE_SCHEMES


@contextmanager
def grant_command_line(argv: Sequence[str], allow: bool) -> Iterator[None]:
    """For the duration of the block, honour the locations that run programs among the user's own arguments (a
    value, or the value of a key=value override) in this process and those it starts, when `allow`
    (--allow-pipe) or FOUNDATION_ALLOW_PIPE=1 says so. Without either, nothing is granted."""
    previous = os.environ.get(GRANTED_ENV)
    if allow or os.environ.get(ALLOW_ENV) == "1":
        values = [t.split("=", 1)[1] if "=" in t.split(":", 1)[0] else t for t in argv]
        granted = _granted() + [v for v in values if runs_program(v)]
        os.environ[GRANTED_ENV] = json.dumps(sorted(set(granted)))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(GRANTED_ENV, None)
        else:
            os.environ[GRANTED_ENV] = previous


def _granted() -> list[str]:
    try:
        value = json.loads(os.environ.get(GRANTED_ENV, "[]"))
    except ValueError:
        return []
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _is_granted(location: str, also: Sequence[str] = ()) -> bool:
    """`location` is a granted one (or one of `also`), or such a base joined with a manifest's plain relative
    path."""
    for base in [*_granted(), *also]:
        if location == base:
            return True
        head, _, tail = (
            base.partition("{path}") if "{path}" in base else (base.rstrip("/") + "/", "", "")
        )
        middle = location[len(head) : len(location) - len(tail)] if tail else location[len(head) :]
        if (
            location.startswith(head)
            and location.endswith(tail)
            and _SAFE_RELPATH.match(middle)
            and ".." not in middle.split("/")
        ):
            return True
    return False


def check_location(
    location: str | os.PathLike,
    *,
    origin: str | None = None,
    root: str | os.PathLike | None = None,
    granted: Sequence[str] = (),
) -> str:
    """The one gate for dataset locations: return `location` when it may be opened, else UnsafeLocation.

    `origin` ("FILE: KEY") says the location was read from a file: then a location that runs a program is refused
    whatever the command line allowed. Without it (the user's own command), such a location passes only when
    granted (grant_command_line), or derived from one of `granted` (bases that passed this gate in the process
    that opened the dataset: its loader workers may have started before the grant). With `root` (a release or
    run directory), a relative local path is resolved inside it and refused when it leaves it; absolute paths
    and file://, http(s):// URLs pass."""
    text = str(location)
    where = f"{origin}: {text!r}" if origin else text
    if runs_program(text):
        if origin is not None:
            raise UnsafeLocation(
                f"{where} would run a program ({scheme_of(text)}:); a location read from a file never "
                "does (name it on your own command line, with --allow-pipe)"
            )
        if not _is_granted(text, granted):
            raise UnsafeLocation(
                f"{text}: this location runs a program ({scheme_of(text)}:); it is honoured only on your own "
                f"command line with --allow-pipe (or {ALLOW_ENV}=1); use http(s):// or a local path"
            )
        return text
    if root is not None and not is_url(text) and not os.path.isabs(text):
        resolved = (Path(root) / text).resolve()
        if not resolved.is_relative_to(Path(root).resolve()):
            raise UnsafeLocation(f"{where} leaves {root}; refused")
        return str(resolved)
    return text


def join(base: str, relpath: str) -> str:
    """The location of `relpath` (a manifest's relative path) under `base`."""
    if not _SAFE_RELPATH.match(relpath) or ".." in relpath.split("/"):
        raise UnsafeLocation(
            f"{base}: path {relpath!r} from the manifest is not a plain relative path; refused"
        )
    if "{path}" in base:
        return base.replace("{path}", relpath)
    return base.rstrip("/") + "/" + relpath


def open_stream(
    location: str | os.PathLike,
    policy: TransferPolicy | None = None,
    granted: Sequence[str] = (),
) -> IO[bytes]:
    """Open a local path or URL (through check_location) for streaming bytes: http(s):// with `policy`'s bounded
    waits, file:// and paths directly, a granted program through webdataset's gopen (`granted`: as for
    check_location)."""
    text = check_location(location, granted=granted)
    scheme = scheme_of(text)
    try:
        if scheme in ("http", "https"):
            return HttpStream(text, policy or TransferPolicy())
        if scheme is None or scheme == "file":
            return open(text[len("file://") :] if scheme else text, "rb")
        from webdataset.gopen import gopen

        return gopen(text, "rb")
    except RemoteError:
        raise
    except (OSError, ValueError) as exc:
        raise RemoteError(f"{text}: cannot open ({exc})") from None


def explain(location: str, exc: BaseException) -> str:
    """A one-line reason for a failed read of `location` (a command's exit status when it has one)."""
    if isinstance(exc, RemoteError):
        return str(exc).removeprefix(f"{location}: ")
    match = re.search(r"exit (\d+)", str(exc))
    if match:
        return f"the command failed (exit {match.group(1)})"
    return f"{type(exc).__name__}: {exc}"


def read_bytes(location: str, policy: TransferPolicy | None = None) -> bytes:
    """The whole content at a URL or path; RemoteError naming it when it cannot be read to the end."""
    stream = open_stream(location, policy)
    try:
        data = stream.read()
        stream.close()
    except OSError as exc:
        raise RemoteError(f"{location}: {explain(location, exc)}") from None
    return data
