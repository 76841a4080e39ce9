"""PaiNN's block-input normalisation (norm: layer) keeps a layer's increment bounded, where the original blocks'
products of features compound from layer to layer."""

from __future__ import annotations

import pytest
import torch

from foundation.models import build_potential
from foundation.models.painn import FeatureNorm
from tests.models.conftest import CUTOFF

WEIGHT_SCALE = 3.0  # every Linear weight x3: a stand-in for weights trained into strong feedback


def _feature_scales(triclinic, predict, norm: str) -> list[float]:
    """max |s| after each of four layers of a width-16 PaiNN whose Linear weights are scaled by WEIGHT_SCALE."""
    torch.manual_seed(0)
    backbone = {
        "name": "painn",
        "hidden": 16,
        "layers": 4,
        "cutoff": CUTOFF,
        "num_radial": 8,
        "norm": norm,
    }
    potential = build_potential({"backbone": backbone, "heads": {}}).double()
    with torch.no_grad():
        for module in potential.backbone.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(WEIGHT_SCALE)
    scales: list[float] = []
    for update in potential.backbone.updates:
        update.register_forward_hook(
            lambda module, inputs, output: scales.append(output[0].abs().max().item())
        )
    predict(potential, [triclinic], compute=("energy",))
    return scales


def test_the_original_blocks_compound_and_normalised_ones_stay_bounded(triclinic, predict):
    original = _feature_scales(triclinic, predict, "none")
    normalised = _feature_scales(triclinic, predict, "layer")
    assert original[-1] > 1e20, original  # the failure mode: products of products of features
    assert max(normalised) < 1e3, normalised
    growth = [later / earlier for earlier, later in zip(normalised, normalised[1:])]
    assert max(growth) < 10, normalised  # each layer adds an increment; none multiplies the scale


@pytest.mark.parametrize("scale", [1e-6, 1.0, 1e6])
def test_the_vector_norm_is_equivariant_soft_and_bounded(scale, rotation):
    norm = FeatureNorm(8, enabled=True).double()
    s = torch.randn(5, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v = scale * torch.randn(
        5, 3, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    r = torch.as_tensor(rotation)
    _, out = norm(s, v)
    _, rotated = norm(s, torch.einsum("ij,njf->nif", r, v))
    torch.testing.assert_close(rotated, torch.einsum("ij,njf->nif", r, out))
    rms = out.square().sum(dim=1).mean(dim=-1).sqrt()
    assert torch.all(rms < 1.0)
    if scale < 1e-3:  # soft: small vectors pass through almost unchanged
        torch.testing.assert_close(out, v, rtol=1e-6, atol=0.0)
