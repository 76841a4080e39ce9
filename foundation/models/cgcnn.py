"""CGCNN (Xie & Grossman 2018): gated crystal-graph convolutions.

v_i <- softplus(v_i + sum_j sigmoid(z_ij W_f + b_f) * softplus(z_ij W_s + b_s) * C(r_ij)), z_ij = [v_i, v_j, u_ij],
u_ij a Gaussian expansion of the distance. Differences from the paper, made for derivative training: learned
element embeddings instead of the hand-made atom features, no batch normalisation (its batch statistics break
extensivity and make the energy depend on the other structures of a batch), and the smooth envelope C.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from foundation.models.base import NUM_ELEMENTS, Backbone, BackboneConfig, Features, Graph
from foundation.models.blocks import ShiftedSoftplus, scatter_sum


@dataclass
class CGCNNConfig(BackboneConfig):
    name: str = "cgcnn"
    hidden: int = 64
    layers: int = 3
    num_radial: int = 40


class GatedConv(nn.Module):
    def __init__(self, hidden: int, num_radial: int):
        super().__init__()
        self.center = nn.Linear(hidden, 2 * hidden)
        self.neighbour = nn.Linear(hidden, 2 * hidden, bias=False)
        self.edge = nn.Linear(num_radial, 2 * hidden, bias=False)
        self.act = ShiftedSoftplus()

    def forward(self, h: Tensor, rbf: Tensor, env: Tensor, graph: Graph) -> Tensor:
        center, neighbour = graph.edge_index[0], graph.edge_index[1]
        # [v_i, v_j, u_ij] W, split into its three blocks so the node parts are computed once per atom
        z = (
            self.center(h).index_select(0, center)
            + self.neighbour(h).index_select(0, neighbour)
            + self.edge(rbf)
        )
        gate, core = z.chunk(2, dim=-1)
        messages = torch.sigmoid(gate) * nn.functional.softplus(core) * env.unsqueeze(-1)
        return self.act(h + scatter_sum(messages, center, graph.num_atoms))


class CGCNN(Backbone):
    config_class = CGCNNConfig

    def __init__(self, config: CGCNNConfig):
        super().__init__(config)
        self.embedding = nn.Embedding(NUM_ELEMENTS, config.hidden)
        self.convs = nn.ModuleList(
            GatedConv(config.hidden, config.num_radial) for _ in range(config.layers)
        )

    def forward(self, graph: Graph) -> Features:
        rbf, env = self.edge_basis(graph)
        h = self.embedding(graph.numbers)
        for conv in self.convs:
            h = conv(h, rbf, env, graph)
        return Features(h)
