"""PaiNN (Schütt et al. 2021), the scalable family: width (hidden) and depth (layers) set the parameter count.

Scalars s (N, F) and vectors v (N, 3, F). Message: [ds, dv_v, dv_s] = phi(s_j) * W(rbf_ij) C(r_ij);
s_i += sum ds, v_i += sum (v_j dv_v + dv_s r_ij/|r_ij|). Update: a = MLP([s, |V v|]); v += a_vv U v;
s += a_ss + a_sv <U v, V v>. Roughly 11 F^2 parameters per layer: F=48/L=4 is ~0.1M, F=1024/L=8 ~100M
(configs/model/scalable-*.yaml).

Both blocks are products of features, so without normalisation a layer can square the features' scale: a trained
model can send a few structures' features to 1e20 within four layers (a 16-atom GdH cell reached energies of 1e20
eV). `norm: layer` normalises each block's input (LayerNorm on s, a soft RMS norm on v) while the residual streams
stay as they are, so a layer adds a bounded increment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from foundation.models.base import NUM_ELEMENTS, Backbone, BackboneConfig, Features, Graph
from foundation.models.blocks import scatter_sum

NORM_EPS = 1e-8
VECTOR_NORM_SOFTNESS = (
    1.0  # v / sqrt(mean_c |v_c|^2 + this): ~v for small vectors, unit RMS for large ones
)


@dataclass
class PaiNNConfig(BackboneConfig):
    name: str = "painn"
    hidden: int = 128
    layers: int = 3
    num_radial: int = 20
    radial_basis: Literal["gaussian", "bessel", "expnorm"] = "bessel"
    envelope: Literal["cosine", "polynomial"] = "polynomial"
    # "layer": normalise every block's input (FeatureNorm; the scalable presets set it); "none" (the default, also
    # for a model.json without the key) is the original PaiNN.
    norm: Literal["none", "layer"] = "none"


class FeatureNorm(nn.Module):
    """A block's input normalisation: LayerNorm on scalars (N, F) and v / sqrt(mean_c |v_c|^2 + 1) on vectors
    (N, 3, F), rotation-equivariant and smooth at v = 0; both unchanged when disabled."""

    def __init__(self, hidden: int, enabled: bool):
        super().__init__()
        self.enabled, self.softness = enabled, VECTOR_NORM_SOFTNESS
        self.scalars = nn.LayerNorm(hidden) if enabled else nn.Identity()

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        if not self.enabled:
            return s, v
        mean_square = (v * v).sum(dim=1, keepdim=True).mean(dim=-1, keepdim=True)
        return self.scalars(s), v * torch.rsqrt(mean_square + self.softness)


class Message(nn.Module):
    def __init__(self, hidden: int, num_radial: int, norm: bool):
        super().__init__()
        self.hidden = hidden
        self.norm = FeatureNorm(hidden, norm)
        self.phi = nn.Sequential(
            nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden)
        )
        self.filter = nn.Linear(num_radial, 3 * hidden)

    def forward(
        self, s: Tensor, v: Tensor, rbf: Tensor, env: Tensor, graph: Graph, v_is_zero: bool = False
    ) -> tuple[Tensor, Tensor]:
        """``v_is_zero`` (the first layer): the v_j dv_v term vanishes, so its per-edge gather, product and their
        derivatives (the largest tensors of the step, E x 3 x F) are skipped."""
        center, neighbour = graph.edge_index[0], graph.edge_index[1]
        s_in, v_in = self.norm(s, v)
        filters = (self.filter(rbf) * env.unsqueeze(-1)).index_select(
            0, graph.pairs[1]
        )  # per pair -> per edge
        x = self.phi(s_in).index_select(0, neighbour) * filters
        ds, dvv, dvs = x.split(self.hidden, dim=-1)
        dv = dvs.unsqueeze(1) * graph.unit_vectors.unsqueeze(-1)
        if not v_is_zero:
            dv = dv + v_in.index_select(0, neighbour) * dvv.unsqueeze(1)
        return s + scatter_sum(ds, center, graph.num_atoms), v + scatter_sum(
            dv, center, graph.num_atoms
        )


class Update(nn.Module):
    def __init__(self, hidden: int, norm: bool):
        super().__init__()
        self.hidden, self.eps = hidden, NORM_EPS
        self.norm = FeatureNorm(hidden, norm)
        self.uv = nn.Linear(hidden, 2 * hidden, bias=False)
        self.mlp = nn.Sequential(
            nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3 * hidden)
        )

    def forward(self, s: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        s_in, v_in = self.norm(s, v)
        uv, vv = self.uv(v_in).split(self.hidden, dim=-1)
        norm = torch.sqrt((vv * vv).sum(dim=1) + self.eps)
        avv, asv, ass = self.mlp(torch.cat([s_in, norm], dim=-1)).split(self.hidden, dim=-1)
        return s + ass + asv * (uv * vv).sum(dim=1), v + avv.unsqueeze(1) * uv


class PaiNN(Backbone):
    config_class = PaiNNConfig

    def __init__(self, config: PaiNNConfig):
        super().__init__(config)
        self.embedding = nn.Embedding(NUM_ELEMENTS, config.hidden)
        norm = config.norm == "layer"
        self.messages = nn.ModuleList(
            Message(config.hidden, config.num_radial, norm) for _ in range(config.layers)
        )
        self.updates = nn.ModuleList(Update(config.hidden, norm) for _ in range(config.layers))

    @property
    def has_vectors(self) -> bool:
        return True

    def forward(self, graph: Graph) -> Features:
        rbf, env = self.pair_basis(graph)  # radial filters are computed per unordered pair
        s = self.embedding(graph.numbers)
        v = s.new_zeros(s.shape[0], 3, s.shape[1])
        first = True
        for message, update in zip(self.messages, self.updates):
            s, v = message(s, v, rbf, env, graph, first)
            s, v = update(s, v)
            first = False
        return Features(s, v)
