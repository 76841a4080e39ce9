"""VASP outputs: every ionic step of an OUTCAR or a vasprun.xml, read through ASE.

Conversions are ASE's: VASP writes stress in kBar with the opposite sign; ASE's readers already return
eV/A^3 with ASE's sign (sigma_ASE = -0.1 * sigma_VASP / 160.21766208; tests pin both numbers). Energy is
ASE's `energy`, i.e. VASP's energy(sigma->0); forces are the raw TOTAL-FORCE values (ASE's calculator results,
not get_forces(), which would zero the forces of atoms fixed by selective dynamics). frame_id is FILE:STEP and
so is structure_id: a run names no material, so the split groups its steps (and other runs of the same material)
by composition. A file whose first step cannot be read is an error naming the file; a
step after that which cannot be read is quarantined as parse_error. A file with a line over max_line_bytes is refused before ASE reads it (ASE holds lines, or whole
files). ASE drops an OUTCAR's last ionic step
without a word when the file ends inside it (a run killed mid-step): the steps the file started (its SCF
`Iteration N(` lines) are counted, and each one ASE did not return is quarantined as truncated.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

from foundation.data_prep.readers.base import (
    Piece,
    RawRecord,
    Reader,
    ReaderError,
    check_line_lengths,
    open_binary,
    single_piece,
)

from foundation.data.ase_convert import frame_from_atoms

_ASE_FORMATS = {"vasp-outcar": "vasp-out", "vasp-xml": "vasp-xml"}
_BYTES_PER_STEP = {"vasp-outcar": 50_000, "vasp-xml": 100_000}  # packing estimate only
_IONIC_STEP = re.compile(
    rb"Iteration\s+(\d+)\("
)  # "--- Iteration    3(  12) ---": ionic step 3, SCF step 12
_EXCERPT = 2000


def _planner(fmt: str):
    def plan(path: str, name: str, chunk_frames: int) -> list[Piece]:
        return [single_piece(path, name, fmt, weight=os.path.getsize(path) // _BYTES_PER_STEP[fmt])]

    return plan


def read(piece: Piece, config: Any) -> Iterator[RawRecord]:
    """Yield every ionic step of one VASP file."""
    import ase.io

    check_line_lengths(piece.path, config.max_line_bytes)
    steps = ase.io.iread(piece.path, index=":", format=_ASE_FORMATS[piece.format])
    step = 0
    while True:
        try:
            atoms = next(steps)
        except StopIteration:
            if piece.format == "vasp-outcar":
                yield from _incomplete_steps(piece, step)
            return
        except Exception as exc:  # ASE raises many types on broken files
            if step == 0:
                raise ReaderError(
                    f"{piece.path}: cannot read as {piece.format} ({type(exc).__name__}: {exc})"
                ) from None
            yield RawRecord(
                step, error=f"ionic step {step} unreadable: {type(exc).__name__}: {exc}"
            )
            return
        yield RawRecord(
            step,
            frame=frame_from_atoms(
                atoms,
                frame_id=f"{piece.name}:{step}",
                structure_id=f"{piece.name}:{step}",
                source="VASP",
            ),
        )
        step += 1


def _incomplete_steps(piece: Piece, complete: int) -> Iterator[RawRecord]:
    """A truncated record for every ionic step the OUTCAR started after its `complete` complete ones."""
    started: set[int] = set()
    with open_binary(piece.path) as fh:
        for line in fh:
            if b"Iteration" in line and (match := _IONIC_STEP.search(line)):
                started.add(int(match.group(1)))
        end = fh.tell()
        fh.seek(max(0, end - _EXCERPT))
        tail = fh.read().decode(errors="replace")
    for step in range(complete, len(started)):
        yield RawRecord(
            step,
            reason="truncated",
            raw=tail,
            error=f"ionic step {step} incomplete: the file ends before its energy and forces "
            f"(a run stopped mid-step?)",
        )


OUTCAR_READER = Reader(plan=_planner("vasp-outcar"), read=read)
VASPRUN_READER = Reader(plan=_planner("vasp-xml"), read=read)
