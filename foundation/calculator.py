"""FoundationCalculator: any Potential as an ASE calculator (energy, free_energy, per-atom energies, forces, stress),
and batched prediction over many structures.

Inputs are ASE `Atoms` or pymatgen `Structure`/`Molecule` (converted with pymatgen's AseAtomsAdaptor). Graphs are
built with the data pipeline's own collate_frames on the calculator's device (on a GPU the neighbour search runs
there), in the potential's dtype (at least float32), so `FoundationCalculator(potential.double())` gives float64
energies for finite-difference checks. Stress is returned in ASE's Voigt order (xx, yy, zz, yz, xz, xy), eV/A^3,
ASE sign, and only for structures periodic along all three axes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.data import chemical_symbols
from ase.stress import full_3x3_to_voigt_6_stress

from foundation.data.batch import collate_frames
from foundation.data.schema import Frame
from foundation.errors import UserError
from foundation.models.loading import load_potential
from foundation.models.potential import Potential
from foundation.train.sampler import pack

DEFAULT_MAX_ATOMS = 2048  # atoms per batch of `predict`


def as_atoms(structure: Any) -> Atoms:
    """ASE Atoms from Atoms (returned as is) or a pymatgen Structure / Molecule; anything else is a TypeError."""
    if isinstance(structure, Atoms):
        return structure
    if type(structure).__module__.startswith("pymatgen."):
        from pymatgen.io.ase import AseAtomsAdaptor

        return AseAtomsAdaptor.get_atoms(structure)
    raise TypeError(
        f"expected ase.Atoms or a pymatgen Structure/Molecule, got {type(structure).__name__}"
    )


def _frame(atoms: Atoms, index: int, source: str) -> Frame:
    return Frame(
        numbers=atoms.numbers,
        positions=atoms.positions,
        cell=np.asarray(atoms.cell[:]),
        pbc=atoms.pbc,
        frame_id=str(index),
        structure_id=str(index),
        source=source,
    )


class UnknownSource(UserError, ValueError):
    """A data source the potential has no energy reference for."""


def choose_source(potential: Potential, source: str | None) -> str:
    """The data source a potential predicts energies for: `source`, else its default (heads.default_source, else
    its first source); "" for a single-reference potential. An unknown source is an UnknownSource error."""
    sources = list(potential.sources)
    if not sources:
        if source:
            raise UnknownSource(
                f"source {source!r}: this potential has one energy reference for every frame "
                "(no heads.sources); leave source unset"
            )
        return ""
    if source is None:
        return potential.config.heads.energy_source()
    if source not in sources:
        raise UnknownSource(
            f"unknown source {source!r}: this potential has energy references for {sources}"
        )
    return source


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to("cpu", torch.float64).numpy()


class FoundationCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "energies", "forces", "stress"]

    def __init__(
        self,
        potential: Potential,
        device: str | torch.device | None = None,
        max_atoms: int = DEFAULT_MAX_ATOMS,
        source: str | None = None,
        **kwargs,
    ):
        """`source`: which data source's energies to predict, for a potential trained on several (default: the
        release's own, `heads.default_source`); forces and stress are the same for every source."""
        super().__init__(**kwargs)
        self.device = (
            torch.device(device) if device is not None else next(potential.parameters()).device
        )
        self.potential = potential.to(self.device).eval()
        self.max_atoms = max_atoms
        self.source = choose_source(potential, source)

    def _check(self, properties: Iterable[str], periodic: bool) -> None:
        provided = set(self.potential.computable)
        for prop in properties:
            key = "energy" if prop == "free_energy" else prop
            if key not in provided:
                raise PropertyNotImplementedError(
                    f"this potential does not predict {prop!r} (it predicts {sorted(provided)})"
                )
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError(
                "stress needs a structure periodic along all three axes"
            )

    def get_property(self, name: str, atoms: Any = None, allow_calculation: bool = True):
        return super().get_property(
            name, None if atoms is None else as_atoms(atoms), allow_calculation
        )

    def calculate(
        self,
        atoms: Any = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(None if atoms is None else as_atoms(atoms), properties, system_changes)
        self._check(properties, bool(self.atoms.pbc.all()))
        # Everything comes together (ASE asks for energy, forces and stress in turn); stress when periodic.
        self.results = self._predict_batch([self.atoms])[0]

    def predict(
        self, structures: Sequence[Any], *, max_atoms: int | None = None
    ) -> list[dict[str, Any]]:
        """Results of many structures (ASE Atoms or pymatgen Structures), in input order: per frame a dict with
        energy and free_energy (eV), energies (N,) eV, forces (N, 3) eV/A and, for structures periodic along all
        three axes, stress (6,) Voigt eV/A^3, as far as the potential predicts them. Structures are packed in order
        into batches of at most `max_atoms` atoms (default the calculator's; a larger structure sits alone)."""
        atoms = [as_atoms(s) for s in structures]
        natoms = np.array([len(a) for a in atoms], dtype=np.int64)
        batches = pack(np.arange(len(atoms)), natoms, max_atoms or self.max_atoms) if atoms else []
        results: list[dict[str, Any]] = []
        for indices in batches:
            results += self._predict_batch([atoms[i] for i in indices], first=indices[0])
        return results

    def _check_elements(self, atoms: list[Atoms]) -> None:
        """A multi-source potential predicts a source's energy only for elements that source's frames had."""
        head = self.potential.energy_head
        if not self.source or head is None:
            return
        known = head.source_elements[self.potential.sources.index(self.source)].cpu().numpy()
        for structure in atoms:
            missing = sorted({int(z) for z in structure.numbers if not known[int(z)]})
            if missing:
                names = ", ".join(chemical_symbols[z] for z in missing)
                have = [
                    s
                    for s, row in zip(self.potential.sources, head.source_elements.cpu().numpy())
                    if row[missing].all()
                ]
                raise ValueError(
                    f"source {self.source!r} has no energy reference for {names} (its training frames "
                    f"held none); sources that have: {have or 'none'}"
                )

    def _predict_batch(self, atoms: list[Atoms], first: int = 0) -> list[dict[str, Any]]:
        provided = set(self.potential.computable)
        periodic = [bool(a.pbc.all()) for a in atoms]
        compute = (
            {"energy"}
            | ({"energies", "forces"} & provided)
            | ({"stress"} & provided if any(periodic) else set())
        )
        self._check_elements(atoms)
        frames = [_frame(a, first + n, self.source) for n, a in enumerate(atoms)]
        batch = collate_frames(
            frames,
            cutoff=self.potential.cutoff,
            max_neighbours=self.potential.max_neighbours,
            dtype=self.potential.geometry_dtype,
            device=self.device,
            sources=self.potential.sources,
        )
        out = {key: _numpy(value) for key, value in self.potential(batch, compute=compute).items()}
        bounds = np.cumsum([0] + [len(a) for a in atoms])
        results = []
        for b in range(len(atoms)):
            lo, hi = bounds[b], bounds[b + 1]
            result: dict[str, Any] = {
                "energy": float(out["energy"][b]),
                "free_energy": float(out["energy"][b]),
            }
            if "energies" in out:
                result["energies"] = out["energies"][lo:hi]
            if "forces" in out:
                result["forces"] = out["forces"][lo:hi]
            if "stress" in out and periodic[b]:
                result["stress"] = full_3x3_to_voigt_6_stress(out["stress"][b])
            results.append(result)
        return results


def load_calculator(
    model: str | os.PathLike,
    *,
    which: str = "best",
    device: str | None = None,
    source: str | None = None,
) -> FoundationCalculator:
    """An ASE calculator for a release directory (SHA256SUMS verified: a changed weights or config file is a
    ReleaseError), a model name in the model directories ($FOUNDATION_MODELS, foundation/models/loading.py) or
    a training run directory (its `which` export: "best" or "last"). `source`: the data source whose energies
    to predict, for a model trained on several (default: its energy_source; an unknown one is an error)."""
    return FoundationCalculator(load_potential(model, which), device=device, source=source)
