"""Readers of raw DFT outputs; each cuts a file into pieces and streams its records as Frames."""

from __future__ import annotations

from foundation.data_prep.readers import alexandria, asedb, extxyz, mptrj, records, vasp
from foundation.data_prep.readers.base import Piece, RawRecord, Reader, ReaderError

READERS: dict[str, Reader] = {
    "extxyz": extxyz.READER,
    "mptrj": mptrj.READER,
    "vasp-outcar": vasp.OUTCAR_READER,
    "vasp-xml": vasp.VASPRUN_READER,
    "asedb": asedb.READER,
    "alexandria": alexandria.READER,
    "records": records.READER,
}

__all__ = ["READERS", "Piece", "RawRecord", "Reader", "ReaderError"]
