"""MPtrj JSON, the figshare layout: {material_id: {frame_id: {structure (pymatgen dict),
uncorrected_total_energy, corrected_total_energy, energy_per_atom, ef_per_atom, force, stress, magmom,
bandgap, mp_id}}}.

Conversions: energy = uncorrected_total_energy (or corrected_total_energy with config.energy="corrected"),
eV total; forces eV/A as given; stress kBar with VASP's sign -> eV/A^3 with ASE's sign; magmom -> magmoms;
structure_id = material id, frame_id = the frame key. Positions are the sites' fractional `abc` times the
lattice matrix site by site, bit for bit what pymatgen's Structure.from_dict computes (tests compare); a site with
several species or partial occupancy is a parse error.

Planning scans the bytes once with numpy (string-aware brace depth) and cuts the top-level object between
materials; a piece is read by feeding `{` + its byte range + `}` to json_entries, one material at a time (at
most max_record_bytes), so memory never grows with the file and a malformed frame loses only itself.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
from ase.data import atomic_numbers
from foundation.data_prep.readers.base import (
    COMPRESSED,
    Piece,
    RawRecord,
    Reader,
    ReaderError,
    open_binary,
    vasp_kbar_to_ase,
)
from foundation.data_prep.readers.json_entries import Entry, iter_entries, outside_strings

from foundation.data.schema import Frame

ENERGY_FIELDS = {"uncorrected": "uncorrected_total_energy", "corrected": "corrected_total_energy"}
_BLOCK = 2 << 20
_OPEN, _CLOSE = ord("{"), ord("}")


def scan_materials(path: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(end offsets of each material's value, frames per material, offset after the top-level '{').

    Depth counts braces outside strings; a material ends where depth returns to 1, a frame starts where it
    reaches 3.
    """
    ends, frame_starts = [], []
    depth, in_string, escaped, offset, first = 0, 0, False, 0, -1
    with open_binary(path) as fh:
        while block := fh.read(_BLOCK):
            arr = np.frombuffer(block, dtype=np.uint8)
            outside, in_string, escaped = outside_strings(arr, in_string, escaped)
            delta = ((arr == _OPEN) & outside).astype(np.int8) - ((arr == _CLOSE) & outside).astype(
                np.int8
            )
            level = np.cumsum(delta, dtype=np.int32) + depth
            if first < 0 and (level >= 1).any():
                first = offset + int(np.argmax(level >= 1)) + 1
            closes = np.flatnonzero((delta < 0) & (level == 1))
            opens = np.flatnonzero((delta > 0) & (level == 3))
            ends.append(closes + offset + 1)
            frame_starts.append(opens + offset)
            depth = int(level[-1])
            offset += len(block)
    if first < 0 or depth != 0:
        raise ReaderError(
            f"{path}: not a complete JSON object (brace depth {depth} at the end of the file)"
        )
    ends_arr = np.concatenate(ends) if ends else np.zeros(0, np.int64)
    starts_arr = np.concatenate(frame_starts) if frame_starts else np.zeros(0, np.int64)
    counts = np.diff(np.searchsorted(starts_arr, np.concatenate([[first], ends_arr])))
    return ends_arr, counts, first


def plan(path: str, name: str, chunk_frames: int) -> list[Piece]:
    """Cut the top-level object into byte ranges of whole materials, about `chunk_frames` frames each."""
    if path.endswith(COMPRESSED):
        return [Piece(path=path, name=name, format="mptrj", weight=chunk_frames)]
    ends, counts, first = scan_materials(path)
    pieces, start, frames, record = [], first, 0, 0
    for end, count in zip(ends.tolist(), counts.tolist()):
        frames += count
        if frames >= chunk_frames:
            pieces.append(Piece(path, name, "mptrj", start, end, record, frames, frames))
            start, record, frames = end, record + frames, 0
    if frames or not pieces:
        last = int(ends[-1]) if len(ends) else first
        pieces.append(Piece(path, name, "mptrj", start, last, record, frames, max(frames, 1)))
    return pieces


class _Window(io.RawIOBase):
    """`{` + bytes [start, stop) of a file (leading separators dropped) + `}`: one valid JSON object."""

    def __init__(self, fh: io.BufferedIOBase, start: int, stop: int):
        fh.seek(start)
        self._fh, self._left = fh, stop - start
        self._pending, self._pos = memoryview(b"{"), 0
        self._started = self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._pos == len(self._pending):
            if self._left > 0:
                data = self._fh.read(min(self._left, 1 << 20))
                self._left = self._left - len(data) if data else 0
                if not self._started:
                    data = data.lstrip(b" \t\r\n,")
                    self._started = bool(data)
                self._pending, self._pos = memoryview(data), 0
            elif not self._finished:
                self._pending, self._pos, self._finished = memoryview(b"}"), 0, True
            else:
                return 0
        n = min(len(buffer), len(self._pending) - self._pos)
        buffer[:n] = self._pending[self._pos : self._pos + n]
        self._pos += n
        return n


