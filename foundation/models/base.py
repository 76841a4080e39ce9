"""What every backbone shares: its config fields, the edge inputs it receives and the features it returns.

Edge convention (foundation.data.graph): edge e = (i, j) with i = edge_index[0] the centre atom and
j = edge_index[1] its neighbour; vectors[e] = r_j - r_i (+ periodic shift). Messages flow from j into i,
and both directions of every pair are present.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from foundation.config import ConfigError
from foundation.models.blocks import envelope, radial_basis

NUM_ELEMENTS = 119  # embedding rows: Z = 0..118


@dataclass
class BackboneConfig:
    """Fields every backbone understands; each backbone's config subclasses this with its own extras."""

    name: str
    hidden: int = 128
    layers: int = 3
    cutoff: float = 5.0
    num_radial: int = 32
    radial_basis: Literal["gaussian", "bessel", "expnorm"] = "gaussian"
    envelope: Literal["cosine", "polynomial"] = "cosine"
    max_neighbors: int | None = None

    def __post_init__(self) -> None:
        for key in ("hidden", "layers", "num_radial"):
            if getattr(self, key) < 1:
                raise ConfigError(f"backbone.{key} must be >= 1, got {getattr(self, key)}")
        if self.cutoff <= 0:
            raise ConfigError(f"backbone.cutoff must be > 0, got {self.cutoff}")


@dataclass
class Graph:
    """Edges of a batch as one forward pass sees them (vectors already from the displaced positions/cell)."""

    numbers: Tensor       # (N,) atomic numbers
    batch: Tensor         # (N,) structure index of each atom
    edge_index: Tensor    # (2, E) centre i, neighbour j
    lengths: Tensor       # (E,) |r_j - r_i|, in the geometry dtype (the batch's: float32 under a bf16 model)
    unit_vectors: Tensor  # (E, 3) (r_j - r_i) / |r_j - r_i|, in the feature dtype
    num_graphs: int
    dtype: torch.dtype    # the features' (parameters') dtype

    @property
    def num_atoms(self) -> int:
        return int(self.numbers.shape[0])

    def expand(self, radial: nn.Module, envelope: nn.Module) -> tuple[Tensor, Tensor]:
        """(radial(lengths) (E, R), envelope(lengths) (E,)), evaluated in the geometry dtype, returned in the
        feature dtype."""
        return radial(self.lengths).to(self.dtype), envelope(self.lengths).to(self.dtype)

    @classmethod
    def from_vectors(cls, numbers: Tensor, batch: Tensor, edge_index: Tensor, vectors: Tensor, num_graphs: int,
                     dtype: torch.dtype) -> "Graph":
        lengths = torch.linalg.vector_norm(vectors, dim=-1)
        return cls(numbers, batch, edge_index, lengths, (vectors / lengths.unsqueeze(-1)).to(dtype), num_graphs, dtype)


@dataclass
class Features:
    """Per-atom backbone outputs: invariant scalars (N, F) and, for equivariant backbones, vectors (N, 3, F)."""

    scalars: Tensor
    vectors: Tensor | None = None


class Backbone(nn.Module):
    """Base of all backbones: holds the config, the radial basis and the smooth cutoff envelope."""

    config_class: type[BackboneConfig] = BackboneConfig

    def __init__(self, config: BackboneConfig):
        super().__init__()
        self.config = config
        self.hidden = config.hidden
        self.cutoff = config.cutoff
        self.radial = radial_basis(config.radial_basis, config.cutoff, config.num_radial)
        self.envelope = envelope(config.envelope, config.cutoff)

    @property
    def has_vectors(self) -> bool:
        """True when forward returns equivariant vector features."""
        return False

    def edge_basis(self, graph: Graph) -> tuple[Tensor, Tensor]:
        """(radial basis (E, R), envelope (E,)); the envelope is zero beyond the cutoff."""
        return graph.expand(self.radial, self.envelope)

    def forward(self, graph: Graph) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError
