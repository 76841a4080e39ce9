"""Objectives: per-term errors, global reductions across ranks with different atom counts, energy basis."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from foundation.data.batch import collate_frames
from foundation.data.schema import Frame
from foundation.train.config import ObjectiveConfig
from foundation.train.objectives import TERMS, Objective


def _frame(seed: int, natoms: int) -> Frame:
    rng = np.random.default_rng(seed)
    return Frame(
        numbers=rng.integers(1, 20, natoms),
        positions=rng.uniform(0, 6, (natoms, 3)),
        cell=np.eye(3) * 6,
        pbc=np.ones(3, bool),
        frame_id=f"f{seed}",
        structure_id=f"s{seed}",
        energy=float(rng.normal() * 5),
        forces=rng.normal(size=(natoms, 3)),
        stress=None if seed % 3 == 0 else rng.normal(size=(3, 3)) * 1e-2,
    )


def _prediction(batch, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "energy": batch.energy + torch.randn(batch.num_graphs, generator=g),
        "forces": batch.forces + torch.randn(batch.forces.shape, generator=g),
        "stress": torch.randn(batch.num_graphs, 3, 3, generator=g) * 1e-2,
    }


OBJ = Objective(ObjectiveConfig(energy_weight=1.0, forces_weight=10.0, stress_weight=100.0))


def _loss(obj: Objective, batches: list) -> float:
    """The sum over 'ranks' of each rank's loss share, with counts all-reduced (what the loop does)."""
    counts = sum(obj.counts(b, None) for b in batches)
    return sum(
        float(obj.loss(obj.errors(_prediction(b, i), b), counts)[0]) for i, b in enumerate(batches)
    )


def test_ranks_with_different_atom_counts_reduce_to_the_loss_of_one_batch():
    frames = [_frame(i, n) for i, n in enumerate([2, 9, 3, 30, 5, 4])]
    rank0, rank1 = collate_frames(frames[:2], 3.0), collate_frames(frames[2:], 3.0)
    preds = [_prediction(rank0, 0), _prediction(rank1, 1)]
    whole = collate_frames(frames, 3.0)
    merged = {k: torch.cat([preds[0][k], preds[1][k]]) for k in preds[0]}
    counts = OBJ.counts(whole, None)
    expected = float(OBJ.loss(OBJ.errors(merged, whole), counts)[0])
    assert _loss(OBJ, [rank0, rank1]) == pytest.approx(expected, rel=1e-6)
    # a mean of per-rank means would weigh rank0's 11 atoms like rank1's 42: a different number
    mean_of_means = np.mean(
        [
            float(OBJ.loss(OBJ.errors(p, b), OBJ.counts(b, None))[0])
            for p, b in zip(preds, (rank0, rank1))
        ]
    )
    assert abs(mean_of_means - expected) > 1e-3 * expected
    # the counts: structures for E, components for F, labelled structures only for S
    assert counts.tolist() == [6, 3 * 53, 9 * 4, 0]


def test_energy_basis_per_atom_or_total():
    batch = collate_frames([_frame(1, 4), _frame(2, 8)], 3.0)
    pred = {"energy": batch.energy + torch.tensor([4.0, 4.0])}
    per_atom = Objective(ObjectiveConfig(forces_weight=0, energy_basis="per_atom")).errors(
        pred, batch
    )["energy"]
    total = Objective(ObjectiveConfig(forces_weight=0, energy_basis="total")).errors(pred, batch)[
        "energy"
    ]
    assert per_atom.tolist() == pytest.approx([1.0, 0.5]) and total.tolist() == pytest.approx(
        [4.0, 4.0]
    )


def test_denoising_error_is_in_units_of_the_noise_std():
    batch = collate_frames([_frame(1, 4)], 3.0)
    batch.noise = torch.full((4, 3), 0.1)
    obj = Objective(
        ObjectiveConfig(energy_weight=0, forces_weight=0, denoise_weight=1, noise_std=0.1)
    )
    errors = obj.errors({"noise": torch.zeros(4, 3)}, batch, noisy=True)
    assert errors["denoise"].tolist() == pytest.approx([-1.0] * 12)
    loss, sums = obj.loss(errors, obj.counts(None, batch))
    assert float(loss) == pytest.approx(1.0) and sums[
        TERMS.index("denoise")
    ].tolist() == pytest.approx([12, 12])


