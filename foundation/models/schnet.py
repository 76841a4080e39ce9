"""SchNet (Schütt et al. 2017): continuous-filter convolutions.

Same layers and hyper-parameters as torch_geometric.nn.models.SchNet (hidden_channels = hidden,
num_filters, num_interactions = layers, num_gaussians = num_radial, Gaussian smearing on [0, cutoff],
cosine cutoff on the filters), so the two can be compared like with like (bench/models.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from foundation.models.base import NUM_ELEMENTS, Backbone, BackboneConfig, Features, Graph
from foundation.models.blocks import ShiftedSoftplus, scatter_sum


@dataclass
class SchNetConfig(BackboneConfig):
    name: str = "schnet"
    hidden: int = 128
    layers: int = 6
    num_radial: int = 50
    num_filters: int | None = None  # None: same as hidden


class Interaction(nn.Module):
    """h -> lin(act(lin2(sum_j lin1(h_j) * W(r_ij) * C(r_ij))))."""

    def __init__(self, hidden: int, num_radial: int, filters: int):
        super().__init__()
        self.filter = nn.Sequential(nn.Linear(num_radial, filters), ShiftedSoftplus(), nn.Linear(filters, filters))
        self.lin1 = nn.Linear(hidden, filters, bias=False)
        self.lin2 = nn.Linear(filters, hidden)
        self.act = ShiftedSoftplus()
        self.lin = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, hidden_filter: Tensor, env: Tensor, graph: Graph) -> Tensor:
        """`hidden_filter` is act(filter[0](rbf)), computed for all interactions at once by SchNet.forward."""
        center, neighbor = graph.edge_index
        weights = self.filter[2](hidden_filter) * env.unsqueeze(-1)
        messages = self.lin1(h).index_select(0, neighbor) * weights
        x = scatter_sum(messages, center, graph.num_atoms)
        return self.lin(self.act(self.lin2(x)))


class SchNet(Backbone):
    config_class = SchNetConfig

    def __init__(self, config: SchNetConfig):
        super().__init__(config)
        filters = config.num_filters or config.hidden
        self.embedding = nn.Embedding(NUM_ELEMENTS, config.hidden)
        self.interactions = nn.ModuleList(
            Interaction(config.hidden, config.num_radial, filters) for _ in range(config.layers))

    def forward(self, graph: Graph) -> Features:
        rbf, env = self.edge_basis(graph)
        # The first filter layer of every interaction in one matmul (same parameters, fewer and larger kernels).
        first = [interaction.filter[0] for interaction in self.interactions]
        weight = torch.cat([layer.weight for layer in first])
        bias = torch.cat([layer.bias for layer in first])
        hidden = self.interactions[0].filter[1](nn.functional.linear(rbf, weight, bias))
        h = self.embedding(graph.numbers)
        for interaction, hidden_filter in zip(self.interactions, hidden.chunk(len(first), dim=-1)):
            h = h + interaction(h, hidden_filter, env, graph)
        return Features(h)
