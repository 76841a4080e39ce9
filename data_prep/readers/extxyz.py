"""Extended XYZ: ASE conventions (energy eV, forces eV/A, stress eV/A^3 with ASE's sign), plus the unit keys
`energy_unit`, `forces_unit`, `stress_unit` of the comment line, converted to those units (an unknown unit
stops the run naming file, record and unit; a stress unit converts magnitude only, the sign stays ASE's).

A fast parser reads the common layout (key=value comment line, `Properties=` columns of type S/R/I/L); a
comment line with braces, brackets or escapes goes through ASE's own `key_val_str_to_dict`.
Planning scans atom-count lines only, so files are cut into byte ranges of whole frames.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
from ase import units
from ase.data import atomic_numbers
from ase.stress import voigt_6_to_full_3x3_stress
from foundation.data_prep.readers.base import (
    COMPRESSED,
    COUNT_LINE_BYTES,
    Piece,
    RawRecord,
    Reader,
    ReaderError,
    open_binary,
    pick_ids,
    read_line,
    skip_lines,
)

from foundation.data.schema import Frame

ENERGY_UNITS = {
    "eV": 1.0,
    "meV": 1e-3,
    "Hartree": units.Hartree,
    "Ha": units.Hartree,
    "Ry": units.Rydberg,
    "kcal/mol": units.kcal / units.mol,
    "kJ/mol": units.kJ / units.mol,
}
FORCES_UNITS = {
    "eV/A": 1.0,
    "eV/Ang": 1.0,
    "eV/Angstrom": 1.0,
    "eV/Å": 1.0,
    "meV/A": 1e-3,
    "Hartree/Bohr": units.Hartree / units.Bohr,
    "Ha/Bohr": units.Hartree / units.Bohr,
    "kcal/mol/A": units.kcal / units.mol,
    "kJ/mol/A": units.kJ / units.mol,
}
STRESS_UNITS = {
    "eV/A^3": 1.0,
    "eV/A3": 1.0,
    "eV/Ang^3": 1.0,
    "eV/Angstrom^3": 1.0,
    "eV/Å^3": 1.0,
    "GPa": units.GPa,
    "kbar": 0.1 * units.GPa,
    "kBar": 0.1 * units.GPa,
    "kB": 0.1 * units.GPa,
    "bar": units.bar,
}
_UNIT_KEYS = (
    ("energy_unit", ENERGY_UNITS),
    ("forces_unit", FORCES_UNITS),
    ("stress_unit", STRESS_UNITS),
)
_PAIR = re.compile(r'([^\s=]+)=("[^"]*"|\S+)')
_EXOTIC = re.compile(r"[{}\[\]\\']")
_SYMBOLS = {**atomic_numbers, "X": 0}
_EXCERPT = 4000


def plan(path: str, name: str, chunk_frames: int) -> list[Piece]:
    """Cut a file into pieces of at most `chunk_frames` whole frames (one piece for a gzip file). Reads atom-count
    lines only (at most COUNT_LINE_BYTES each) and reads past the frames' other lines without holding them."""
    if path.endswith(COMPRESSED):
        return [Piece(path=path, name=name, format="extxyz", weight=chunk_frames)]
    pieces: list[Piece] = []
    starts: list[int] = []
    lineno = 0
    with open_binary(path) as fh:
        while True:
            offset = fh.tell()
            line = fh.readline(COUNT_LINE_BYTES)
            if not line:
                break
            lineno += 1
            if not line.strip():
                continue
            natoms = _count(line)
            if natoms is None:
                raise ReaderError(
                    f"{path}: line {lineno}: expected the atom count of frame {len(starts)}, "
                    f"found {line[:60]!r}; not an extended XYZ file?"
                )
            starts.append(offset)
            lineno += skip_lines(fh, natoms + 1)
        starts.append(fh.tell())
    for first in range(0, len(starts) - 1, chunk_frames):
        last = min(first + chunk_frames, len(starts) - 1)
        pieces.append(
            Piece(
                path=path,
                name=name,
                format="extxyz",
                start=starts[first],
                stop=starts[last],
                first_record=first,
                num_records=last - first,
                weight=last - first,
            )
        )
    return pieces


