"""Shared helpers of the data_prep tests: reading whole files through a reader, building inputs."""

from __future__ import annotations

import json
from pathlib import Path

from foundation.data_prep.config import PrepConfig
from foundation.data_prep.readers import READERS
from foundation.data_prep.readers.base import EV_PER_A3_IN_GPA


def read_records(path, fmt: str, chunk_frames: int = 10_000, **options):
    """Every record of a file, through the reader's plan and read, in order."""
    config = PrepConfig(**options)
    return [
        r
        for piece in READERS[fmt].plan(str(path), Path(path).name, chunk_frames)
        for r in READERS[fmt].read(piece, config)
    ]


def prep_config(inputs, out, **options) -> PrepConfig:
    return PrepConfig(inputs=[str(i) for i in inputs], out=str(out), progress=False, **options)


def mptrj_entry(atoms, material_id: str) -> dict:
    """One frame in the MPtrj figshare layout from an ASE frame with labels: stress in kBar, VASP sign."""
    from pymatgen.io.ase import AseAtomsAdaptor

    energy = (
        float(atoms.info["energy"])
        if "energy" in atoms.info
        else float(atoms.get_potential_energy())
    )
    stress_ase = atoms.get_stress(voigt=False)
    return {
        "structure": AseAtomsAdaptor.get_structure(atoms).as_dict(),
        "uncorrected_total_energy": energy,
        "corrected_total_energy": energy - 1.25,
        "energy_per_atom": (energy - 1.25) / len(atoms),
        "ef_per_atom": -0.5,
        "force": atoms.get_forces().tolist(),
        "stress": (-stress_ase * EV_PER_A3_IN_GPA * 10.0).tolist(),
        "magmom": None,
        "bandgap": 0.0,
        "mp_id": material_id,
    }


def write_mptrj(path, frames) -> dict:
    """Write real extxyz frames (with mptrj ids) as an MPtrj-layout JSON; return the layout dict."""
    layout: dict = {}
    for atoms in frames:
        material = atoms.info["mptrj_traj_id"]
        layout.setdefault(material, {})[atoms.info["mptrj_snapshot_id"]] = mptrj_entry(
            atoms, material
        )
    Path(path).write_text(json.dumps(layout))
    return layout


def shard_checksums(directory) -> dict[str, str]:
    from foundation.data.manifest import Manifest

    return {s.path: s.sha256 for s in Manifest.load(directory).shards}


def first_frames(path, count: int):
    import ase.io

    return list(ase.io.iread(str(path), index=f":{count}"))
