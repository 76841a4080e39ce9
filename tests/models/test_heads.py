"""Direct, denoising and property heads: shapes and symmetries; the energy normalisation; dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import make_supercell
from ase.io import read

from foundation.models import build_potential

ALL_HEADS = {
    "forces": "direct",
    "stress": "direct",
    "denoise": "direct",
    "property": {"name": "n", "pooling": "mean"},
}


def _rotated(atoms, rotation):
    moved = atoms.copy()
    moved.set_cell(atoms.cell[:] @ rotation.T)
    moved.positions = atoms.positions @ rotation.T + np.array([1.1, 0.2, -0.7])
    return moved


@pytest.mark.parametrize("denoise", ["direct", "derivative"])
def test_direct_and_denoising_heads_rotate_with_the_structure(
    backbone, denoise, triclinic, molecule, rotation, make_potential, predict
):
    potential = make_potential(backbone, **{**ALL_HEADS, "denoise": denoise})
    assert set(potential.outputs) == {"energy", "forces", "stress", "noise", "property"}
    out = predict(potential, [triclinic, molecule])
    n = len(triclinic) + len(molecule)
    assert out["forces"].shape == (n, 3) and out["noise"].shape == (n, 3)
    assert (
        out["stress"].shape == (2, 3, 3)
        and out["property"].shape == (2,)
        and out["energy"].shape == (2,)
    )
    torch.testing.assert_close(out["stress"], out["stress"].transpose(1, 2))
    assert (
        out["forces"].abs().max() > 1e-6
        and out["noise"].abs().max() > 1e-6
        and out["stress"].abs().max() > 1e-6
    )

    moved = predict(potential, [_rotated(triclinic, rotation), _rotated(molecule, rotation)])
    r = torch.as_tensor(rotation)
    torch.testing.assert_close(moved["forces"], out["forces"] @ r.T)
    torch.testing.assert_close(moved["noise"], out["noise"] @ r.T)
    torch.testing.assert_close(moved["stress"], r @ out["stress"] @ r.T)
    torch.testing.assert_close(moved["property"], out["property"])
    torch.testing.assert_close(moved["energy"], out["energy"])


def test_intensive_heads_ignore_supercells(backbone, triclinic, make_potential, predict):
    potential = make_potential(backbone, **ALL_HEADS)
    one = predict(potential, [triclinic])
    big = predict(potential, [make_supercell(triclinic, np.diag([2, 1, 2]))])
    torch.testing.assert_close(big["stress"], one["stress"])
    torch.testing.assert_close(big["property"], one["property"])
    torch.testing.assert_close(big["forces"], one["forces"].repeat(4, 1))
    torch.testing.assert_close(big["energy"], 4 * one["energy"])


def test_sum_pooled_property_is_extensive(triclinic, make_potential, predict):
    potential = make_potential("painn", property={"name": "n", "pooling": "sum"})
    one = predict(potential, [triclinic])["property"]
    two = predict(potential, [triclinic.repeat((2, 1, 1))])["property"]
    torch.testing.assert_close(two, 2 * one)


def test_denoising_derivative_head_is_a_gradient(triclinic, make_potential, predict):
    """noise = -d(scalar)/dr: its finite differences come from a separate scalar head, not from the energy."""
    potential = make_potential("schnet", denoise="derivative")
    noise = predict(potential, [triclinic], compute={"noise"})["noise"]
    forces = predict(potential, [triclinic], compute={"forces"})["forces"]
    assert not torch.allclose(noise, forces)
    torch.testing.assert_close(noise.sum(0), torch.zeros(3, dtype=noise.dtype), atol=1e-10, rtol=0)


def test_energy_normalization(triclinic, molecule, make_potential, predict):
    potential = make_potential("schnet")
    raw = predict(potential, [triclinic, molecule])
    references = {"As": -4.5, 73: -11.25, "Ta": -11.25}
    potential.set_normalization(references, scale=2.0, shift=0.5)
    out = predict(potential, [triclinic, molecule])
    for k, atoms in enumerate([triclinic, molecule]):
        offset = sum({33: -4.5, 73: -11.25}[z] for z in atoms.numbers) + 0.5 * len(atoms)
        assert float(out["energy"][k]) == pytest.approx(
            2.0 * float(raw["energy"][k]) + offset, abs=1e-9
        )
    torch.testing.assert_close(out["forces"], 2.0 * raw["forces"])
    torch.testing.assert_close(out["stress"], 2.0 * raw["stress"])

    clone = make_potential("schnet", seed=1)
    clone.load_state_dict(potential.state_dict())  # the normalisation travels with the weights
    torch.testing.assert_close(predict(clone, [triclinic])["energy"], out["energy"][:1])


def test_normalization_stays_float64_in_low_precision(make_potential):
    potential = make_potential("painn")
    potential.set_normalization({"Ta": -11.123456789}, scale=1.5, shift=0.1)
    potential.to(torch.bfloat16)
    head = potential.energy_head
    assert (
        head.element_references.dtype == torch.float64
        and head.element_references[73] == -11.123456789
    )
    assert next(potential.parameters()).dtype == torch.bfloat16


def test_bfloat16_features_with_float32_geometry(triclinic, make_potential, predict):
    potential = make_potential("painn").to(torch.bfloat16)
    assert potential.geometry_dtype == torch.float32
    out = predict(potential, [triclinic])
    assert out["forces"].dtype == torch.float32 and out["energy"].dtype == torch.float32
    reference = predict(make_potential("painn"), [triclinic])
    assert (
        float((out["energy"] - reference["energy"]).abs().max())
        < 0.1 * float(reference["energy"].abs().max()) + 0.1
    )


def test_energy_free_model_for_fine_tuning(triclinic, predict):
    config = {
        "backbone": {"name": "cgcnn", "hidden": 8, "layers": 1, "cutoff": 4.0},
        "heads": {"energy": False, "forces": "none", "stress": "none", "property": {"name": "n"}},
    }
    potential = build_potential(config).double()
    assert potential.outputs == ("property",)
    assert set(predict(potential, [triclinic])) == {"property"}
    with pytest.raises(ValueError, match="energy head"):
        potential.set_normalization(scale=2.0)


def test_direct_heads_are_scaled_by_the_label_rms(triclinic, molecule, make_potential, predict):
    potential = make_potential("schnet", **ALL_HEADS)
    raw = predict(potential, [triclinic, molecule])
    potential.set_normalization(forces_scale=0.7, stress_scale=0.004, noise_scale=0.1)
    out = predict(potential, [triclinic, molecule])
    torch.testing.assert_close(out["forces"], 0.7 * raw["forces"])
    torch.testing.assert_close(out["stress"], 0.004 * raw["stress"])
    torch.testing.assert_close(out["noise"], 0.1 * raw["noise"])
    torch.testing.assert_close(out["energy"], raw["energy"])  # energy normalisation untouched
    clone = make_potential("schnet", seed=1, **ALL_HEADS)
    clone.load_state_dict(potential.state_dict())  # the scales travel with the weights
    torch.testing.assert_close(predict(clone, [triclinic])["stress"], out["stress"][:1])


def test_runner_sets_direct_head_scales_from_the_manifest(make_potential):
    from foundation.data.manifest import Manifest
    from foundation.train.runner import apply_normalization, normalization_from_manifest

    manifest = Manifest(
        shards=[],
        element_references={"Ta": -11.0},
        statistics={"force_rms": 0.9, "stress_rms": 0.02, "energy_per_atom_mean": 0.1},
    )
    normalization = normalization_from_manifest(manifest)
    assert normalization["forces_scale"] == 0.9 and normalization["stress_scale"] == 0.02
    potential = make_potential("schnet", **ALL_HEADS)
    apply_normalization(potential, normalization, noise_std=0.05)
    assert float(potential.force_head.scale) == 0.9 and float(potential.stress_head.scale) == 0.02
    assert float(potential.denoise_head.scale) == 0.05 and float(potential.energy_head.scale) == 0.9
    free = make_potential("schnet", energy=False, forces="direct", stress="none")
    apply_normalization(
        free, normalization, noise_std=None
    )  # no energy head: only the direct scales
    assert float(free.force_head.scale) == 0.9


@pytest.mark.parametrize("size", ["scalable-xs", "scalable-s"])
def test_untrained_forces_start_at_the_zero_force_baseline(size):
    """With the energy scale set to the labels' force RMS (as training does), an untrained potential's forces on real
    DFT frames are a small fraction of the labels, so its force MAE is the zero-force MAE (within 3%), not above it."""
    from foundation.data.ase_convert import frame_from_atoms
    from foundation.data.batch import collate_frames
    from tests.conftest import FIXTURES

    atoms = [
        a
        for name in ("mpf-TP-sample.xyz", "mptrj-sample.xyz")
        for a in read(FIXTURES / "dft" / name, index=":20")
    ]
    frames = [
        frame_from_atoms(a, frame_id=str(k), structure_id=str(k)) for k, a in enumerate(atoms)
    ]
    labels = np.concatenate([f.forces for f in frames])
    torch.manual_seed(0)
    potential = build_potential(size).eval()
    potential.set_normalization(scale=float(np.sqrt(np.mean(labels**2))))
    forces = (
        potential(collate_frames(frames, potential.cutoff), compute={"forces"})["forces"]
        .double()
        .numpy()
    )
    zero_mae = np.abs(labels).mean()
    assert 0 < np.sqrt(np.mean(forces**2)) < 0.1 * np.sqrt(np.mean(labels**2))
    assert np.abs(forces - labels).mean() == pytest.approx(zero_mae, rel=0.03)
