"""Alexandria's native files: pymatgen ComputedStructureEntry dicts, as `{"entries": [...]}` (the published
alexandria_NNN.json.bz2 layout; other top-level keys are ignored) or a top-level list; plain, .gz or .bz2.

Streamed: json_entries cuts one entry at a time (at most max_record_bytes) from the (decompressed) byte stream and
each is parsed on its own, so memory never grows with the file and a malformed entry (a NaN literal, a bad value)
loses only itself. A file is one piece (a compressed stream cannot be cut at byte offsets; Alexandria ships ~100k entries per
file, so the files themselves are the parallel unit).

Conversions: energy = the entry's `energy`, which a ComputedStructureEntry dict holds as the uncorrected total
energy in eV (with config.energy="corrected": plus its `correction`, i.e. ComputedEntry.energy). The structure goes
through `structure_arrays` (the MPtrj reader's, bit for bit what Structure.from_dict gives; the test compares
with ComputedStructureEntry.from_dict + AseAtomsAdaptor, which cost 16x more CPU per entry: 0.48 against 0.03 ms
for 12 atoms, bench/alexandria_convert.py; the whole prep takes ~0.55 ms per frame). Forces (eV/A) come from `data["forces"]` or the sites' `forces` property,
stress from `data["stress"]` in kBar with VASP's sign (as in Alexandria's trajectory files) -> eV/A^3 with ASE's
sign, magmoms from the sites' `magmom` property; each may be absent. structure_id = `data["mat_id"]` (else the
entry_id), frame_id = the entry_id (else mat_id, else FILE:INDEX); config.structure_key / frame_key pick any
text or number entry of `data` instead. source = "Alexandria".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
from foundation.data_prep.readers.base import (
    Piece,
    RawRecord,
    Reader,
    ReaderError,
    open_binary,
    pick_ids,
    vasp_kbar_to_ase,
)
from foundation.data_prep.readers.json_entries import Entry, iter_entries
from foundation.data_prep.readers.mptrj import structure_arrays

from foundation.data.schema import Frame

SOURCE = "Alexandria"
ENERGY = {
    "uncorrected": "energy (the entry's uncorrected total energy, eV)",
    "corrected": "energy + correction (ComputedEntry.energy, eV)",
}


def plan(path: str, name: str, chunk_frames: int) -> list[Piece]:
    """One piece per file (its weight: chunk_frames, so files are not packed together)."""
    with open_binary(path) as fh:
        if not fh.read(1):
            return []
    return [Piece(path=path, name=name, format="alexandria", weight=chunk_frames)]


def _entries_depth(fh: Any, path: str) -> tuple[int, str | None]:
    """(nesting depth of the entries, key of the list holding them): 3 and `entries` under a top-level object,
    2 and None in a top-level list."""
    first = fh.peek(64).lstrip()[:1]
    if first == b"{":
        return 3, "entries"
    if first == b"[":
        return 2, None
    raise ReaderError(
        f'{path}: not Alexandria JSON (expected {{"entries": [...]}} or a list of entries)'
    )


def read(piece: Piece, config: Any) -> Iterator[RawRecord]:
    """Yield every entry of the file, in order (where = the entry's index in the file). Each entry is parsed on its
    own (json_entries), so a malformed one is quarantined and the entries after it are read."""
    count = 0
    with open_binary(piece.path) as fh:
        depth, holder = _entries_depth(fh, piece.path)
        try:
            for item in iter_entries(fh, depth, config.max_record_bytes):
                if item.parent_key != holder:
                    continue  # an object under another top-level key
                yield _record(item, piece.name, count, config)
                count += 1
        except (
            OSError,
            EOFError,
        ) as exc:  # a damaged compressed stream: nothing after this can be read
            yield RawRecord(
                count, error=f"the file ends inside entry {count}: {exc}", reason="truncated"
            )


def _record(item: Entry, name: str, index: int, config: Any) -> RawRecord:
    if item.body is None:
        return RawRecord(index, error=item.message, reason=item.problem or "parse_error")
    try:
        entry = json.loads(item.body)
    except ValueError as exc:
        return RawRecord(
            index, error=f"malformed JSON: {exc}", raw=item.body[:4000].decode(errors="replace")
        )
    try:
        return RawRecord(index, frame=frame_from_entry_dict(entry, name, index, config))
    except Exception as exc:  # a malformed entry is quarantined as parse_error
        return RawRecord(
            index,
            error=f"{type(exc).__name__}: {exc}",
            raw=json.dumps(entry, default=str)[:4000],
        )


def frame_from_entry_dict(
    entry: dict[str, Any], name: str, index: int, config: Any, source: str = SOURCE
) -> Frame:
    """One ComputedStructureEntry dict -> Frame (ASE units and stress sign; conversions as in the module doc)."""
    cls = entry.get("@class", "ComputedStructureEntry")
    if cls != "ComputedStructureEntry":
        raise ValueError(f"entry is a {cls}, not a ComputedStructureEntry (it has no structure)")
    numbers, positions, cell, pbc = structure_arrays(entry["structure"])
    data = entry.get("data") or {}
    energy = float(entry["energy"])
    if config.energy == "corrected":
        energy += float(entry.get("correction") or 0.0)
    sites = entry["structure"]["sites"]
    forces = data.get("forces")
    if forces is None:
        forces = _site_property(sites, "forces")
    stress = data.get("stress")
    magmoms = _site_property(sites, "magmom")
    info = {
        k: v
        for k, v in data.items()
        if isinstance(v, (str, int, float)) and not isinstance(v, bool)
    }
    ids = [v for v in (data.get("mat_id"), entry.get("entry_id")) if v is not None]
    if ids:
        info.setdefault("structure_id", ids[0])
        info.setdefault("frame_id", ids[-1])
    structure_id, frame_id = pick_ids(info, name, index, config)
    return Frame(
        numbers=numbers,
        positions=positions,
        cell=cell,
        pbc=pbc,
        frame_id=frame_id,
        structure_id=structure_id,
        source=source,
        energy=energy,
        forces=None if forces is None else np.array(forces, dtype=np.float64),
        stress=None if stress is None else vasp_kbar_to_ase(np.array(stress, dtype=np.float64)),
        magmoms=None if magmoms is None else np.array(magmoms, dtype=np.float64).reshape(-1),
    )


def _site_property(sites: list[dict[str, Any]], key: str) -> list | None:
    """The sites' property `key`, when every site has it."""
    values = [(site.get("properties") or {}).get(key) for site in sites]
    return None if any(v is None for v in values) else values


READER = Reader(plan=plan, read=read)