@pytest.mark.parametrize(
    "kind, expected", [("l1", 0.5), ("huber", 0.5 * 0.01 * (2 * 0.5 - 0.01)), ("mse", 0.25)]
)
def test_elementwise_losses(kind, expected):
    obj = Objective(ObjectiveConfig(loss=kind, huber_delta=0.01))
    assert float(obj.elementwise(torch.tensor([0.5]))[0]) == pytest.approx(expected)


def test_an_objective_needing_a_missing_head_is_refused():
    with pytest.raises(ValueError, match="stress"):
        Objective(ObjectiveConfig(stress_weight=1.0)).outputs(("energy", "forces"))
    with pytest.raises(ValueError, match="noise"):
        Objective(ObjectiveConfig(denoise_weight=1.0)).outputs(("energy", "forces"))


def test_atom_huber_force_loss_is_the_huber_of_each_atoms_error_length():
    objective = Objective(
        ObjectiveConfig(loss="mse", forces_loss="atom_huber", forces_huber_delta=0.1)
    )
    # two atoms: |e| = 0.05 (quadratic: 0.5 * 0.05^2) and |e| = 5 (linear: 0.1 * (5 - 0.05)); component-wise
    # huber would charge the second atom 0.1 * (3 - 0.05) + 0.1 * (4 - 0.05) = 0.69 instead of 0.495
    err = torch.tensor([0.03, 0.04, 0.0, 3.0, 0.0, -4.0])
    expected = torch.tensor([0.00125, 0.495])
    torch.testing.assert_close(objective.elementwise(err, "forces"), expected)
    torch.testing.assert_close(objective.elementwise(err, "energy"), err.square())
    loss, sums = objective.loss({"forces": err}, torch.tensor([0.0, 6.0, 0.0, 0.0]))
    assert float(loss) == pytest.approx(1.0 * 0.49625 / 6)  # per component count, forces_weight 1
    assert float(sums[1, 0]) == pytest.approx(0.49625) and float(sums[1, 1]) == pytest.approx(7.07)


def test_atom_huber_gradient_is_finite_at_zero_error_and_bounded_by_delta_above():
    objective = Objective(ObjectiveConfig(forces_loss="atom_huber", forces_huber_delta=0.1))
    err = torch.tensor([0.0, 0.0, 0.0, 3.0, 0.0, -4.0], requires_grad=True)
    objective.elementwise(err, "forces").sum().backward()
    torch.testing.assert_close(err.grad, torch.tensor([0.0, 0.0, 0.0, 0.06, 0.0, -0.08]))


def test_robust_energy_loss_leaves_other_terms_alone():
    objective = Objective(ObjectiveConfig(loss="mse", energy_loss="huber", energy_huber_delta=0.1))
    err = torch.tensor([0.05, -2.0])
    # huber: 0.5 e^2 below delta, delta (|e| - delta / 2) above: a 2 eV/atom outlier costs 0.195, not 4
    expected = torch.tensor([0.5 * 0.05**2, 0.1 * (2.0 - 0.05)])
    torch.testing.assert_close(objective.elementwise(err, "energy"), expected)
    torch.testing.assert_close(objective.elementwise(err, "forces"), err.square())
    errors = {"energy": err, "forces": err}
    loss, sums = objective.loss(errors, torch.tensor([2.0, 2.0, 0.0, 0.0], dtype=torch.float64))
    assert float(sums[0, 0]) == pytest.approx(float(expected.sum())) and float(
        sums[1, 0]
    ) == pytest.approx(4.0025)
    assert float(loss) == pytest.approx(float(expected.sum()) / 2 + 4.0025 / 2)