def _count(line: bytes) -> int | None:
    """The atom count of a count line (a whole line of at most COUNT_LINE_BYTES), else None."""
    if len(line) >= COUNT_LINE_BYTES and not line.endswith(b"\n"):
        return None
    try:
        natoms = int(line)
    except ValueError:
        return None
    return natoms if natoms >= 0 else None


def read(piece: Piece, config: Any) -> Iterator[RawRecord]:
    """Yield the records of a piece: parsed frames, or parse errors naming the record. A frame over
    config.max_atoms, or with a line over max_line_bytes, or over max_record_bytes in all, is a too_large record:
    its lines are read past, never held, and the frames after it are read."""
    index, remaining = piece.first_record, piece.num_records
    with open_binary(piece.path) as fh:
        fh.seek(piece.start)
        while remaining != 0:
            head = fh.readline(COUNT_LINE_BYTES)
            if not head:
                break
            if not head.strip():
                continue
            natoms = _count(head)
            if natoms is None:
                raise ReaderError(
                    f"{piece.path}: record {index}: expected an atom count, found {head[:60]!r}"
                )
            if natoms > config.max_atoms:
                skip_lines(fh, natoms + 1)
                yield RawRecord(
                    index,
                    reason="too_large",
                    error=f"{natoms} atoms announced, more than max_atoms {config.max_atoms}",
                )
            else:
                lines, problem = _frame_lines(fh, natoms, config)
                yield (
                    RawRecord(index, reason="too_large", error=problem)
                    if problem
                    else _record(piece, index, natoms, lines, config)
                )
            index += 1
            remaining -= 1


def _frame_lines(fh: Any, natoms: int, config: Any) -> tuple[list[bytes], str | None]:
    """(the comment and atom lines of a frame, why it is too large or None); fewer than natoms + 1 lines when the
    file ends first. A count that the rest of an uncompressed file cannot hold (every line takes 2 bytes or
    more) reads nothing. A line over max_line_bytes, or lines over max_record_bytes in all, end the reading:
    the frame's remaining lines are read past."""
    if isinstance(fh, io.BufferedReader):  # a plain (not gzip) file: its size bounds the count
        if 2 * (natoms + 1) > os.fstat(fh.fileno()).st_size - fh.tell():
            return [], None
    lines: list[bytes] = []
    size = 0
    for number in range(natoms + 1):
        line, long = read_line(fh, config.max_line_bytes)
        size += len(line)
        if long or size > config.max_record_bytes:
            skip_lines(fh, natoms - number)
            why = (
                f"line {number + 1} of the frame is longer than max_line_bytes {config.max_line_bytes}"
                if long
                else f"the frame's lines exceed max_record_bytes {config.max_record_bytes}"
            )
            return [], why
        if not line:
            break
        lines.append(line)
    return lines, None


def _record(piece: Piece, index: int, natoms: int, lines: list[bytes], config: Any) -> RawRecord:
    if len(lines) < natoms + 1:
        return RawRecord(
            index,
            reason="truncated",
            raw=b"".join(lines[:50]).decode(errors="replace")[:_EXCERPT],
            error=f"count line exceeds the file: {natoms} atoms announced, more lines than the "
            f"rest of the file holds",
        )
    try:
        return RawRecord(
            index,
            frame=parse_frame(
                lines[0].decode(), b"".join(lines[1:]).decode(), natoms, piece.name, index, config
            ),
        )
    except ReaderError as exc:
        raise ReaderError(f"{piece.path}: record {index}: {exc}") from None
    except Exception as exc:  # any malformed value: the record is quarantined as parse_error
        return RawRecord(
            index,
            error=f"{type(exc).__name__}: {exc}",
            raw=(f"{natoms}\n" + b"".join(lines).decode(errors="replace"))[:_EXCERPT],
        )


def parse_comment(line: str) -> dict[str, Any]:
    """The key=value pairs of a comment line (values as strings, or ASE-typed values for exotic lines)."""
    if _EXOTIC.search(line):
        from ase.io.extxyz import key_val_str_to_dict

        return key_val_str_to_dict(line)
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _PAIR.findall(line)}


