"""Shared model blocks (foundation/models/blocks.py): weights saved under a submodule's earlier name still load."""

from __future__ import annotations

import pytest
import torch

from foundation.models import build_potential


@pytest.mark.parametrize(
    "model, overrides, old, new",
    [
        ("cgcnn", ["heads.forces=direct", "heads.stress=direct"], ".neighbor.", ".neighbour."),
        ("torchmd_et", [], ".neighbor_embedding.", ".neighbour_embedding."),
    ],
)
def test_weights_saved_with_neighbor_names_load_unchanged(model, overrides, old, new):
    torch.manual_seed(0)
    saved = build_potential(model, overrides).state_dict()
    assert any(new in k for k in saved)
    old_file = {
        k.replace(new, old): v for k, v in saved.items()
    }  # what a run saved before the rename holds
    fresh = build_potential(model, overrides)
    fresh.load_state_dict(old_file, strict=True)
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.items())
