"""The pre-training baseline check: ratios of model to trivial-baseline MAE, and when a run is flagged."""

from types import SimpleNamespace

import pytest
import torch

from foundation.models.heads import EnergyHead
from foundation.train.baselines import baseline_check, reference_energies


def test_a_run_clearly_below_its_baselines_passes():
    check = baseline_check(
        {
            "energy_mae": 0.02,
            "energy_baseline_mae": 0.2,
            "forces_mae": 0.1,
            "forces_baseline_mae": 0.5,
            "loss": 1.0,
        }
    )
    assert check["available"] and not check["flagged"]
    assert check["terms"]["forces"]["ratio"] == pytest.approx(0.2)


def test_a_run_near_its_baselines_is_flagged_by_term():
    check = baseline_check(
        {
            "energy_mae": 0.19,
            "energy_baseline_mae": 0.2,
            "forces_mae": 0.1,
            "forces_baseline_mae": 0.5,
        }
    )
    assert (
        check["flagged"]
        and "energy (0.95)" in check["message"]
        and "forces" not in check["message"]
    )


def test_the_fit_check_error_on_training_frames_sits_beside_each_term():
    check = baseline_check(
        {
            "energy_mae": 0.19,
            "energy_baseline_mae": 0.2,
            "fit/energy_mae": 0.18,
            "forces_mae": 0.1,
            "forces_baseline_mae": 0.5,
        }
    )
    assert check["terms"]["energy"]["training_frames_mae"] == 0.18
    assert "training_frames_mae" not in check["terms"]["forces"]


def test_a_record_without_baselines_is_not_judged():
    check = baseline_check({"energy_mae": 0.1, "loss": 1.0})
    assert not check["available"] and not check["flagged"]


def test_the_energy_baseline_is_the_fitted_references_not_the_offsets_a_run_learns():
    """The per-source offsets the energy head learns move its references while a run trains; the baseline (what
    the head gives before it learns anything) must not move with them."""
    head = EnergyHead(8, ("dft", "teacher"))
    head.set_normalization(
        source_references={"dft": {"H": -1.0, "O": -4.0}, "teacher": {"H": -1.5, "O": -5.0}},
        shift=0.25,
    )
    batch = SimpleNamespace(
        numbers=torch.tensor([1, 1, 8, 8]),
        batch=torch.tensor([0, 0, 1, 1]),
        source=torch.tensor([0, 1]),
        num_graphs=2,
    )
    fitted = torch.tensor([2 * -1.0 + 0.5, 2 * -5.0 + 0.5], dtype=torch.float64)
    assert reference_energies(SimpleNamespace(energy_head=head), batch).equal(fitted)
    with torch.no_grad():
        head.source_offsets.add_(0.3)  # what training does to them
    assert reference_energies(SimpleNamespace(energy_head=head), batch).equal(fitted)
    learned = head.references(
        SimpleNamespace(numbers=batch.numbers, batch=batch.batch), batch.source, torch.float64
    )
    assert torch.allclose(learned.sum(), fitted.sum() - 1.0 + 4 * 0.3)
