"""`--format auto`: pick a reader by file name and content; expand directories into the files they hold."""

from __future__ import annotations

import os
import re
from pathlib import Path

from foundation.data_prep.readers.base import ReaderError, open_binary

_SNIFF = 65536


def _head(path: str) -> bytes:
    try:
        with open_binary(path) as fh:
            return fh.read(_SNIFF)
    except (OSError, EOFError) as exc:
        raise ReaderError(
            f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})"
        ) from None


def _looks_like_extxyz(head: bytes) -> bool:
    lines = head.split(b"\n", 2)
    return len(lines) >= 2 and lines[0].strip().isdigit() and int(lines[0]) > 0


def _json_kind(head: bytes) -> str | None:
    if re.search(rb'"@class"\s*:\s*"ComputedStructureEntry"', head):
        return "alexandria"
    if re.search(rb'"structure"\s*:\s*\{', head) and re.search(
        rb'"(uncorrected|corrected)_total_energy"|"force"', head
    ):
        return "mptrj"
    if re.search(rb'"numbers"\s*:', head) and re.search(rb'"(unique_id|ctime)"\s*:', head):
        return "asedb"
    return None


def detect_format(path: str) -> str | None:
    """The reader for one file, from its name and first bytes; None when nothing matches."""
    name = os.path.basename(path).lower()
    stem = re.sub(r"\.(gz|bz2)$", "", name)
    if stem.endswith(".aselmdb"):
        return "asedb"
    if stem.endswith(".records.jsonl"):
        return "records"
    head = _head(path)
    if head.startswith(b"SQLite format 3\x00"):
        return "asedb"
    if b"<modeling>" in head[:4096]:
        return "vasp-xml"
    if "outcar" in stem and (b"vasp." in head[:4096] or b"VASP" in head[:4096]):
        return "vasp-outcar"
    if head.lstrip()[:1] in (b"{", b"["):
        return _json_kind(head)
    if _looks_like_extxyz(head):
        return "extxyz"
    return None


def expand_inputs(paths: list[str], fmt: str) -> list[tuple[str, str, str]]:
    """(file, format, name) for every input; directories are searched recursively (sorted) for readable files.

    A file's name (used in ids and messages) is its base name, or DIR/RELPATH for a file found in a
    directory input DIR; when two names collide, every name is the path relative to the inputs' common
    directory. A named file that is missing or whose format cannot be detected is an error naming the file.
    """
    out: list[tuple[str, str, str]] = []
    for path in paths:
        if os.path.isdir(path):
            top = Path(path).resolve()
            for file in sorted(p for p in top.rglob("*") if p.is_file()):
                kind = fmt if fmt != "auto" else detect_format(str(file))
                if kind is not None:
                    out.append((str(file), kind, str(Path(top.name) / file.relative_to(top))))
            continue
        if not os.path.exists(path):
            raise ReaderError(f"{path}: no such file or directory")
        kind = fmt if fmt != "auto" else detect_format(path)
        if kind is None:
            raise ReaderError(
                f"{path}: cannot tell its format (extxyz, MPtrj JSON, Alexandria entries JSON, OUTCAR, vasprun.xml, ASE db); "
                "pass --format"
            )
        out.append((path, kind, os.path.basename(path)))
    if not out:
        raise ReaderError(f"no readable input files in {paths}")
    if len({name for _, _, name in out}) < len(out):
        absolute = [os.path.abspath(f) for f, _, _ in out]
        root = os.path.commonpath([os.path.dirname(a) for a in absolute])
        out = [(f, kind, os.path.relpath(a, root)) for (f, kind, _), a in zip(out, absolute)]
    return out
