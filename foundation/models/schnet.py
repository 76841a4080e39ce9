"""SchNet (Schütt et al. 2017): continuous-filter convolutions.

Same layers and hyper-parameters as torch_geometric.nn.models.SchNet (hidden_channels = hidden,
num_filters, num_interactions = layers, num_gaussians = num_radial, Gaussian smearing on [0, cutoff],
cosine cutoff on the filters), so the two can be compared like with like (bench/models.py). The filters depend on
the distance alone, so they are computed once per unordered pair and shared by its two directed edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
        self.filter = nn.Sequential(
            nn.Linear(num_radial, filters), ShiftedSoftplus(), nn.Linear(filters, filters)
        )
        self.lin1 = nn.Linear(hidden, filters, bias=False)
        self.lin2 = nn.Linear(filters, hidden)
        self.act = ShiftedSoftplus()
        self.lin = nn.Linear(hidden, hidden)

    def forward(self, h: Tensor, rbf: Tensor, env: Tensor, graph: Graph) -> Tensor:
        center, neighbour = graph.edge_index[0], graph.edge_index[1]
        # filter(rbf) = second(softplus(first(rbf)) - log 2); the constant is folded into second's bias, which
        # saves one pass over the (E, F) edge tensor forward and in both backward passes.
        second = self.filter[2].weight
        bias = self.filter[2].bias - math.log(2.0) * second.sum(dim=1)
        weights = nn.functional.linear(
            nn.functional.softplus(self.filter[0](rbf)), second, bias
        ) * env.unsqueeze(-1)
        weights = weights.index_select(0, graph.pairs[1])  # filters are computed per unordered pair
        messages = self.lin1(h).index_select(0, neighbour) * weights
        x = scatter_sum(messages, center, graph.num_atoms)
        return self.lin(self.act(self.lin2(x)))


class SchNet(Backbone):
    config_class = SchNetConfig

    def __init__(self, config: SchNetConfig):
        super().__init__(config)
        filters = config.num_filters or config.hidden
        self.embedding = nn.Embedding(NUM_ELEMENTS, config.hidden)
        self.interactions = nn.ModuleList(
            Interaction(config.hidden, config.num_radial, filters) for _ in range(config.layers)
        )

    def forward(self, graph: Graph) -> Features:
        rbf, env = self.pair_basis(graph)
        h = self.embedding(graph.numbers)
        for interaction in self.interactions:
            h = h + interaction(h, rbf, env, graph)
        return Features(h)
