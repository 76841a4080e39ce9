"""A downstream task inside the pre-training domain: a property of the teacher's own alloys, computed with the
teacher. The structures are the synth catalogue's decorated prototypes (the alloys the pre-training frames are
rattled and strained copies of, drawn from another random stream); the property is the bulk modulus of a
Birch-Murnaghan fit of the teacher's E(V). Written as a prepared dataset whose frames carry `bulk_modulus`, so
`foundation eval` fine-tunes on it as a `property` task, with few labels."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from ase.units import GPa
from foundation.data_prep.synth.seeds import decorate, seed_catalogue
from foundation.data_prep.synth.teachers import make_calculator, one_torch_thread, resolve_teacher

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.manifest import Manifest
from foundation.data.writer import write_dataset

log = logging.getLogger(__name__)
PROPERTY = "bulk_modulus"
STREAM = 0xB0  # a random stream of its own: these alloys are not the pre-training frames' draws
EOS_STRAIN = 0.04
EOS_POINTS = 7


def teacher_bulk_modulus(atoms: Atoms, calc: Calculator) -> float | None:
    """B (GPa) of `atoms` from the teacher's energies of isotropically scaled cells, or None when the E(V) curve
    has no minimum inside the scanned range or the fit is not physical."""
    volume = atoms.get_volume()
    volumes, energies = [], []
    for v in volume * np.linspace(1 - EOS_STRAIN, 1 + EOS_STRAIN, EOS_POINTS):
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell[:] * (v / volume) ** (1 / 3), scale_atoms=True)
        scaled.calc = calc
        volumes.append(scaled.get_volume())
        energies.append(scaled.get_potential_energy())
    if int(np.argmin(energies)) in (0, EOS_POINTS - 1):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v0, _, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
    except (RuntimeError, ValueError):
        return None
    b_gpa = float(b / GPa)
    return (
        b_gpa if np.isfinite(b_gpa) and b_gpa > 0 and min(volumes) <= v0 <= max(volumes) else None
    )


def teacher_property_dataset(
    out: str | os.PathLike, count: int, *, teacher: str = "emt", seed: int = 0, max_atoms: int = 16
) -> Manifest:
    """`count` of the teacher's alloys (decorated prototypes at the volume their elements fit in) labelled with
    their teacher bulk modulus, as a one-split ("all") prepared dataset at `out`. Structures whose E(V) has no
    minimum in range are skipped (and counted in the log)."""
    chosen = resolve_teacher(teacher)
    seeds = seed_catalogue(chosen.elements, chosen.metallic_only, max_atoms)
    calc = make_calculator(chosen)
    frames, skipped, index = [], 0, 0
    with one_torch_thread(chosen):
        while len(frames) < count:
            if index >= 20 * count:
                raise RuntimeError(
                    f"only {len(frames)} of {count} alloys gave a bulk modulus in {index} tries"
                )
            rng = np.random.default_rng([seed, STREAM, index])
            name, atoms = decorate(seeds[rng.integers(len(seeds))], chosen.elements, rng)
            index += 1
            b = teacher_bulk_modulus(atoms, calc)
            if b is None:
                skipped += 1
                continue
            atoms.calc = None
            frames.append(
                frame_from_atoms(
                    atoms,
                    frame_id=f"{name}-{index - 1}",
                    structure_id=name,
                    source=f"{chosen.source}-eos",
                    properties={PROPERTY: b},
                )
            )
    if skipped:
        log.info(
            "teacher property: %d alloys without an E(V) minimum in +-%g%% volume skipped",
            skipped,
            100 * EOS_STRAIN,
        )
    Path(out).mkdir(parents=True, exist_ok=True)
    return write_dataset(
        out,
        {"all": frames},
        extra={
            "task": {
                "property": PROPERTY,
                "unit": "GPa",
                "teacher": chosen.name,
                "method": f"Birch-Murnaghan fit of the teacher's E(V), {EOS_POINTS} points, +-{EOS_STRAIN:g} volume",
            }
        },
    )
