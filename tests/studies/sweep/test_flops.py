"""FLOP counting of a training step, including the force derivative and its double backward."""

from __future__ import annotations

import torch
from foundation.studies.sweep.flops import count_flops, training_step_flops


def test_linear_layer_costs_six_mkn():
    m, k, n = 8, 16, 4
    layer = torch.nn.Linear(k, n, bias=False)
    x = torch.randn(m, k, requires_grad=True)
    assert count_flops(lambda: layer(x).sum().backward()) == 6 * m * k * n


class PairPotential(torch.nn.Module):
    """E = sum over pairs of MLP(|r_ij|); forces by autograd inside forward, as the models do."""

    def __init__(self, width: int, forces: bool = True):
        super().__init__()
        self.forces = forces
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(1, width), torch.nn.SiLU(), torch.nn.Linear(width, 1)
        )

    def forward(self, positions: torch.Tensor) -> dict:
        positions = positions.requires_grad_(True)
        i, j = torch.triu_indices(len(positions), len(positions), 1)
        energy = self.mlp((positions[i] - positions[j]).norm(dim=1, keepdim=True)).sum()
        if not self.forces:
            return {"energy": energy}
        forces = -torch.autograd.grad(energy, positions, create_graph=self.training)[0]
        return {"energy": energy, "forces": forces}


def test_force_training_counts_the_double_backward():
    torch.manual_seed(0)
    pairs, width = 15, 32
    plain = PairPotential(width, forces=False)
    no_forces = training_step_flops(
        plain, lambda: plain(torch.randn(6, 3))["energy"], frames=1, atoms=6
    )
    # two (P x 1)(1 x W)-sized matmuls forward (4 P W), twice that backward (8 P W)
    assert no_forces.flops == 12 * pairs * width
    model = PairPotential(width)

    def loss() -> torch.Tensor:
        out = model(torch.randn(6, 3))
        return out["energy"] + out["forces"].square().sum()

    with_forces = training_step_flops(model, loss, frames=2, atoms=6)
    # forces are a backward pass inside forward, and the loss's backward runs through them again
    assert with_forces.flops >= 1.5 * no_forces.flops
    assert (
        with_forces.per_atom == with_forces.flops / 6
        and with_forces.per_frame == with_forces.flops / 2
    )
    assert all(p.grad is None for p in model.parameters()) and model.training
