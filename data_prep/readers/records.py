"""Staged records (`*.records.jsonl`): one JSON line per input object, written by `prep_objects`, so in-memory
Atoms / Structures / entries go through the same chunks, validation, quarantine, split and shards as files.

A line is {"where": LOCATOR, "record": base64 of the record encoding (foundation.data.codec, no pickle)} or, for an
object that could not become a frame, {"where": LOCATOR, "error": MESSAGE, "raw": EXCERPT}. Pieces are byte
ranges of whole lines, about chunk_frames lines each.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

from foundation.data_prep.readers.base import (
    Piece,
    RawRecord,
    Reader,
    open_binary,
    read_line,
    skip_lines,
)

from foundation.data.codec import decode_frame, encode_frame
from foundation.data.schema import Frame

SUFFIX = ".records.jsonl"


def record_line(
    where: int | str, frame: Frame | None = None, error: str | None = None, raw: str | None = None
) -> str:
    """One line of a staged-records file: a frame, or why an object could not become one."""
    if frame is not None:
        return (
            json.dumps({"where": where, "record": base64.b64encode(encode_frame(frame)).decode()})
            + "\n"
        )
    return json.dumps({"where": where, "error": error, "raw": raw}) + "\n"


def plan(path: str, name: str, chunk_frames: int) -> list[Piece]:
    """Byte ranges of about `chunk_frames` whole lines (read past, never held: a line may be any length)."""
    pieces, first = [], 0
    with open_binary(path) as fh:
        while True:
            start = fh.tell()
            lines = skip_lines(fh, chunk_frames)
            if not lines:
                break
            pieces.append(Piece(path, name, "records", start, fh.tell(), first, lines, lines))
            first += lines
    return pieces


def read(piece: Piece, config: Any) -> Iterator[RawRecord]:
    """Yield the records of the piece's lines (a line over config.max_line_bytes is a too_large record)."""
    with open_binary(piece.path) as fh:
        fh.seek(piece.start)
        for number in range(piece.first_record, piece.first_record + piece.num_records):
            line, long = read_line(fh, config.max_line_bytes)
            if long:
                yield RawRecord(
                    f"line {number}",
                    reason="too_large",
                    error=f"longer than max_line_bytes {config.max_line_bytes}",
                )
                continue
            try:
                entry = json.loads(line)
                if "error" in entry:
                    yield RawRecord(entry["where"], error=entry["error"], raw=entry.get("raw"))
                else:
                    yield RawRecord(
                        entry["where"], frame=decode_frame(base64.b64decode(entry["record"]))
                    )
            except Exception as exc:  # a damaged staging line
                yield RawRecord(
                    f"line {number}",
                    error=f"{type(exc).__name__}: {exc}",
                    raw=line[:4000].decode(errors="replace"),
                )


READER = Reader(plan=plan, read=read)
