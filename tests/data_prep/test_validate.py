"""Validation bounds its work per frame: a nearly flat cell is quarantined, not searched."""

from __future__ import annotations

import numpy as np
from foundation.data_prep.neighbours import image_shifts
from foundation.data_prep.validate import MAX_IMAGE_POINTS, check_frame, periodic_measure

from foundation.data.schema import Frame


def _frame(cell) -> Frame:
    return Frame(
        numbers=np.array([29, 29]),
        positions=np.array([[0.0, 0, 0], [2.0, 2, 2]]),
        cell=np.array(cell),
        pbc=np.array([True, True, True]),
        energy=-3.0,
        forces=np.zeros((2, 3)),
        frame_id="f",
        structure_id="s",
        source="test",
    )


def _check(frame: Frame, neighbour_cutoff: float = 0.0):
    return check_frame(
        frame,
        required=("energy", "forces"),
        max_force=50.0,
        min_distance=0.5,
        neighbour_cutoff=neighbour_cutoff,
    )


def test_a_nearly_flat_cell_is_quarantined_as_too_thin():
    flat = _frame([[10, 0, 0], [0, 10, 0], [5, 5, 2e-8]])  # c almost in the ab plane
    assert 1e-6 < periodic_measure(flat.cell, flat.pbc) < 1e-5  # passes the volume rule
    assert (
        image_shifts(flat.cell, flat.pbc, 0.5) > 1e15
    )  # what the closest-pair search would have built
    rejection = _check(flat)
    assert rejection.reason == "cell_too_thin"
    assert rejection.message.startswith("cell too thin for the cutoff: 0.5 A")


def test_the_neighbour_cutoff_is_bounded_too():
    skewed = _frame(
        [[4, 0, 0], [400_000, 4, 0], [0, 0, 4]]
    )  # a simple square lattice in a badly skewed basis
    assert _check(skewed) is None  # fine for the 0.5 A closest pair
    assert image_shifts(skewed.cell, skewed.pbc, 5.0) * 2 > MAX_IMAGE_POINTS
    assert _check(skewed, neighbour_cutoff=5.0).reason == "cell_too_thin"


def test_an_ordinary_cell_passes():
    assert _check(_frame(np.eye(3) * 4.0), neighbour_cutoff=5.0) is None
