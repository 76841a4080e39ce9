"""The entries of a JSON stream (objects at one nesting depth) cut out as bytes, each parsed on its own, so one
malformed entry (a NaN literal where a parser refuses it, a bad value, a wrong type) loses that entry alone and
the reader reads on; an entry larger than a byte cap is reported and skipped without being held.

The stream is scanned in blocks with numpy: quotes outside escapes toggle string state, braces and brackets
outside strings change the depth. Memory holds one block and one entry (at most `max_bytes`). An entry whose
braces, brackets or quotes do not balance shifts every later boundary: such a file ends in a `truncated` entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

BLOCK = 1 << 20
PREFIX_BYTES = 4096  # text kept between entries (the key before an entry)
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPENERS, _CLOSERS = (ord("{"), ord("[")), (ord("}"), ord("]"))
_KEY = re.compile(rb'"((?:[^"\\]|\\.)*)"\s*:\s*$', re.DOTALL)


@dataclass
class Entry:
    """One object at the scanned depth: its key (the member name before it; None inside a list), the key of
    the container it sits in, and its bytes (None when it exceeded the cap or the stream ended inside it)."""

    index: int
    key: str | None
    parent_key: str | None
    body: bytes | None
    size: int
    problem: str | None = None  # too_large | truncated | parse_error (unexpected text before it)
    message: str = ""


def unescaped_quotes(arr: np.ndarray, quotes: np.ndarray, escaped: bool) -> tuple[np.ndarray, bool]:
    """Drop quotes preceded by an odd run of backslashes; carry a trailing odd run to the next block."""
    quotes = quotes.copy()
    backslash = arr == _BACKSLASH
    for pos in np.flatnonzero(quotes):
        run, k = 0, pos - 1
        while k >= 0 and backslash[k]:
            run, k = run + 1, k - 1
        if k < 0 and escaped:
            run += 1
        quotes[pos] = run % 2 == 0
    tail = len(arr) - 1
    run = 0
    while tail >= 0 and backslash[tail]:
        run, tail = run + 1, tail - 1
    return quotes, (run % 2 == 1) if tail >= 0 else (escaped ^ (run % 2 == 1))


def outside_strings(arr: np.ndarray, in_string: int, escaped: bool) -> tuple[np.ndarray, int, bool]:
    """Which bytes of a block lie outside JSON strings, given the state the previous block ended in (inside a
    string, after an odd run of backslashes); returns the mask and the state this block ends in."""
    quotes = arr == _QUOTE
    if escaped or (arr == _BACKSLASH).any():
        quotes, escaped = unescaped_quotes(arr, quotes, escaped)
    toggles = np.cumsum(quotes, dtype=np.int64) + in_string
    return (toggles & 1) == 0, int(toggles[-1] & 1), escaped


def _key(prefix: bytes) -> str | None:
    """The member name that ends `prefix` (`"name":`), or None."""
    match = _KEY.search(prefix.rstrip())
    return None if match is None else json.loads(b'"' + match.group(1) + b'"')


def iter_entries(fh: Any, depth: int, max_bytes: int) -> Iterator[Entry]:
    """Every object whose opening brace brings the nesting depth (braces and brackets) to `depth`, in order."""
    level, in_string, escaped = 0, 0, False
    prefix = b""  # text since the last event, its last PREFIX_BYTES
    parent_key: str | None = None
    parts: list[bytes] | None = None  # the current entry's bytes (None: not in an entry)
    size, index, over = 0, 0, False
    key: str | None = None
    # whether an entry of the same container came before (then only a comma and a key may separate them)
    previous_end = False
    while block := fh.read(BLOCK):
        arr = np.frombuffer(block, dtype=np.uint8)
        outside, in_string, escaped = outside_strings(arr, in_string, escaped)
        opens = np.isin(arr, _OPENERS) & outside
        closes = np.isin(arr, _CLOSERS) & outside
        delta = opens.astype(np.int64) - closes.astype(np.int64)
        after = np.cumsum(delta) + level
        events = np.flatnonzero((opens & (after <= depth)) | (closes & (after < depth)))
        cursor = 0
        for pos in events.tolist():
            depth_after = int(after[pos])
            if parts is None:
                prefix = (prefix + block[cursor:pos])[-PREFIX_BYTES:]
            if opens[pos] and depth_after == depth:
                key = _key(prefix)
                stray = prefix.strip(b" \t\r\n,") if previous_end else b""
                if key is not None and previous_end:
                    stray = _KEY.sub(b"", stray.rstrip()).strip(b" \t\r\n,")
                parts, size, over = [], 0, False
                if stray:
                    yield Entry(
                        index,
                        key,
                        parent_key,
                        None,
                        0,
                        "parse_error",
                        f"unexpected text before entry {index}: {stray[:200]!r}",
                    )
                    index += 1
                cursor = pos
            elif opens[pos]:  # a container above the entries' depth
                if depth_after == depth - 1:
                    parent_key, previous_end = _key(prefix), False
                cursor = pos + 1
                prefix = b""
            elif depth_after == depth - 1 and parts is not None:  # the entry's closing brace
                size += pos + 1 - cursor
                over = over or size > max_bytes
                if not over:
                    parts.append(block[cursor : pos + 1])
                yield _finish(index, key, parent_key, parts, size, over, max_bytes)
                parts, index, previous_end, prefix = None, index + 1, True, b""
                cursor = pos + 1
            else:  # a container above the entries' depth closes
                cursor, prefix, previous_end = pos + 1, b"", depth_after >= depth - 1
                if depth_after < depth - 1:
                    parent_key = None
        if parts is not None:
            size += len(block) - cursor
            over = over or size > max_bytes
            if not over:
                parts.append(block[cursor:])
            else:
                parts.clear()
        else:
            prefix = (prefix + block[cursor:])[-PREFIX_BYTES:]
        level = int(after[-1])
    if parts is not None:
        yield Entry(
            index,
            key,
            parent_key,
            None,
            size,
            "truncated",
            f"the input ends inside entry {index} (after {size} bytes of it)",
        )


def _finish(
    index: int,
    key: str | None,
    parent_key: str | None,
    parts: list[bytes],
    size: int,
    over: bool,
    max_bytes: int,
) -> Entry:
    if over:
        return Entry(
            index,
            key,
            parent_key,
            None,
            size,
            "too_large",
            f"entry {index} holds {size} bytes, more than max_record_bytes {max_bytes}",
        )
    return Entry(index, key, parent_key, b"".join(parts), size)
