"""TorchMD-Net's equivariant transformer (Thölke & De Fabritiis 2022).

Scalar features x (N, F) and vector features v (N, 3, F); each layer is the paper's equivariant multi-head
attention: attention weights SiLU(sum q_i * k_j * dk(r_ij)) times the cosine cutoff, values filtered by
dv(r_ij) and split into a scalar message and two vector messages (v_j * s1 + s2 * r_ij/|r_ij|), then the
scalar-vector update dx = <U1 v, U2 v> o2 + o3, dv = (U3 v) o1 + sum of vector messages.
One change for derivative training: the vector messages are multiplied by the cutoff envelope too (in the
original only the attention weights are, so the vector features jump when a neighbour crosses the cutoff).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from foundation.config import ConfigError
from foundation.models.base import NUM_ELEMENTS, Backbone, BackboneConfig, Features, Graph
from foundation.models.blocks import scatter_sum


@dataclass
class ETConfig(BackboneConfig):
    name: str = "torchmd_et"
    hidden: int = 128
    layers: int = 4
    num_radial: int = 32
    radial_basis: Literal["gaussian", "bessel", "expnorm"] = "expnorm"
    num_heads: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hidden % self.num_heads:
            raise ConfigError(
                f"backbone.hidden ({self.hidden}) must be a multiple of backbone.num_heads "
                f"({self.num_heads})"
            )


class NeighbourEmbedding(nn.Module):
    """x_i <- W [x_i, sum_j emb(z_j) * Linear(rbf_ij) * C(r_ij)]."""

    def __init__(self, hidden: int, num_radial: int):
        super().__init__()
        self.embedding = nn.Embedding(NUM_ELEMENTS, hidden)
        self.distance_proj = nn.Linear(num_radial, hidden)
        self.combine = nn.Linear(2 * hidden, hidden)

    def forward(self, x: Tensor, rbf: Tensor, env: Tensor, graph: Graph) -> Tensor:
        """rbf (P, R) and env (P,) per unordered pair (Graph.pairs)."""
        center, neighbour = graph.edge_index[0], graph.edge_index[1]
        weights = (self.distance_proj(rbf) * env.unsqueeze(-1)).index_select(0, graph.pairs[1])
        messages = self.embedding(graph.numbers).index_select(0, neighbour) * weights
        return self.combine(torch.cat([x, scatter_sum(messages, center, graph.num_atoms)], dim=-1))


class EquivariantAttention(nn.Module):
    def __init__(self, hidden: int, num_radial: int, heads: int):
        super().__init__()
        self.hidden, self.heads, self.head_dim = hidden, heads, hidden // heads
        self.norm = nn.LayerNorm(hidden)
        self.q_proj = nn.Linear(hidden, hidden)
        self.k_proj = nn.Linear(hidden, hidden)
        self.v_proj = nn.Linear(hidden, 3 * hidden)
        self.o_proj = nn.Linear(hidden, 3 * hidden)
        self.vec_proj = nn.Linear(hidden, 3 * hidden, bias=False)
        self.dk_proj = nn.Linear(num_radial, hidden)
        self.dv_proj = nn.Linear(num_radial, 3 * hidden)
        self.act = nn.SiLU()

    def forward(
        self, x: Tensor, vec: Tensor, rbf: Tensor, env: Tensor, graph: Graph
    ) -> tuple[Tensor, Tensor]:
        """rbf (P, R) per unordered pair (Graph.pairs), env (E,) per edge."""
        center, neighbour = graph.edge_index[0], graph.edge_index[1]
        n, e, h, d, f = x.shape[0], env.shape[0], self.heads, self.head_dim, self.hidden
        xn = self.norm(x)
        q = self.q_proj(xn).view(n, h, d)
        k = self.k_proj(xn).view(n, h, d)
        v = self.v_proj(xn).view(n, h, 3 * d)
        vec1, vec2, vec3 = self.vec_proj(vec).split(f, dim=-1)
        vec_dot = (vec1 * vec2).sum(dim=1)
        pair = graph.pairs[1]
        dk = self.act(self.dk_proj(rbf)).index_select(0, pair).view(e, h, d)
        dv = self.act(self.dv_proj(rbf)).index_select(0, pair).view(e, h, 3 * d)

        attn = (q.index_select(0, center) * k.index_select(0, neighbour) * dk).sum(dim=-1)
        attn = self.act(attn) * env.unsqueeze(-1)  # (E, H)
        xm, s1, s2 = (v.index_select(0, neighbour) * dv).split(d, dim=-1)  # (E, H, D) each
        xm = (xm * attn.unsqueeze(-1)).reshape(e, f)
        vecm = vec.index_select(0, neighbour) * s1.reshape(e, 1, f) + s2.reshape(
            e, 1, f
        ) * graph.unit_vectors.unsqueeze(-1)
        vecm = vecm * env.view(e, 1, 1)
        x_agg = scatter_sum(xm, center, n)
        vec_agg = scatter_sum(vecm, center, n)

        o1, o2, o3 = self.o_proj(x_agg).split(f, dim=-1)
        dx = vec_dot * o2 + o3
        dvec = vec3 * o1.unsqueeze(1) + vec_agg
        return x + dx, vec + dvec


class EquivariantTransformer(Backbone):
    config_class = ETConfig

    def __init__(self, config: ETConfig):
        super().__init__(config)
        self.embedding = nn.Embedding(NUM_ELEMENTS, config.hidden)
        self.neighbour_embedding = NeighbourEmbedding(config.hidden, config.num_radial)
        self.attention = nn.ModuleList(
            EquivariantAttention(config.hidden, config.num_radial, config.num_heads)
            for _ in range(config.layers)
        )
        self.out_norm = nn.LayerNorm(config.hidden)

    @property
    def has_vectors(self) -> bool:
        return True

    def forward(self, graph: Graph) -> Features:
        # radial features per unordered pair (P, R) (the layers expand them to edges); the envelope per edge (E,)
        rbf, env = self.pair_basis(graph)
        rbf = rbf * env.unsqueeze(-1)  # TorchMD-Net's smearing carries the cutoff
        x = self.neighbour_embedding(self.embedding(graph.numbers), rbf, env, graph)
        env = env.index_select(0, graph.pairs[1])
        vec = x.new_zeros(x.shape[0], 3, x.shape[1])
        for layer in self.attention:
            x, vec = layer(x, vec, rbf, env, graph)
        return Features(self.out_norm(x), vec)
