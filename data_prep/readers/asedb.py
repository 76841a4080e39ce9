"""ASE databases (SQLite `.db`, JSON `.json`, LMDB `.aselmdb` as OMat24/fairchem ship them) through ase.db.connect.

`.aselmdb` needs the `ase-db-backends` package (a declared dependency), which registers the LMDB backend with ASE;
it is opened read-only and without a lock, so many chunk tasks read one shard at once.
Labels are the rows' calculator results in ASE units and sign (energy eV, forces eV/A, stress eV/A^3).
structure_id, frame_id and source come from the rows' key-value pairs and data (config.structure_key / frame_key,
or the automatic keys); without them frame_id is FILE:ROWID and every row is its own structure.
Pieces are ranges of rows in id order; a piece reads only its own rows (by id for LMDB, offset/limit in SQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from foundation.data_prep.readers.base import Piece, RawRecord, Reader, ReaderError, pick_ids

from foundation.data.ase_convert import frame_from_atoms

LMDB_SUFFIX = ".aselmdb"


@contextmanager
def _connect(path: str) -> Iterator[Any]:
    """The database, closed again on exit (an LMDB environment may be open only once per process)."""
    import ase.db

    try:
        if path.endswith(".db"):
            db = ase.db.connect(path, create_indices=False, use_lock_file=False)
        elif path.endswith(LMDB_SUFFIX):
            db = ase.db.connect(path, type="aselmdb", use_lock_file=False, readonly=True)
        else:
            db = ase.db.connect(path, use_lock_file=False)
    except Exception as exc:
        hint = (
            " (install ase-db-backends)"
            if path.endswith(LMDB_SUFFIX) and "aselmdb" in str(exc)
            else ""
        )
        raise ReaderError(
            f"{path}: cannot open as an ASE database ({type(exc).__name__}: {exc}){hint}"
        ) from None
    try:
        yield db
    finally:
        close = getattr(db, "close", None)
        if close is not None:
            close()


def plan(path: str, name: str, chunk_frames: int) -> list[Piece]:
    try:
        with _connect(path) as db:
            count = db.count()
    except ReaderError:
        raise
    except Exception as exc:
        raise ReaderError(
            f"{path}: cannot read as an ASE database ({type(exc).__name__}: {exc})"
        ) from None
    return [
        Piece(
            path,
            name,
            "asedb",
            start,
            min(start + chunk_frames, count),
            start,
            min(chunk_frames, count - start),
            min(chunk_frames, count - start),
        )
        for start in range(0, count, chunk_frames)
    ]


def _rows(db: Any, start: int, stop: int) -> Iterator[tuple[int, Callable[[], Any]]]:
    """(row id, a call that fetches the row) for rows [start, stop) in id order. An LMDB database lists its ids:
    each row is fetched by id (its select would read every earlier row, or all rows to sort them), so one
    undecodable row fails alone; SQLite and JSON take offset and limit."""
    ids = getattr(db, "ids", None)
    if ids is not None:
        for row_id in ids[start:stop]:
            yield row_id, partial(db.get, id=row_id)
    else:
        for row in db.select(sort="id", offset=start, limit=stop - start):
            yield row.id, (lambda fetched=row: fetched)


def read(piece: Piece, config: Any) -> Iterator[RawRecord]:
    """Yield the rows [start, stop) of the database, in id order."""
    with _connect(piece.path) as db:
        for row_id, fetch in _rows(db, piece.start, piece.stop):
            row = None
            try:
                row = fetch()
                if row.natoms > config.max_atoms:
                    yield RawRecord(
                        row_id,
                        reason="too_large",
                        error=f"{row.natoms} atoms, more than max_atoms {config.max_atoms}",
                    )
                    continue
                info = {**_scalars(row.get("data") or {}), **row.key_value_pairs}
                structure_id, frame_id = pick_ids(info, piece.name, row_id, config)
                frame = frame_from_atoms(
                    row.toatoms(),
                    frame_id=frame_id,
                    structure_id=structure_id,
                    source=str(info.get("source", "")),
                )
                yield RawRecord(row_id, frame=frame)
            except Exception as exc:  # a malformed row is quarantined as parse_error
                yield RawRecord(
                    row_id,
                    error=f"{type(exc).__name__}: {exc}",
                    raw=None if row is None else str(dict(row))[:4000],
                )


def _scalars(data: dict) -> dict:
    """The text and number entries of a row's data (fairchem keeps ids such as `sid` there)."""
    return {
        k: v
        for k, v in data.items()
        if isinstance(v, (str, int, float)) and not isinstance(v, bool)
    }


READER = Reader(plan=plan, read=read)
