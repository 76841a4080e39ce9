"""Chunk outputs: per split, the encoded records (length-prefixed, in input order) and a summary of each
(sizes, labels, composition, split group kind, cell volume, duplicate keys) that the merge reads without decoding records; plus the chunk's
quarantine lines. Nothing here is pickled: summaries are .npz read with allow_pickle=False."""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from foundation.data_prep.validate import periodic_measure

from foundation.data.codec import encode_frame
from foundation.data.schema import Frame

_LENGTH = struct.Struct("<I")
QUARANTINE_NAME = "quarantine.jsonl"


def quarantine_entry(
    file: str,
    where: int | str,
    reason: str,
    message: str,
    frame: Frame | None = None,
    raw: str | None = None,
) -> dict[str, Any]:
    """One line of quarantine.jsonl: where the frame came from, why it was refused, and the frame itself
    (its record, base64, when one could be built; else an excerpt of the raw input)."""
    entry: dict[str, Any] = {
        "file": file,
        "record": str(where),
        "frame_id": None if frame is None else frame.frame_id,
        "reason": reason,
        "message": message,
    }
    if frame is not None:
        entry["record_b64"] = base64.b64encode(encode_frame(frame)).decode()
    if raw is not None:
        entry["raw"] = raw
    return entry


class SplitWriter:
    """Records and per-record summary of one split of one chunk."""

    def __init__(self, directory: Path, split: str):
        self.records_path = directory / f"{split}.rec"
        self.summary_path = directory / f"{split}.npz"
        self._fh: BinaryIO = open(self.records_path, "wb")
        self._offset = 0
        self._cols: dict[str, list] = {
            k: []
            for k in (
                "natoms",
                "energy",
                "force_sq",
                "force_n",
                "stress_sq",
                "stress_n",
                "neighbours",
                "comp_z",
                "comp_n",
                "comp_len",
                "offset",
                "frame_id",
                "source_file",
                "record",
                "source",
                "group",
                "volume",
            )
        }

    def add(
        self, frame: Frame, *, file: str, record: int | str, neighbours: int, group: str
    ) -> int:
        """Stage one frame (`group`: the kind of its split group); return its index within this split of the
        chunk."""
        payload = encode_frame(frame)
        self._fh.write(_LENGTH.pack(len(payload)))
        self._fh.write(payload)
        c = self._cols
        c["offset"].append(self._offset)
        self._offset += _LENGTH.size + len(payload)
        counts = np.bincount(frame.numbers)
        z = np.flatnonzero(counts)
        n = counts[z]
        c["comp_z"].append(z)
        c["comp_n"].append(n)
        c["comp_len"].append(len(z))
        c["natoms"].append(frame.natoms)
        c["energy"].append(np.nan if frame.energy is None else frame.energy)
        c["force_sq"].append(0.0 if frame.forces is None else float((frame.forces**2).sum()))
        c["force_n"].append(0 if frame.forces is None else frame.forces.size)
        c["stress_sq"].append(0.0 if frame.stress is None else float((frame.stress**2).sum()))
        c["stress_n"].append(0 if frame.stress is None else 9)
        c["neighbours"].append(neighbours)
        c["frame_id"].append(frame.frame_id)
        c["source_file"].append(file)
        c["source"].append(frame.source or "")
        c["record"].append(str(record))
        c["group"].append(group)
        c["volume"].append(
            periodic_measure(frame.cell, frame.pbc) if frame.pbc.all() else np.nan
        )  # the leakage audit's near-duplicate test (a frame that is not periodic has no volume)
        return len(c["natoms"]) - 1

    def close(self) -> int:
        self._fh.close()
        c = self._cols
        count = len(c["natoms"])
        arrays = {
            k: np.asarray(c[k], dtype=np.int64)
            for k in ("natoms", "force_n", "stress_n", "neighbours", "offset", "comp_len")
        }
        arrays.update(
            {
                k: np.asarray(c[k], dtype=np.float64)
                for k in ("energy", "force_sq", "stress_sq", "volume")
            }
        )
        for k in ("comp_z", "comp_n"):
            arrays[k] = np.concatenate(c[k]).astype(np.int64) if count else np.zeros(0, np.int64)
        for k in ("frame_id", "source_file", "record", "source", "group"):
            arrays[k] = np.asarray(c[k], dtype=str) if count else np.zeros(0, dtype="<U1")
        np.savez(self.summary_path, **arrays)
        return count


class InputOrder:
    """Every staged frame of a chunk in input order: its split, its index there, and its duplicate keys."""

    NAME = "order.npz"

    def __init__(self) -> None:
        self.split: list[int] = []
        self.local: list[int] = []
        self.keys: list[bytes] = []

    def add(self, split: int, local: int, structure_key: bytes, id_key: bytes) -> None:
        self.split.append(split)
        self.local.append(local)
        self.keys.append(structure_key + id_key)

    def save(self, directory: Path) -> None:
        keys = (
            np.frombuffer(b"".join(self.keys), dtype=np.uint8).reshape(len(self.keys), -1)
            if self.keys
            else np.zeros((0, 32), np.uint8)
        )
        np.savez(
            directory / self.NAME,
            split=np.asarray(self.split, dtype=np.int8),
            local=np.asarray(self.local, dtype=np.int32),
            keys=keys,
        )


def load_order(directory: Path) -> dict[str, np.ndarray]:
    """A finished chunk's InputOrder arrays: split (int8), local (int32), keys (n, 32) uint8 = structure|id key."""
    with np.load(directory / InputOrder.NAME, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def load_summary(directory: Path, split: str) -> dict[str, np.ndarray]:
    """The summary arrays of one split of a finished chunk (empty arrays when the split got no frame)."""
    with np.load(directory / f"{split}.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def iter_staged_records(directory: Path, split: str) -> Iterator[bytes]:
    """The encoded records of one split of a chunk, in order."""
    with open(directory / f"{split}.rec", "rb") as fh:
        while head := fh.read(_LENGTH.size):
            (length,) = _LENGTH.unpack(head)
            yield fh.read(length)


def read_record(directory: Path, split: str, offset: int) -> bytes:
    with open(directory / f"{split}.rec", "rb") as fh:
        fh.seek(offset)
        (length,) = _LENGTH.unpack(fh.read(_LENGTH.size))
        return fh.read(length)


def write_jsonl(fh: Any, entries: list[dict[str, Any]]) -> None:
    for entry in entries:
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
