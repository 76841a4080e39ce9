"""HTTP(S) and file:// reads in Python with bounded waits: no byte for `stall_timeout` seconds is an error naming
the URL; transient failures (connection refused or reset, a stall, HTTP 429/5xx) retry with exponential backoff up
to `retries` times, each retry logged; a transfer broken mid-body resumes at the byte it reached (a Range
request; a server without Range support sends the body again and the bytes already read are skipped). `VerifiedStream` hashes what streams and compares size and sha256 with the manifest's."""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass

log = logging.getLogger(__name__)
_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}
_CHUNK = 1 << 16


class RemoteError(OSError):
    """A URL that cannot be opened or read to the end (the message names it and says why)."""


@dataclass(frozen=True)
class TransferPolicy:
    """How long a transfer may wait and how often it is retried (training: data.transfer_*)."""

    stall_timeout: float = (
        60.0  # seconds without a byte (connecting, waiting for headers, or mid-body)
    )
    retries: int = 3  # further attempts after a transient failure
    backoff: float = 1.0  # seconds before the first retry, doubled for each further one

    def __post_init__(self) -> None:
        if not self.stall_timeout > 0 or self.retries < 0 or self.backoff < 0:
            raise ValueError(
                f"transfer policy: stall_timeout must be > 0, retries and backoff >= 0, got {self}"
            )


class HttpStream(io.RawIOBase):
    """The body of an http(s):// URL as a readable stream; `size` is its Content-Length (None if not sent)."""

    def __init__(self, url: str, policy: TransferPolicy):
        self.name, self.policy = url, policy
        self.offset, self.attempt = 0, 0
        self._response = self._open()
        self.size = _content_length(self._response)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            try:
                count = self._response.readinto(buffer)
            except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                self._retry_after(_reason(exc, self.policy))
                self._response = self._open(resume=True)
                continue
            if count == 0 and self.size is not None and self.offset < self.size:
                self._retry_after(
                    f"the response ended at byte {self.offset} of {self.size} (truncated)"
                )
                self._response = self._open(resume=True)
                continue
            self.offset += count
            return count

    def close(self) -> None:
        response = getattr(self, "_response", None)
        if response is not None:
            response.close()
        super().close()

    def _retry_after(self, reason: str) -> None:
        """Count an attempt; wait out the backoff, or raise RemoteError when no retry is left."""
        if self.attempt >= self.policy.retries:
            tries = f" after {self.attempt + 1} attempts" if self.attempt else ""
            raise RemoteError(f"{self.name}: {reason}{tries}")
        delay = self.policy.backoff * 2**self.attempt
        self.attempt += 1
        log.warning(
            "%s: %s; retry %d of %d in %.3g s",
            self.name,
            reason,
            self.attempt,
            self.policy.retries,
            delay,
        )
        time.sleep(delay)

    def _open(self, resume: bool = False):
        """The response for the whole body, or (resume) for the bytes from `offset` on."""
        while True:
            headers = {"Range": f"bytes={self.offset}-"} if resume and self.offset else {}
            request = urllib.request.Request(self.name, headers=headers)
            try:
                response = urllib.request.urlopen(request, timeout=self.policy.stall_timeout)
            except urllib.error.HTTPError as exc:
                reason = f"the server answered HTTP {exc.code} ({exc.reason})"
                exc.close()
                if exc.code not in _TRANSIENT_HTTP:
                    raise RemoteError(f"{self.name}: {reason}") from None
                self._retry_after(reason)
                continue
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                self._retry_after(_reason(exc, self.policy))
                continue
            if headers and response.status != 206:  # no Range support: skip what was read
                if not _skip(response, self.offset):
                    response.close()
                    self._retry_after(f"the response ended before byte {self.offset} on a retry")
                    continue
            return response


def _skip(response, count: int) -> bool:
    """Read and drop `count` bytes of `response`; False when it ends first."""
    while count:
        data = response.read(min(count, _CHUNK))
        if not data:
            return False
        count -= len(data)
    return True


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value is not None and value.isdigit() else None


def _reason(exc: BaseException, policy: TransferPolicy) -> str:
    if isinstance(exc, urllib.error.URLError) and not isinstance(exc.reason, str):
        exc = exc.reason
    if isinstance(exc, TimeoutError):
        return f"no byte for {policy.stall_timeout:g} s (stalled transfer)"
    if isinstance(exc, ConnectionRefusedError):
        return "cannot connect to the server (connection refused)"
    return f"the connection failed ({type(exc).__name__}: {exc})"


class VerifiedStream(io.RawIOBase):
    """`stream` checked against a manifest entry: the size before any byte when the stream knows it, a stream
    longer than listed as soon as it is, and length and sha256 at its end. `where` names URL and shard."""

    def __init__(self, stream, where: str, size: int | None, sha256: str | None):
        self.stream, self.where = stream, where
        self.size, self.sha256 = size, sha256
        self.count, self.digest = 0, hashlib.sha256()
        announced = getattr(stream, "size", None)
        if size is not None and announced is not None and announced != size:
            raise RemoteError(
                f"{where}: the server announces {announced} bytes, the manifest lists {size}: not the "
                "listed shard; refused before any record"
            )

    @property
    def name(self) -> str:
        return getattr(self.stream, "name", "")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.stream.read(len(buffer))  # any stream: a file, an HttpStream, a command's pipe
        count = len(data)
        if count:
            buffer[:count] = data
            self.digest.update(data)
            self.count += count
            if self.size is not None and self.count > self.size:
                raise RemoteError(
                    f"{self.where}: more than the {self.size} bytes the manifest lists: not the "
                    "listed shard"
                )
        return count

    def finish(self) -> None:
        """Read what the consumer left (tar padding) and compare length and sha256 with the manifest."""
        while self.read(_CHUNK):
            pass
        if self.size is not None and self.count != self.size:
            raise RemoteError(
                f"{self.where}: {self.count} bytes streamed, the manifest lists {self.size}"
            )
        if self.sha256 is not None and self.digest.hexdigest() != self.sha256:
            raise RemoteError(
                f"{self.where}: sha256 {self.digest.hexdigest()} of the bytes streamed is not the "
                f"manifest's {self.sha256}: another file under this name (swapped or replaced); refused"
            )

    def close(self) -> None:
        self.stream.close()
        super().close()