def read(piece: Piece, config: Any) -> Iterator[RawRecord]:
    """Yield every frame of the materials in a piece. Each material is parsed on its own; a material that does not
    parse is read frame by frame, so a malformed frame entry is quarantined alone (json_entries)."""
    field = ENERGY_FIELDS[config.energy]
    with open_binary(piece.path) as fh:
        stream = fh if piece.stop < 0 else _Window(fh, piece.start, piece.stop)
        for material in iter_entries(stream, 2, config.max_record_bytes):
            material_id = material.key if material.key is not None else f"entry {material.index}"
            if material.body is None:
                yield _refused(material, material_id)
                continue
            try:
                frames = json.loads(material.body)
            except ValueError:
                yield from _frames_one_by_one(material_id, material.body, field, config)
                continue
            if not isinstance(frames, dict):
                yield RawRecord(
                    material_id,
                    error="material value is not an object of frames",
                    raw=material.body[:4000].decode(errors="replace"),
                )
                continue
            for frame_key, entry in frames.items():
                yield _record(f"{material_id}/{frame_key}", material_id, frame_key, entry, field)


def _frames_one_by_one(
    material_id: str, body: bytes, field: str, config: Any
) -> Iterator[RawRecord]:
    """The frames of a material that does not parse as a whole, each parsed on its own."""
    for frame in iter_entries(io.BytesIO(body), 2, config.max_record_bytes):
        where = f"{material_id}/{frame.key if frame.key is not None else frame.index}"
        if frame.body is None:
            yield _refused(frame, where)
            continue
        try:
            entry = json.loads(frame.body)
        except ValueError as exc:
            yield RawRecord(
                where,
                error=f"malformed JSON: {exc}",
                raw=frame.body[:4000].decode(errors="replace"),
            )
            continue
        yield _record(where, material_id, str(frame.key), entry, field)


def _refused(entry: Entry, where: str) -> RawRecord:
    """The record of an entry that was not parsed: too large, cut off, or preceded by stray text."""
    return RawRecord(where, error=entry.message, reason=entry.problem or "parse_error")


def _record(where: str, material_id: str, frame_key: str, entry: Any, field: str) -> RawRecord:
    try:
        return RawRecord(where, frame=frame_from_entry(material_id, frame_key, entry, field))
    except Exception as exc:  # a malformed frame entry is quarantined as parse_error
        return RawRecord(
            where, error=f"{type(exc).__name__}: {exc}", raw=json.dumps(entry, default=str)[:4000]
        )


def frame_from_entry(material_id: str, frame_key: str, entry: dict[str, Any], field: str) -> Frame:
    """One MPtrj frame entry -> Frame (ASE units and stress sign)."""
    numbers, positions, cell, pbc = structure_arrays(entry["structure"])
    stress = entry.get("stress")
    magmom = entry.get("magmom")
    energy = entry.get(field)
    return Frame(
        numbers=numbers,
        positions=positions,
        cell=cell,
        pbc=pbc,
        frame_id=frame_key,
        structure_id=material_id,
        source="MPtrj",
        energy=None if energy is None else float(energy),
        forces=None if entry.get("force") is None else np.array(entry["force"], dtype=np.float64),
        stress=None if stress is None else vasp_kbar_to_ase(np.array(stress, dtype=np.float64)),
        magmoms=None if magmom is None else np.array(magmom, dtype=np.float64).reshape(-1),
    )


def structure_arrays(
    structure: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(numbers, positions, cell, pbc) of a pymatgen Structure dict: positions are the sites' fractional `abc`
    times the lattice matrix site by site, bit for bit what Structure.from_dict computes, ~16x faster (a site with
    several species or partial occupancy raises)."""
    lattice = structure["lattice"]
    matrix = np.array(lattice["matrix"], dtype=np.float64).reshape(3, 3)
    numbers, abc = [], []
    for site in structure["sites"]:
        species = site["species"]
        if len(species) != 1 or float(species[0].get("occu", 1.0)) != 1.0:
            raise ValueError(
                f"site {len(numbers)} is disordered ({species}); only ordered structures are read"
            )
        numbers.append(atomic_numbers.get(species[0]["element"], 0))
        abc.append(site["abc"])
    positions = np.array([np.dot(np.asarray(f, dtype=np.float64), matrix) for f in abc]).reshape(
        -1, 3
    )
    return (
        np.array(numbers, dtype=np.int64),
        positions,
        matrix,
        np.array(lattice.get("pbc", (True, True, True)), dtype=bool),
    )


READER = Reader(plan=plan, read=read)
