"""Seed structures that ship with ASE and pymatgen (no downloads), and their decoration with other elements.

Three sources, each a list of `Seed` in a fixed order (so a seed index means the same structure everywhere):
- ASE's elemental reference states (`ase.build.bulk(symbol)`), named `bulk-<El>`;
- ASE's `dcdft` collection (elemental crystals at WIEN2k-PBE volumes), named `dcdft-<El>`;
- pymatgen's AFLOW prototypes (aflow_prototypes.json.gz), decorated with other elements and scaled to a
  volume the new elements fit in, named `aflow-<aflow label>-<formula>` once decorated.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
from dataclasses import dataclass
from functools import cache

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, chemical_symbols, covalent_radii
from ase.geometry import get_distances

AFLOW_PROTOTYPES = ("pymatgen.analysis", "prototypes/aflow_prototypes.json.gz")
MIN_RADIUS = 0.5  # A

# Prototypes of metals and intermetallics (fcc, bcc, hcp and simple cubic with their ordered superstructures),
# by Strukturbericht designation: the ones a pair potential for metals such as EMT describes sensibly.
METALLIC_PROTOTYPES = frozenset(
    {
        "A1",
        "A2",
        "A3",
        "A_h",
        "L1_2",
        "L1_0",
        "L1_1",
        "L1_3",
        "L6_0",
        "B2",
        "B11",
        "B19",
        "B32",
        "D0_3",
        "D0_19",
        "D0_22",
        "D0_a",
        "L2_1",
        "A15",
        "C15",
        "B_h",
    }
)


@dataclass(frozen=True)
class Seed:
    """A seed structure; `decorate` seeds are prototypes whose species are replaced by chosen elements."""

    name: str
    atoms: Atoms
    decorate: bool = False
    strukturbericht: str = ""


def _prototype_atoms(snl: dict) -> Atoms | None:
    """An ordered prototype from its pymatgen StructureNL dict, read without importing pymatgen."""
    sites = snl["sites"]
    if any(
        len(site["species"]) != 1 or site["species"][0].get("occu", 1.0) != 1.0 for site in sites
    ):
        return None
    symbols = [site["species"][0]["element"] for site in sites]
    cell = np.asarray(snl["lattice"]["matrix"], dtype=np.float64)
    return Atoms(
        symbols=symbols, scaled_positions=[site["abc"] for site in sites], cell=cell, pbc=True
    )


@cache
def aflow_prototypes(max_atoms: int = 16) -> tuple[Seed, ...]:
    """pymatgen's ordered AFLOW prototypes with at most `max_atoms` atoms, in file order."""
    resource = importlib.resources.files(AFLOW_PROTOTYPES[0]).joinpath(AFLOW_PROTOTYPES[1])
    with resource.open("rb") as raw, gzip.open(raw, "rt") as fh:
        entries = json.load(fh)
    seeds = []
    for entry in entries:
        atoms = _prototype_atoms(entry["snl"])
        if atoms is not None and len(atoms) <= max_atoms:
            seeds.append(
                Seed(
                    name=f"aflow-{entry['tags']['aflow']}",
                    atoms=atoms,
                    decorate=True,
                    strukturbericht=str(entry["tags"].get("strukturbericht", "")),
                )
            )
    return tuple(seeds)


def elemental_seeds(elements: tuple[str, ...], max_atoms: int = 16) -> tuple[Seed, ...]:
    """ASE's reference-state crystals and dcdft crystals of `elements` (those ASE can build)."""
    from ase.collections import dcdft

    seeds = []
    for symbol in elements:
        try:
            seeds.append(Seed(name=f"bulk-{symbol}", atoms=bulk(symbol)))
        except (ValueError, KeyError, NotImplementedError, TypeError):
            pass  # reference state is a molecule or a structure bulk() cannot build
    dcdft_names = set(dcdft.names)
    for symbol in elements:
        if symbol in dcdft_names:
            atoms = dcdft[symbol]
            if len(atoms) <= max_atoms:
                seeds.append(
                    Seed(
                        name=f"dcdft-{symbol}",
                        atoms=Atoms(atoms.numbers, atoms.positions, cell=atoms.cell, pbc=True),
                    )
                )
    return tuple(seeds)


def seed_catalogue(
    elements: tuple[str, ...], metallic_only: bool, max_atoms: int = 16
) -> tuple[Seed, ...]:
    """Every seed a teacher labelling `elements` can use: elemental crystals, then prototypes."""
    prototypes = [
        s
        for s in aflow_prototypes(max_atoms)
        if len(set(s.atoms.get_chemical_symbols())) <= len(elements)
        and (not metallic_only or s.strukturbericht in METALLIC_PROTOTYPES)
    ]
    return elemental_seeds(elements, max_atoms) + tuple(prototypes)


@cache
def atomic_volume(number: int) -> float:
    """Volume per atom (A^3) of the element's ASE reference crystal, else of close-packed covalent spheres."""
    try:
        atoms = bulk(chemical_symbols[number])
        return float(atoms.get_volume() / len(atoms))
    except (ValueError, KeyError, NotImplementedError, TypeError):
        diameter = 2.0 * covalent_radii[number]
        return float(diameter**3 / np.sqrt(2.0))


def min_distance_ratio(atoms: Atoms) -> float:
    """Smallest interatomic distance over the sum of the two covalent radii (periodic images included).

    Radii are floored at MIN_RADIUS so that a ratio bound is also a bound in Angstrom for hydrogen pairs.
    """
    radii = np.maximum(covalent_radii[atoms.numbers], MIN_RADIUS)
    shifts = np.array(
        [
            (i, j, k)
            for i in (-1, 0, 1)
            for j in (-1, 0, 1)
            for k in (-1, 0, 1)
            if (i, j, k) != (0, 0, 0)
        ]
    )
    self_image = np.linalg.norm(shifts @ np.asarray(atoms.cell), axis=1).min()
    best = self_image / (2 * radii.max())
    if len(atoms) > 1:
        _, dist = get_distances(atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
        ratio = dist / (radii[:, None] + radii[None, :])
        np.fill_diagonal(ratio, np.inf)
        best = min(best, ratio.min())
    return float(best)


def decorate(
    seed: Seed, elements: tuple[str, ...], rng: np.random.Generator, min_distance: float = 0.95
) -> tuple[str, Atoms]:
    """(structure name, atoms) of a seed; prototypes get distinct random elements and a volume that fits them.

    The volume is the sum of the new elements' atomic volumes (Vegard-like), enlarged where needed so that no
    two atoms sit closer than `min_distance` times the sum of their covalent radii.
    """
    atoms = seed.atoms.copy()
    if not seed.decorate:
        return seed.name, atoms
    species = list(dict.fromkeys(atoms.get_chemical_symbols()))
    chosen = rng.choice(len(elements), size=len(species), replace=False)
    mapping = {old: atomic_numbers[elements[k]] for old, k in zip(species, chosen)}
    atoms.numbers = [mapping[s] for s in atoms.get_chemical_symbols()]
    target = sum(atomic_volume(int(z)) for z in atoms.numbers)
    atoms.set_cell(atoms.cell * (target / atoms.get_volume()) ** (1 / 3), scale_atoms=True)
    ratio = min_distance_ratio(atoms)
    if ratio < min_distance:
        atoms.set_cell(atoms.cell * (min_distance / ratio), scale_atoms=True)
    return f"{seed.name}-{atoms.get_chemical_formula(mode='metal', empirical=True)}", atoms