def _floats(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.array(value.split(), dtype=np.float64)
    return np.asarray(value, dtype=np.float64).reshape(-1)


def _properties(spec: str) -> list[tuple[str, str, int]]:
    parts = spec.split(":")
    if len(parts) % 3:
        raise ValueError(f"Properties={spec!r} is not NAME:TYPE:COLS triples")
    return [(parts[i], parts[i + 1], int(parts[i + 2])) for i in range(0, len(parts), 3)]


def _unit_factors(info: dict[str, Any]) -> list[float]:
    factors = []
    for key, table in _UNIT_KEYS:
        unit = str(info.get(key, next(iter(table))))
        if unit not in table:
            raise ReaderError(f"unknown {key} {unit!r} (known: {', '.join(table)})")
        factors.append(table[unit])
    return factors


def parse_frame(comment: str, body: str, natoms: int, name: str, index: int, config: Any) -> Frame:
    """One frame from its comment line and atom lines (units converted to eV, eV/A, eV/A^3)."""
    info = parse_comment(comment)
    e_unit, f_unit, s_unit = _unit_factors(info)
    columns = _columns(
        body, natoms, _properties(str(info.get("Properties", "species:S:1:pos:R:3")))
    )
    if "species" in columns:
        numbers = np.array([_SYMBOLS.get(s, 0) for s in columns["species"][0]], dtype=np.int64)
    elif "Z" in columns:
        numbers = columns["Z"].reshape(-1)
    else:
        raise ValueError("no species or Z column")
    if "Lattice" in info:
        cell = _floats(info["Lattice"]).reshape(3, 3)
        pbc = _pbc(info.get("pbc", "T T T"))
    else:
        cell, pbc = np.zeros((3, 3)), _pbc(info.get("pbc", "F F F"))
    energy = info.get(config.energy_key)
    stress = info.get(config.stress_key)
    if stress is not None:
        stress = _floats(stress)
        stress = voigt_6_to_full_3x3_stress(stress) if stress.size == 6 else stress.reshape(3, 3)
        stress = stress * s_unit
    forces = columns.get(config.forces_key)
    magmoms = columns.get("magmoms")
    structure_id, frame_id = pick_ids(info, name, index, config)
    return Frame(
        numbers=numbers,
        positions=columns["pos"],
        cell=cell,
        pbc=pbc,
        frame_id=frame_id,
        structure_id=structure_id,
        source=str(info.get("source", "")),
        energy=None if energy is None else float(energy) * e_unit,
        forces=None if forces is None else forces * f_unit,
        stress=stress,
        magmoms=None if magmoms is None or magmoms.shape[1] != 1 else magmoms[:, 0],
    )


def _pbc(value: Any) -> np.ndarray:
    if isinstance(value, str):
        return np.array([v in ("T", "True", "true", "1") for v in value.split()], dtype=bool)
    return np.asarray(value, dtype=bool).reshape(-1)


def _columns(body: str, natoms: int, props: list[tuple[str, str, int]]) -> dict[str, Any]:
    tokens = body.split()
    width = sum(p[2] for p in props)
    if len(tokens) != natoms * width:
        raise ValueError(
            f"{natoms} atom lines of {width} columns expected, found {len(tokens)} values"
        )
    out: dict[str, Any] = {}
    col = 0
    for name, kind, cols in props:
        values = [tokens[col + k :: width] for k in range(cols)]
        col += cols
        if kind == "S":
            out[name] = values
        elif kind == "R":
            out[name] = np.array(values, dtype=np.float64).T.copy()
        elif kind == "I":
            out[name] = np.array(values, dtype=np.int64).T.copy()
        elif kind == "L":
            out[name] = np.array(
                [[v in ("T", "True", "1") for v in c] for c in values], dtype=bool
            ).T.copy()
        else:
            raise ValueError(f"unknown property type {kind!r} of column {name!r}")
    if "pos" not in out:
        raise ValueError("no pos column")
    return out


READER = Reader(plan=plan, read=read)
