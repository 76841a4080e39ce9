"""Forces and stress are the derivatives of the energy: finite differences, autograd modes, partial outputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress

from foundation.calculator import FoundationCalculator


def test_forces_match_central_differences(backbone, structure, make_potential):
    atoms = structure
    atoms.calc = FoundationCalculator(make_potential(backbone))
    forces = atoms.get_forces()
    indices = [0, len(atoms) - 1]
    numerical = calculate_numerical_forces(atoms, eps=1e-5, iatoms=indices)
    assert np.abs(forces[indices]).max() > 1e-4  # the check below is not vacuous
    np.testing.assert_allclose(forces[indices], numerical, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", ["triclinic", "small_cell"])
def test_stress_matches_finite_strains(backbone, name, make_potential, request):
    atoms = request.getfixturevalue(name).copy()
    atoms.calc = FoundationCalculator(make_potential(backbone))
    stress = atoms.get_stress(voigt=False)
    numerical = calculate_numerical_stress(atoms, eps=1e-5, voigt=False)
    assert np.abs(stress).max() > 1e-5
    np.testing.assert_allclose(stress, stress.T, atol=1e-12)
    np.testing.assert_allclose(stress, numerical, rtol=1e-5, atol=1e-8)


def test_training_mode_keeps_the_graph_for_a_force_loss(
    backbone, triclinic, make_potential, predict
):
    potential = make_potential(backbone).train()
    out = predict(potential, [triclinic])
    assert out["forces"].grad_fn is not None and out["stress"].grad_fn is not None
    loss = out["energy"].pow(2).sum() + out["forces"].pow(2).sum() + out["stress"].pow(2).sum()
    loss.backward()
    grads = [p.grad for p in potential.backbone.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads)
    # a force-only loss reaches the backbone through the second derivative
    potential.zero_grad()
    predict(potential, [triclinic], compute={"forces"})["forces"].pow(2).sum().backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in potential.backbone.parameters()
    )


def test_eval_mode_detaches_and_works_under_no_grad(backbone, triclinic, make_potential, predict):
    potential = make_potential(backbone)
    with torch.no_grad():
        out = predict(potential, [triclinic])
    assert all(value.grad_fn is None for value in out.values())
    reference = predict(potential, [triclinic])
    for key in ("energy", "forces", "stress"):
        torch.testing.assert_close(out[key], reference[key])
        assert out[key].dtype == torch.float64


def test_compute_selects_outputs(triclinic, molecule, make_potential, predict):
    potential = make_potential("schnet")
    everything = predict(potential, [triclinic, molecule])
    energy_only = predict(potential, [triclinic, molecule], compute={"energy"})
    assert (
        set(energy_only) == {"energy"} and energy_only["energy"].grad_fn is not None
    )  # no derivative pass
    forces_only = predict(potential, [triclinic, molecule], compute=["forces"])
    assert set(forces_only) == {"forces"}
    torch.testing.assert_close(energy_only["energy"], everything["energy"])
    torch.testing.assert_close(forces_only["forces"], everything["forces"])
    assert torch.all(
        everything["stress"][1] == 0
    )  # the molecule has no volume: zero stress, not NaN
    boxed = molecule.copy()
    boxed.set_cell([12.0, 12.0, 12.0])  # a box, but not periodic: still no stress
    assert torch.all(predict(potential, [boxed])["stress"] == 0)
    with pytest.raises(ValueError, match="noise"):
        predict(potential, [triclinic], compute={"noise"})
