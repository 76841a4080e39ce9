"""Quarantine rules: why a frame may not enter a dataset (a reason code and a message), or None if it may.

Reasons: parse_error and too_large (set by readers: a frame over max_atoms, a line over max_line_bytes, a record
over max_record_bytes), non_finite, shape_mismatch, unknown_element, missing_id (the record
contract of Frame.validate), missing_label (a label the dataset requires is absent), force_too_large, energy_out_of_bounds and
stress_out_of_bounds (values no material has: |E|/N or a |stress component| beyond the configured bounds),
non_positive_volume (the periodic axes span no volume/area/length), cell_too_thin (the pair searches would
need more periodic images than a frame may cost), atoms_too_close (periodic images included), truncated (set by
readers: the input ends inside the record), and duplicate_frame_id (decided at the merge, where all frame ids
are seen).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from foundation.data_prep.neighbours import closest_pair, image_shifts

from foundation.data.schema import Frame, InvalidFrame

REASONS = (
    "parse_error",
    "truncated",
    "too_large",
    "non_finite",
    "shape_mismatch",
    "unknown_element",
    "missing_id",
    "missing_label",
    "force_too_large",
    "energy_out_of_bounds",
    "stress_out_of_bounds",
    "non_positive_volume",
    "cell_too_thin",
    "atoms_too_close",
    "duplicate_frame_id",
)
_MIN_VOLUME = 1e-6  # A^3 (A^2, A for 2 or 1 periodic axes)
# Atoms x periodic image shifts that one frame's pair searches may build (about 100 MB of coordinates and tree).
# A skewed or nearly flat cell has lattice planes far closer than the cutoff and would need millions of shifts.
MAX_IMAGE_POINTS = 1 << 22


@dataclass(frozen=True)
class Rejection:
    reason: str
    message: str


def periodic_measure(cell: np.ndarray, pbc: np.ndarray) -> float:
    """Volume |det| (3 periodic axes), area (2) or length (1) spanned by the periodic lattice vectors; 1 for none."""
    vectors = np.asarray(cell)[np.asarray(pbc, dtype=bool)]
    if len(vectors) == 0:
        return 1.0
    if len(vectors) == 3:
        (a, b, c), (d, e, f), (g, h, i) = vectors.tolist()
        return abs(a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g))
    return float(np.sqrt(max(np.linalg.det(vectors @ vectors.T), 0.0)))


def check_frame(
    frame: Frame,
    *,
    required: list[str] | tuple[str, ...],
    max_force: float,
    min_distance: float,
    neighbour_cutoff: float = 0.0,
    max_energy_per_atom: float = float("inf"),
    max_stress: float = float("inf"),
) -> Rejection | None:
    """The first rule a frame breaks, or None. `neighbour_cutoff`: the largest cutoff a pair search of this frame
    will use later (the neighbour statistic), bounded here with min_distance. `max_energy_per_atom` (eV) and
    `max_stress` (eV/A^3) bound |E|/N and every |stress component|."""
    try:
        frame.validate()
    except InvalidFrame as exc:
        return Rejection(exc.reason, str(exc))
    missing = [label for label in required if getattr(frame, label) is None]
    if missing:
        return Rejection("missing_label", f"required label(s) {', '.join(missing)} absent")
    if frame.forces is not None and max_force > 0:
        largest = float(np.sqrt((frame.forces**2).sum(axis=1).max()))
        if largest > max_force:
            return Rejection(
                "force_too_large", f"largest |F| {largest:.4g} eV/A exceeds the bound {max_force:g}"
            )
    if frame.energy is not None and abs(frame.energy) > max_energy_per_atom * frame.natoms:
        return Rejection(
            "energy_out_of_bounds",
            f"|energy| per atom {abs(frame.energy) / frame.natoms:.4g} eV exceeds the bound "
            f"{max_energy_per_atom:g}",
        )
    if frame.stress is not None and np.abs(frame.stress).max() > max_stress:
        return Rejection(
            "stress_out_of_bounds",
            f"largest |stress component| {np.abs(frame.stress).max():.4g} eV/A^3 exceeds the bound "
            f"{max_stress:g}",
        )
    measure = periodic_measure(frame.cell, frame.pbc)
    if measure <= _MIN_VOLUME:
        return Rejection(
            "non_positive_volume", f"periodic cell volume (area/length) is {measure:.4g}"
        )
    cutoff = max(min_distance, neighbour_cutoff)
    if cutoff > 0:
        shifts = image_shifts(frame.cell, frame.pbc, cutoff)
        if shifts * frame.natoms > MAX_IMAGE_POINTS:
            return Rejection(
                "cell_too_thin",
                f"cell too thin for the cutoff: {cutoff:g} A reaches {shifts:.3g} "
                f"periodic images of each of {frame.natoms} atoms (more than "
                f"{MAX_IMAGE_POINTS} image points per frame)",
            )
    if min_distance > 0:
        closest = closest_pair(frame.positions, frame.cell, frame.pbc, min_distance)
        if closest < min_distance:
            return Rejection(
                "atoms_too_close",
                f"two atoms (or periodic images) are {closest:.4g} A apart, "
                f"closer than {min_distance:g} A",
            )
    return None
