"""What every reader shares: pieces of input files, the records a reader yields, id and unit helpers."""

from __future__ import annotations

import bz2
import gzip
import io
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from foundation.data.schema import Frame
from foundation.errors import UserError

# sigma_ASE [eV/A^3] = -0.1 * sigma_VASP [kBar] / 160.21766208 (DESIGN.md): VASP and MPtrj stresses.
EV_PER_A3_IN_GPA = 160.21766208

# Info keys that name a material or trajectory (the split group by default); a per-frame id never counts.
STRUCTURE_KEYS = (
    "structure_id",
    "mptrj_traj_id",
    "alexandria_id",
    "mat_id",
    "material_id",
    "mp_id",
)
FRAME_KEYS = ("frame_id", "mptrj_snapshot_id", "snapshot_id", "internal_id")


class ReaderError(UserError, ValueError):
    """A file that cannot be read at all (the message names the file and where it failed)."""


@dataclass(frozen=True)
class Piece:
    """A contiguous part of one input file that one chunk task reads.

    `start`/`stop` are byte offsets (extxyz, MPtrj JSON) or row offsets (ASE db); -1 = to the end. `name` is
    the file's path relative to the common root of all inputs: ids and quarantine entries use it.
    """

    path: str
    name: str
    format: str
    start: int = 0
    stop: int = -1
    first_record: int = 0
    num_records: int = -1  # -1: unknown until read
    weight: int = 1  # approximate frames, for packing pieces into chunks


@dataclass
class RawRecord:
    """One record of an input file: a Frame, or the error (and its quarantine reason) that kept it from becoming one."""

    where: (
        int | str
    )  # record locator inside the file: frame index, "material/frame", row id, ionic step
    frame: Frame | None = None
    error: str | None = None
    raw: str | None = None  # an excerpt of the unreadable input, for the quarantine file
    reason: str = "parse_error"  # or "truncated": the input ends inside this record


@dataclass(frozen=True)
class Reader:
    """A format: cut a file into pieces, read the records of a piece."""

    plan: Callable[[str, str, int], list[Piece]]
    read: Callable[[Piece, Any], Iterator[RawRecord]]


def vasp_kbar_to_ase(stress: Any) -> Any:
    """VASP/MPtrj stress (kBar, VASP sign) -> ASE stress (eV/A^3, ASE sign)."""
    return -0.1 * stress / EV_PER_A3_IN_GPA


def pick_ids(info: Mapping[str, Any], name: str, index: int | str, config: Any) -> tuple[str, str]:
    """(structure_id, frame_id) of a frame from its info keys, following config.structure_key / frame_key.
    Without a material or trajectory key the structure_id is the frame_id: the split then groups the frame by
    composition (data_prep/split.py)."""
    frame_id = _pick(info, config.frame_key, FRAME_KEYS, "frame_key")
    if frame_id is None:
        frame_id = f"{name}:{index}"
    if config.structure_key == "frame":
        return frame_id, frame_id
    structure_id = _pick(info, config.structure_key, STRUCTURE_KEYS, "structure_key")
    return (frame_id if structure_id is None else structure_id), frame_id


def _pick(
    info: Mapping[str, Any], key: str | None, auto: tuple[str, ...], option: str
) -> str | None:
    if key in ("index", "frame"):
        return None
    if key is not None:
        if key not in info:
            raise KeyError(f"info key {key!r} ({option}) is missing")
        return str(info[key])
    return next((str(info[k]) for k in auto if k in info), None)


def single_piece(path: str, name: str, fmt: str, weight: int = 1) -> Piece:
    return Piece(path=path, name=name, format=fmt, weight=max(1, weight))


# The longest atom-count line a text reader reads: a longer one holds no count (a file of NUL bytes has no line end).
COUNT_LINE_BYTES = 4096
COMPRESSED = (".gz", ".bz2")  # read as one stream: a compressed file cannot be cut at byte offsets


def open_binary(path: str) -> io.BufferedIOBase:
    """Open an input file for reading bytes (decompressed when it ends in .gz or .bz2); errors name the file."""
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        if path.endswith(".bz2"):
            return bz2.open(path, "rb")
        return open(path, "rb")
    except OSError as exc:
        raise ReaderError(f"{path}: cannot open ({exc.strerror or exc})") from None


def skip_lines(fh: Any, count: int) -> int:
    """Read past `count` lines of a binary file opened by open_binary without holding any of them (however long);
    return how many there were (fewer at the end of the file; a last line without a newline counts)."""
    skipped, partial = 0, False
    while skipped < count:
        block = fh.peek(1 << 16)
        if not block:
            return skipped + partial
        newlines = block.count(b"\n")
        if skipped + newlines < count:
            fh.read(len(block))
            skipped += newlines
            partial = not block.endswith(b"\n")
            continue
        end = -1
        for _ in range(count - skipped):
            end = block.index(b"\n", end + 1)
        fh.read(end + 1)
        skipped = count
    return skipped


def read_line(fh: Any, limit: int) -> tuple[bytes, bool]:
    """(the next line, or its first `limit` bytes, whether it was longer): a longer line is read past, not held."""
    line = fh.readline(limit + 1)
    if len(line) <= limit:
        return line, False
    if not line.endswith(b"\n"):
        skip_lines(fh, 1)
    return line[:limit], True


def check_line_lengths(path: str, limit: int, what: str = "max_line_bytes") -> None:
    """Raise ReaderError when a line of the file is longer than `limit` bytes (scanned in blocks, held never):
    for inputs that a library reads line by line or whole (ASE's VASP and other readers)."""
    run, lines = 0, 0  # bytes since the last newline, newlines so far
    with open_binary(path) as fh:
        while block := fh.read(1 << 20):
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
            gaps = np.diff(ends, prepend=-1) if len(ends) else np.zeros(0, np.int64)
            if len(ends):
                gaps[0] += run
            long = np.flatnonzero(gaps > limit)
            tail = run + len(block) if not len(ends) else len(block) - 1 - int(ends[-1])
            if len(long) or tail > limit:
                number = lines + (int(long[0]) if len(long) else len(ends)) + 1
                raise ReaderError(
                    f"{path}: line {number} is longer than {what} {limit} bytes; not a text "
                    f"file of this format?"
                )
            run, lines = tail, lines + len(ends)


def file_identity(path: str) -> list[Any]:
    """What tells a changed input apart cheaply: absolute path, size and modification time."""
    st = os.stat(path)
    return [os.path.abspath(path), st.st_size, st.st_mtime_ns]
