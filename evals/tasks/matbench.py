"""Matbench structure tasks from the standard file layout (`index`, `columns` = [structure, target], `data`
with pymatgen Structure dicts) and folds in the layout of `matbench_v0.1_validation.json`
(`splits.<task>.fold_k.train|test` lists of ids). Works for any Matbench structure task file by path."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from foundation.evals.tasks.common import PropertyTask

from foundation.data.schema import Frame
from foundation.files import sha256_file

UNITS = {
    "n": "",
    "exfoliation_en": "meV/atom",
    "last phdos peak": "1/cm",
    "log10(G_VRH)": "log10(GPa)",
    "log10(K_VRH)": "log10(GPa)",
    "e_form": "eV/atom",
    "gap pbe": "eV",
}


def task_name_of(path: str | os.PathLike) -> str:
    """'matbench_dielectric' from '.../matbench_dielectric.json.gz'."""
    name = Path(path).name
    for suffix in (".gz", ".json"):
        name = name.removesuffix(suffix)
    return name


def _read_json(path: Path) -> Any:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable (gzipped) JSON file: {exc}") from exc


def frame_from_structure_dict(struct: dict[str, Any], structure_id: str, source: str) -> Frame:
    """A Frame from a pymatgen Structure dict (ordered sites only; fractional coordinates times the lattice)."""
    from ase.data import atomic_numbers

    lattice = np.asarray(struct["lattice"]["matrix"], dtype=np.float64)
    numbers, frac = [], []
    for i, site in enumerate(struct["sites"]):
        species = site["species"]
        if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-6:
            raise ValueError(
                f"site {i} is disordered ({species}); only ordered structures are supported"
            )
        symbol = species[0]["element"]
        if symbol not in atomic_numbers:
            raise ValueError(f"site {i} has unknown element {symbol!r}")
        numbers.append(atomic_numbers[symbol])
        frac.append(site["abc"])
    pbc = struct["lattice"].get("pbc", [True, True, True])
    return Frame(
        numbers=np.array(numbers),
        positions=np.asarray(frac, dtype=np.float64) @ lattice,
        cell=lattice,
        pbc=np.array(pbc, dtype=bool),
        frame_id=structure_id,
        structure_id=structure_id,
        source=source,
    )


def load_matbench(
    path: str | os.PathLike, folds_path: str | os.PathLike, *, name: str | None = None
) -> PropertyTask:
    """Read a Matbench structure task and its official folds; errors name the file and the record."""
    path, folds_path = Path(path), Path(folds_path)
    body = _read_json(path)
    if not isinstance(body, dict) or not {"index", "columns", "data"} <= set(body):
        raise ValueError(f"{path}: not a Matbench task file (needs keys index, columns, data)")
    columns = list(body["columns"])
    if len(columns) != 2 or "structure" not in columns:
        raise ValueError(f"{path}: expected columns [structure, target], got {columns}")
    s_col, t_col = columns.index("structure"), 1 - columns.index("structure")
    target = columns[t_col]
    source = task_name_of(path)
    frames = []
    for record_id, row in zip(body["index"], body["data"]):
        try:
            frame = frame_from_structure_dict(row[s_col], str(record_id), source)
            value = float(row[t_col])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: record {record_id}: {exc}") from exc
        if not np.isfinite(value):
            raise ValueError(f"{path}: record {record_id}: target {target} is not finite ({value})")
        frame.properties[target] = value
        frames.append(frame)
    folds = load_folds(folds_path, source, [f.structure_id for f in frames])
    return PropertyTask(
        name=name or source,
        property=target,
        frames=frames,
        folds=folds,
        unit=UNITS.get(target, ""),
        provenance={str(path): sha256_file(path), str(folds_path): sha256_file(folds_path)},
    )


def load_folds(folds_path: Path, task: str, ids: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Folds of `task` from a matbench_v0.1_validation.json-style file, as index arrays into `ids`."""
    splits = _read_json(folds_path).get("splits", {})
    if task not in splits:
        if len(splits) != 1:
            raise ValueError(f"{folds_path}: no splits for task {task!r} (has {sorted(splits)})")
        task = next(iter(splits))
    position = {sid: i for i, sid in enumerate(ids)}
    folds = []
    for fold_name in sorted(splits[task], key=lambda k: int(k.rsplit("_", 1)[-1])):
        pair = []
        for role in ("train", "test"):
            members = splits[task][fold_name][role]
            unknown = [m for m in members if m not in position]
            if unknown:
                raise ValueError(
                    f"{folds_path}: {fold_name}.{role} names {len(unknown)} ids absent from the task "
                    f"file, e.g. {unknown[0]!r}"
                )
            pair.append(np.array([position[m] for m in members], dtype=np.int64))
        if np.intersect1d(pair[0], pair[1]).size:
            raise ValueError(f"{folds_path}: {fold_name} has ids in both train and test")
        folds.append((pair[0], pair[1]))
    return folds
