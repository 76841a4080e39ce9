"""Conversions between ase.Atoms and Frame (shared by readers, the calculator and tests)."""

from __future__ import annotations

from typing import Any

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from foundation.data.schema import Frame


def _stress_3x3(stress: Any) -> np.ndarray:
    stress = np.asarray(stress, dtype=np.float64)
    if stress.shape == (6,):
        return voigt_6_to_full_3x3_stress(stress)
    return stress.reshape(3, 3)


def frame_from_atoms(
    atoms: Atoms,
    *,
    frame_id: str,
    structure_id: str,
    source: str = "",
    properties: dict[str, Any] | None = None,
) -> Frame:
    """A Frame from an Atoms object; labels come from its calculator results (ASE units and stress sign)."""
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    magmoms = results.get("magmoms")
    if magmoms is None and "magmoms" in atoms.arrays:
        magmoms = atoms.arrays["magmoms"]
    energy = results.get("energy", results.get("free_energy"))
    return Frame(
        numbers=atoms.numbers,
        positions=atoms.positions,
        cell=np.asarray(atoms.cell[:]),
        pbc=atoms.pbc,
        frame_id=frame_id,
        structure_id=structure_id,
        source=source,
        energy=None if energy is None else float(energy),
        forces=results.get("forces"),
        stress=None if results.get("stress") is None else _stress_3x3(results["stress"]),
        magmoms=None if magmoms is None else np.asarray(magmoms, dtype=np.float64).reshape(-1),
        properties=dict(properties or {}),
    )


def atoms_from_frame(frame: Frame) -> Atoms:
    """An Atoms object (no calculator) with the frame's structure."""
    return Atoms(numbers=frame.numbers, positions=frame.positions, cell=frame.cell, pbc=frame.pbc)
