"""What every backbone shares: its config fields, the edge inputs it receives and the features it returns.

Edge convention (foundation.data.graph): edge e = (i, j) with i = edge_index[0] the centre atom and
j = edge_index[1] its neighbour; vectors[e] = r_j - r_i (+ periodic shift). Messages flow from j into i,
and both directions of every pair are present.
"""

from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import Tensor, nn

from foundation.config import ConfigError
from foundation.models.blocks import envelope, radial_basis
from foundation.models.limits import check_backbone_fields

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
    max_neighbours: int | None = None

    def __post_init__(self) -> None:
        for key, least in (("hidden", 1), ("layers", 1), ("num_radial", 2)):  # a basis spans >= 2
            if getattr(self, key) < least:
                raise ConfigError(f"backbone.{key} must be >= {least}, got {getattr(self, key)}")
        if self.cutoff <= 0:
            raise ConfigError(f"backbone.cutoff must be > 0, got {self.cutoff}")
        check_backbone_fields(self)


class Graph:
    """Edges of a batch as one forward pass sees them (vectors already from the displaced positions/cell).

    A plain class (no dataclass) so that TorchScript compiles it: every backbone scripts (foundation.export)."""

    def __init__(
        self,
        numbers: Tensor,
        batch: Tensor,
        edge_index: Tensor,
        lengths: Tensor,
        unit_vectors: Tensor,
        shifts: Tensor,
        num_graphs: int,
        dtype: torch.dtype,
    ):
        self.numbers = numbers  # (N,) atomic numbers
        self.batch = batch  # (N,) structure index of each atom
        self.edge_index = edge_index  # (2, E) centre i, neighbour j
        self.lengths = lengths  # (E,) |r_j - r_i|, geometry dtype (the batch's: float32 under bf16)
        self.unit_vectors = unit_vectors  # (E, 3) (r_j - r_i) / |r_j - r_i|, in the feature dtype
        self.shifts = shifts  # (E, 3) integer image shifts
        self.num_graphs = num_graphs
        self.dtype = dtype  # the features' (parameters') dtype
        self._pairs = torch.jit.annotate(Optional[tuple[Tensor, Tensor]], None)  # noqa: UP045 TorchScript's annotate reads typing.Optional

    @property
    def num_atoms(self) -> int:
        return int(self.numbers.shape[0])

    @property
    def pairs(self) -> tuple[Tensor, Tensor]:
        """(first (P,), inverse (E,)): one edge of every unordered pair {(i, j, S), (j, i, -S)} and the pair of
        each edge. Both edges of a pair have the same length bit for bit, so anything that depends on the distance
        alone (radial filters) can be computed per pair and expanded with `x.index_select(0, inverse)`: half the
        work when, as usual, both directions are present."""
        pairs = self._pairs
        if pairs is None:
            pairs = _pair_index(self.edge_index, self.shifts, self.num_atoms)
            self._pairs = pairs
        return pairs

    @staticmethod
    def from_vectors(
        numbers: Tensor,
        batch: Tensor,
        edge_index: Tensor,
        shifts: Tensor,
        vectors: Tensor,
        num_graphs: int,
        dtype: torch.dtype,
    ) -> "Graph":
        lengths = torch.linalg.vector_norm(vectors, dim=-1)
        unit = (vectors / lengths.unsqueeze(-1)).to(dtype)
        return Graph(numbers, batch, edge_index, lengths, unit, shifts, num_graphs, dtype)


def _pair_index(edge_index: Tensor, shifts: Tensor, num_atoms: int) -> tuple[Tensor, Tensor]:
    """Canonical key of each edge's unordered pair ((i, j, S) and (j, i, -S) share one), made unique (integer
    arithmetic only: nothing here is differentiable)."""
    i, j = edge_index[0], edge_index[1]
    s = shifts.round().long()
    if i.numel() == 0:
        return i.clone(), i.clone()
    first_nonzero = torch.where(s[:, 0] != 0, s[:, 0], torch.where(s[:, 1] != 0, s[:, 1], s[:, 2]))
    swap = (i > j) | ((i == j) & (first_nonzero < 0))
    a, b = torch.where(swap, j, i), torch.where(swap, i, j)
    s = torch.where(swap.unsqueeze(-1), -s, s)
    m = int(s.abs().max())
    k = 2 * m + 1
    key = (a * num_atoms + b) * k**3 + ((s[:, 0] + m) * k + s[:, 1] + m) * k + s[:, 2] + m
    _, inverse = torch.unique(key, return_inverse=True)
    edges = torch.arange(i.numel(), device=i.device)
    first = torch.full((int(inverse.max()) + 1,), i.numel(), dtype=torch.long, device=i.device)
    first = first.scatter_reduce(0, inverse, edges, reduce="amin")
    return first, inverse


class Features:
    """Per-atom backbone outputs: invariant scalars (N, F) and, for equivariant backbones, vectors (N, 3, F)."""

    def __init__(self, scalars: Tensor, vectors: Tensor | None = None):
        self.scalars = scalars
        self.vectors = vectors


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

    def embedding_modules(self) -> list[str]:
        """Names of the child modules that embed elements before the first interaction layer."""
        return [name for name, _ in self.named_children() if name.endswith("embedding")]

    def layer_modules(self, layer: int) -> list[str]:
        """Dotted names of interaction layer `layer` (0-based): entry `layer` of every ModuleList child holding one
        module per layer (PaiNN: messages.k and updates.k). Modules shared by all layers (MPNN's GRU) are in none."""
        if not 0 <= layer < self.config.layers:
            raise IndexError(
                f"layer {layer} out of range: the backbone has {self.config.layers} layers"
            )
        return [
            f"{name}.{layer}"
            for name, child in self.named_children()
            if isinstance(child, nn.ModuleList) and len(child) == self.config.layers
        ]

    def edge_basis(self, graph: Graph) -> tuple[Tensor, Tensor]:
        """(radial basis (E, R), envelope (E,)), evaluated in the geometry dtype, returned in the feature dtype;
        the envelope is zero beyond the cutoff."""
        return self.radial(graph.lengths).to(graph.dtype), self.envelope(graph.lengths).to(
            graph.dtype
        )

    def pair_basis(self, graph: Graph) -> tuple[Tensor, Tensor]:
        """`edge_basis` per unordered pair (see Graph.pairs): (P, R), (P,)."""
        lengths = graph.lengths.index_select(0, graph.pairs[0])
        return self.radial(lengths).to(graph.dtype), self.envelope(lengths).to(graph.dtype)

    def forward(self, graph: Graph) -> Features:  # pragma: no cover - abstract
        raise NotImplementedError
