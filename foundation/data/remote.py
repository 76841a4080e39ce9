"""Datasets and shards at URLs: everything webdataset's `gopen` opens (http(s)://, pipe:COMMAND, file://, and
the other schemes it knows), alongside plain local paths.

A dataset's manifest lists shard paths relative to the dataset. A shard's location is the base (the dataset's URL,
or a separate shard base such as `data.shard_url_base`) joined with that path: `BASE/PATH`, or BASE with `{path}`
replaced when BASE holds that placeholder (`pipe:aws s3 cp s3://bucket/ds/{path} -`). Relative paths from a
manifest are checked before they enter a URL or a shell command: letters, digits, `._-/` only, no `..`.
"""

from __future__ import annotations

import re
from typing import IO

from webdataset.gopen import gopen

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SAFE_RELPATH = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
# curl's exit statuses, as webdataset's http(s) reader (curl -f -s -L) reports them
_CURL = {
    6: "cannot resolve the host",
    7: "cannot connect to the server",
    18: "the response ended early (partial transfer: truncated)",
    22: "the server answered with an HTTP error (>= 400, e.g. 404: not there)",
    28: "the transfer timed out",
    56: "the connection broke while receiving",
}


class RemoteError(OSError):
    """A URL that cannot be opened or read to the end (the message names it and says why)."""


def is_url(location: str | object) -> bool:
    """Whether `location` is a URL (scheme://... or pipe:...) rather than a local path."""
    text = str(location)
    return text.startswith("pipe:") or bool(_SCHEME.match(text))


def join(base: str, relpath: str) -> str:
    """The location of `relpath` (a manifest's relative path) under `base`."""
    if not _SAFE_RELPATH.match(relpath) or ".." in relpath.split("/"):
        raise ValueError(
            f"{base}: path {relpath!r} from the manifest is not a plain relative path; refused"
        )
    if "{path}" in base:
        return base.replace("{path}", relpath)
    return base.rstrip("/") + "/" + relpath


def open_stream(location: str) -> IO[bytes]:
    """Open a URL or local path for streaming bytes through webdataset's gopen."""
    try:
        return gopen(str(location), "rb")
    except (OSError, ValueError) as exc:
        raise RemoteError(f"{location}: cannot open ({exc})") from None


def explain(location: str, exc: BaseException) -> str:
    """A one-line reason for a failed read of `location` (curl's exit status in words when it has one)."""
    match = re.search(r"exit (\d+)", str(exc))
    if match and int(match.group(1)) in _CURL:
        return f"{_CURL[int(match.group(1))]} (curl exit {match.group(1)})"
    return f"{type(exc).__name__}: {exc}"


def read_bytes(location: str) -> bytes:
    """The whole content at a URL or path; RemoteError naming it when it cannot be read to the end."""
    stream = open_stream(location)
    try:
        data = stream.read()
        stream.close()
    except OSError as exc:
        raise RemoteError(f"{location}: {explain(location, exc)}") from None
    return data
