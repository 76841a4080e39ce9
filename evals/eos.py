"""Bulk modulus from an equation-of-state fit: energies of isotropically scaled cells, Birch-Murnaghan fit
with ASE's EquationOfState, B in GPa."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.eos import EquationOfState
from ase.units import GPa


class EosFitError(RuntimeError):
    """An E(V) curve that gives no physical bulk modulus; `reason` is a short code for the report."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass
class EosFit:
    """Fitted equilibrium volume per atom (A^3), energy (eV), bulk modulus (GPa) and the sampled curve."""

    v0_per_atom: float
    e0: float
    bulk_modulus: float
    volumes: list[float]
    energies: list[float]


def energy_volume_curve(
    atoms: Atoms, calc: Calculator, volume: float, strain: float, points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Energies of `atoms` scaled isotropically (fractional positions kept) to volumes volume*(1 +- strain)."""
    volumes = volume * np.linspace(1.0 - strain, 1.0 + strain, points)
    energies = []
    for v in volumes:
        scaled = atoms.copy()
        scaled.set_cell(atoms.cell * (v / atoms.get_volume()) ** (1.0 / 3.0), scale_atoms=True)
        scaled.calc = calc
        energies.append(scaled.get_potential_energy())
    return volumes, np.asarray(energies, dtype=np.float64)


def fit_bulk_modulus(
    atoms: Atoms, calc: Calculator, *, strain: float = 0.06, points: int = 11, recentre: bool = True
) -> EosFit:
    """Birch-Murnaghan fit of E(V) around the cell's volume; when the minimum lies outside the sampled
    range and `recentre` is set, sample once more around the fitted volume. Raises EosFitError."""
    volume = atoms.get_volume()
    for attempt in range(2 if recentre else 1):
        volumes, energies = energy_volume_curve(atoms, calc, volume, strain, points)
        if not np.all(np.isfinite(energies)):
            raise EosFitError("non_finite_energy", "the potential returned a non-finite energy")
        try:
            with (
                warnings.catch_warnings()
            ):  # ASE warns about what the checks below report as reasons
                warnings.simplefilter("ignore")
                v0, e0, b = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
        except Exception as exc:  # ASE raises RuntimeError/ValueError/LinAlgError on bad curves
            raise EosFitError("fit_failed", f"Birch-Murnaghan fit failed: {exc}") from exc
        if not (np.isfinite(v0) and np.isfinite(b)) or b <= 0:
            raise EosFitError(
                "no_minimum", f"E(V) has no minimum (B = {b:.3g} eV/A^3, V0 = {v0:.3g} A^3)"
            )
        inside = volumes[0] <= v0 <= volumes[-1]
        if inside:
            break
        if attempt == 0 and recentre and 0.5 * volume < v0 < 2.0 * volume:
            volume = float(v0)
            continue
        raise EosFitError(
            "minimum_outside_range",
            f"fitted V0 {v0:.3f} A^3 lies outside the sampled {volumes[0]:.3f}-{volumes[-1]:.3f} A^3",
        )
    n = len(atoms)
    return EosFit(
        v0_per_atom=float(v0) / n,
        e0=float(e0),
        bulk_modulus=float(b) / GPa,
        volumes=[float(v) / n for v in volumes],
        energies=[float(e) for e in energies],
    )
