"""MPNN (Gilmer et al. 2017) with edge-conditioned convolutions (NNConv) and a GRU update.

The message from j to i is A(e_ij) h_j with A an (F x F) matrix produced by an edge network from the radial
basis: A(e) = sum_k a_k(e) W_k + B, a(e) = SiLU(Linear(rbf)) with K = edge_hidden channels. This is exactly
NNConv with a two-layer edge network whose last layer is linear, evaluated without materialising the
(E, F, F) matrices: the products h_j W_k are computed once per atom. Messages carry the smooth envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from foundation.models.base import NUM_ELEMENTS, Backbone, BackboneConfig, Features, Graph
from foundation.models.blocks import scatter_sum


@dataclass
class MPNNConfig(BackboneConfig):
    name: str = "mpnn"
    hidden: int = 64
    layers: int = 3
    num_radial: int = 32
    edge_hidden: int = 16


class EdgeConditionedConv(nn.Module):
    def __init__(self, hidden: int, num_radial: int, edge_hidden: int):
        super().__init__()
        self.hidden, self.edge_hidden = hidden, edge_hidden
        self.edge_net = nn.Sequential(nn.Linear(num_radial, edge_hidden), nn.SiLU())
        self.weight = nn.Parameter(torch.empty(hidden, edge_hidden * hidden))
        self.bias = nn.Linear(hidden, hidden, bias=False)
        nn.init.normal_(self.weight, std=(hidden * edge_hidden) ** -0.5)

    def forward(self, h: Tensor, rbf: Tensor, env: Tensor, graph: Graph) -> Tensor:
        center, neighbour = graph.edge_index[0], graph.edge_index[1]
        a = self.edge_net(rbf) * env.unsqueeze(-1)  # (E, K)
        per_atom = (h @ self.weight).view(-1, self.edge_hidden, self.hidden)  # (N, K, F)
        messages = torch.bmm(a.unsqueeze(1), per_atom.index_select(0, neighbour)).squeeze(1)
        messages = messages + self.bias(h).index_select(0, neighbour) * env.unsqueeze(-1)
        return scatter_sum(messages, center, graph.num_atoms)


class MPNN(Backbone):
    config_class = MPNNConfig

    def __init__(self, config: MPNNConfig):
        super().__init__(config)
        self.embedding = nn.Embedding(NUM_ELEMENTS, config.hidden)
        self.convs = nn.ModuleList(
            EdgeConditionedConv(config.hidden, config.num_radial, config.edge_hidden)
            for _ in range(config.layers)
        )
        self.update = nn.GRUCell(config.hidden, config.hidden)

    def forward(self, graph: Graph) -> Features:
        rbf, env = self.edge_basis(graph)
        h = self.embedding(graph.numbers)
        for conv in self.convs:
            h = self.update(conv(h, rbf, env, graph), h)
        return Features(h)
