"""FoundationCalculator: any Potential as an ASE calculator (energy, free_energy, forces, stress).

The graph is built with the data pipeline's own collate_frames, in the potential's dtype (at least float32), so
`FoundationCalculator(potential.double())` gives float64 energies for finite-difference checks.
Stress is returned in ASE's Voigt order (xx, yy, zz, yz, xz, xy), eV/A^3, ASE sign.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from foundation.data.batch import collate_frames
from foundation.data.schema import Frame
from foundation.models.potential import Potential


class FoundationCalculator(Calculator):
    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, potential: Potential, device: str | torch.device | None = None, **kwargs):
        super().__init__(**kwargs)
        self.device = torch.device(device) if device is not None else next(potential.parameters()).device
        self.potential = potential.to(self.device).eval()

    def calculate(self, atoms: Atoms | None = None, properties: Sequence[str] = ("energy",),
                  system_changes: Sequence[str] = all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        provided = set(self.potential.outputs)
        for prop in properties:
            key = "energy" if prop == "free_energy" else prop
            if key not in provided:
                raise PropertyNotImplementedError(f"this potential does not predict {prop!r} "
                                                  f"(it predicts {sorted(provided)})")
        if "stress" in properties and not atoms.pbc.all():
            raise PropertyNotImplementedError("stress needs a structure periodic along all three axes")
        # Energy and forces come together (ASE asks for both in turn); stress when asked or cheap to add.
        compute = {"energy"} | ({"forces"} & provided)
        if "stress" in provided and atoms.pbc.all():
            compute.add("stress")
        frame = Frame(numbers=atoms.numbers, positions=atoms.positions, cell=np.asarray(atoms.cell[:]),
                      pbc=atoms.pbc, frame_id="ase", structure_id="ase")
        dtype = self.potential.geometry_dtype
        batch = collate_frames([frame], cutoff=self.potential.cutoff, max_neighbours=self.potential.max_neighbours,
                               dtype=dtype).to(self.device, dtype)
        out = self.potential(batch, compute=compute)
        energy = float(out["energy"][0])
        self.results = {"energy": energy, "free_energy": energy}
        if "forces" in out:
            self.results["forces"] = out["forces"].detach().to("cpu", torch.float64).numpy()
        if "stress" in out:
            stress = out["stress"][0].detach().to("cpu", torch.float64).numpy()
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
