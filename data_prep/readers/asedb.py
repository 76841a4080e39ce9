"""ASE databases (SQLite `.db`, JSON `.json`, ASE's LMDB `.aselmdb`) through ase.db.connect.

Labels are the rows' calculator results in ASE units and sign (energy eV, forces eV/A, stress eV/A^3).
structure_id and frame_id come from the rows' key-value pairs (config.structure_key / frame_key, or the
automatic keys); without them frame_id is FILE:ROWID and every row is its own structure.
Pieces are ranges of rows in id order.
"""

from __future__ import annotations

from typing import Any, Iterator

from foundation.data_prep.readers.base import Piece, RawRecord, Reader, ReaderError, pick_ids
from foundation.data.ase_convert import frame_from_atoms


def _connect(path: str):
    import ase.db

    try:
        return ase.db.connect(path, create_indices=False, use_lock_file=False) if path.endswith(".db") \
            else ase.db.connect(path, use_lock_file=False)
    except Exception as exc:
        raise ReaderError(f"{path}: cannot open as an ASE database ({type(exc).__name__}: {exc})") from None


def plan(path: str, name: str, chunk_frames: int) -> list[Piece]:
    try:
        count = _connect(path).count()
    except ReaderError:
        raise
    except Exception as exc:
        raise ReaderError(f"{path}: cannot read as an ASE database ({type(exc).__name__}: {exc})") from None
    return [Piece(path, name, "asedb", start, min(start + chunk_frames, count), start,
                  min(chunk_frames, count - start), min(chunk_frames, count - start))
            for start in range(0, count, chunk_frames)]


def read(piece: Piece, config: Any) -> Iterator[RawRecord]:
    """Yield the rows [start, stop) of the database, in id order."""
    db = _connect(piece.path)
    for row in db.select(sort="id", offset=piece.start, limit=piece.stop - piece.start):
        try:
            structure_id, frame_id = pick_ids(row.key_value_pairs, piece.name, row.id, config)
            frame = frame_from_atoms(row.toatoms(), frame_id=frame_id, structure_id=structure_id,
                                     source=str(row.key_value_pairs.get("source", "")))
            yield RawRecord(row.id, frame=frame)
        except Exception as exc:  # a malformed row is quarantined as parse_error
            yield RawRecord(row.id, error=f"{type(exc).__name__}: {exc}", raw=str(dict(row))[:4000])


READER = Reader(plan=plan, read=read)
