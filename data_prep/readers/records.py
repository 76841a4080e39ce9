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

from foundation.data_prep.readers.base import Piece, RawRecord, Reader, open_binary

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
    """Byte ranges of about `chunk_frames` whole lines."""
    pieces, start, offset, lines, first = [], 0, 0, 0, 0
    with open_binary(path) as fh:
        for line in fh:
            offset += len(line)
            lines += 1
            if lines - first == chunk_frames:
                pieces.append(
                    Piece(path, name, "records", start, offset, first, lines - first, lines - first)
                )
                start, first = offset, lines
    if lines > first:
        pieces.append(
            Piece(path, name, "records", start, offset, first, lines - first, lines - first)
        )
    return pieces


def read(piece: Piece, config: Any) -> Iterator[RawRecord]:
    """Yield the records of the piece's lines."""
    with open_binary(piece.path) as fh:
        fh.seek(piece.start)
        for number in range(piece.first_record, piece.first_record + piece.num_records):
            line = fh.readline()
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
