"""`prep_objects`: in-memory frames (ASE Atoms with a calculator's results, pymatgen Structure or
ComputedStructureEntry) prepared exactly as files are.

The objects are converted one at a time and staged as OUT/_work/objects/NAME.records.jsonl (readers/records.py),
then `run_prep` runs the one pipeline on that file: validation, quarantine, dedup, split, shards, statistics,
manifest. An object that cannot become a frame is quarantined with its index and the reason; the iterable is
consumed once, so a generator of millions of objects never sits in memory.

Conversions: Atoms -> `frame_from_atoms` (its calculator's results, ASE units and sign; ids from atoms.info as for
extxyz); ComputedStructureEntry -> its dict through the Alexandria reader's conversion (uncorrected total energy,
data forces / stress kBar VASP sign); Structure -> pymatgen's AseAtomsAdaptor, labels from `properties["energy"]`
(eV), the site property `forces` (eV/A) and `properties["stress"]` (3x3 or Voigt, eV/A^3, ASE's sign), each optional.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import WORK_NAME, PrepResult, check_out_dir, run_prep
from foundation.data_prep.readers.alexandria import frame_from_entry_dict
from foundation.data_prep.readers.base import pick_ids
from foundation.data_prep.readers.records import SUFFIX, record_line

from foundation.config import from_dict
from foundation.data.ase_convert import frame_from_atoms
from foundation.data.schema import Frame
from foundation.files import atomic_path
from foundation.locking import DirectoryLock

STAGE_DIR = "objects"


def frame_from_object(obj: Any, name: str, index: int, config: PrepConfig) -> Frame:
    """One in-memory object -> Frame (conversions in the module doc; source: an Atoms' info["source"], else none
    until the prep config's `source` tags it); TypeError for anything else."""
    from pymatgen.core import Structure
    from pymatgen.entries.computed_entries import ComputedStructureEntry

    if isinstance(obj, ComputedStructureEntry):
        return frame_from_entry_dict(obj.as_dict(), name, index, config, source="")
    if isinstance(obj, Structure):
        obj = _atoms_from_structure(obj)
    if not isinstance(obj, Atoms):
        raise TypeError(
            f"a {type(obj).__module__}.{type(obj).__name__} is neither an ase.Atoms nor a pymatgen "
            "Structure / ComputedStructureEntry"
        )
    structure_id, frame_id = pick_ids(obj.info, name, index, config)
    return frame_from_atoms(
        obj, frame_id=frame_id, structure_id=structure_id, source=str(obj.info.get("source", ""))
    )


def _atoms_from_structure(structure: Any) -> Atoms:
    from pymatgen.io.ase import AseAtomsAdaptor

    atoms = AseAtomsAdaptor.get_atoms(structure)
    forces = structure.site_properties.get("forces")
    results = {
        "energy": structure.properties.get("energy"),
        "forces": None if forces is None else np.asarray(forces, dtype=np.float64),
        "stress": structure.properties.get("stress"),
    }
    atoms.calc = SinglePointCalculator(atoms, **{k: v for k, v in results.items() if v is not None})
    return atoms


def stage_objects(objects: Iterable[Any], path: Path, config: PrepConfig) -> int:
    """Write the objects as staged records at `path` (atomically); return how many were staged."""
    name = path.name[: -len(SUFFIX)]
    count = 0
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for index, obj in enumerate(objects):
            try:
                fh.write(record_line(index, frame=frame_from_object(obj, name, index, config)))
            except Exception as exc:  # quarantined by the pipeline as parse_error, with its index
                fh.write(
                    record_line(index, error=f"{type(exc).__name__}: {exc}", raw=repr(obj)[:4000])
                )
            count += 1
    return count


def prep_objects(
    objects: Iterable[Any], *, out: str, name: str = "objects", **options: Any
) -> PrepResult:
    """Prepare a dataset at `out` from in-memory objects; `options` are PrepConfig fields (`foundation prep`'s
    options, e.g. source="my-dft-pbe", container="both", shard_size=..., split={...}); `source` tags every frame
    (else each Atoms' info["source"]). Frame ids default to NAME:INDEX. Returns what `run_prep` returns."""
    if {"inputs", "format"} & set(options):
        raise ValueError("prep_objects takes the objects themselves: no inputs or format option")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(
            f"prep_objects: name {name!r} must be letters, digits, '._-' (it names the staged file)"
        )
    config = from_dict(
        PrepConfig, {**options, "out": str(out), "format": "records"}, origin="prep_objects options"
    )
    check_out_dir(Path(out))
    staged = Path(out) / WORK_NAME / STAGE_DIR / f"{name}{SUFFIX}"
    with DirectoryLock(out):  # never beside a running prep of the same directory
        if stage_objects(objects, staged, config) == 0:
            raise ValueError("prep_objects: no objects given")
    config.inputs = [str(staged)]
    return run_prep(config)
