"""Non-equilibrium geometries from a seed: repeat to a minimum size, symmetric strain, rattle, short relaxations.

Every random choice draws from the `numpy.random.Generator` passed in, so a structure is a pure function of
its generator's seed.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.filters import UnitCellFilter
from ase.optimize import FIRE
from foundation.data_prep.synth.seeds import min_distance_ratio
from foundation.data_prep.synth.teachers import snapshot


def repeat_to_min_atoms(atoms: Atoms, min_atoms: int) -> Atoms:
    """Repeat the cell along its currently shortest direction until it holds at least `min_atoms` atoms."""
    reps = np.ones(3, dtype=int)
    lengths = atoms.cell.lengths()
    while len(atoms) * reps.prod() < min_atoms:
        reps[np.argmin(lengths * reps)] += 1
    return atoms.repeat(tuple(int(r) for r in reps))


def strain(atoms: Atoms, rng: np.random.Generator, sigma: float) -> Atoms:
    """A copy under a random symmetric strain (Gaussian components of standard deviation `sigma`)."""
    eps = rng.normal(0.0, sigma, size=(3, 3))
    eps = 0.5 * (eps + eps.T)
    out = atoms.copy()
    out.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return out


def rattle(
    atoms: Atoms,
    rng: np.random.Generator,
    amplitude: tuple[float, float],
    min_distance: float = 0.7,
    attempts: int = 20,
) -> Atoms:
    """A copy with Gaussian displacements of a standard deviation drawn uniformly from `amplitude` (A).

    Draws again (from the same generator) while two atoms come closer than `min_distance` times the sum of
    their covalent radii, halving the amplitude after every five failed draws.
    """
    scale = rng.uniform(*amplitude)
    for attempt in range(attempts):
        out = atoms.copy()
        out.positions += rng.normal(0.0, scale * 0.5 ** (attempt // 5), size=out.positions.shape)
        if min_distance_ratio(out) >= min_distance:
            return out
    return atoms.copy()


def relaxation_trajectory(
    atoms: Atoms, steps: int, keep_every: int, fmax: float = 0.05
) -> list[tuple[int, Atoms]]:
    """FIRE relaxation of positions and cell (ase UnitCellFilter) for at most `steps` steps.

    `atoms` must carry its teacher calculator. Returns (step, labelled snapshot) for steps 0, k, 2k, ...
    (k = `keep_every`), the labels being the teacher's at exactly that geometry.
    """
    kept: list[tuple[int, Atoms]] = []
    optimizer = FIRE(UnitCellFilter(atoms), logfile=None)
    for step, _ in enumerate(optimizer.irun(fmax=fmax, steps=steps)):
        if step % keep_every == 0:
            kept.append((step, snapshot(atoms)))
    return kept
