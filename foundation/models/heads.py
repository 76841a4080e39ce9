"""Output heads on top of backbone features.

- EnergyHead: per-atom energies e_i -> E = sum_i (scale * e_i + shift + ref[Z_i]); normalisation as float64 buffers.
  With `sources` (a multi-fidelity energy, as MACE's multihead or UMA's task tag): ref[Z_i] becomes
  source_references[s, Z_i] + source_offsets[s, Z_i] for the frame's source s: a fitted table per source (buffer)
  plus a learned per-source, per-element offset (parameter, starts at 0). A constant per element changes no force
  or stress (its derivative with respect to positions and strain is 0): sources share everything else.
- AtomScalarHead: a per-structure scalar (sum or mean of per-atom outputs): the denoising potential and the
  fine-tuning property head.
- VectorHead: a per-atom vector (direct forces, direct denoising): from the backbone's vector features when it
  has them, else from edge directions weighted by invariant features; it rotates with the structure.
- StressHead: a symmetric (B, 3, 3) tensor from per-atom isotropic terms and edge outer products, averaged per
  structure (intensive; unchanged by supercells).
Direct heads multiply their output by a `scale` buffer, the label RMS from the manifest (force_rms, stress_rms;
noise_std for denoising), as the energy head does with the force RMS: at initialisation every direct output has
the size of its labels, so direct and derivative heads start on an equal footing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from ase.data import atomic_numbers
from torch import Tensor, nn

from foundation.models.base import NUM_ELEMENTS, Features, Graph
from foundation.models.blocks import (
    CosineEnvelope,
    GaussianBasis,
    mlp,
    scatter_sum,
    segment_mean,
)

EDGE_BASIS_SIZE = 16
# The energy readout's last layer starts at 0.1 of PyTorch's default weights (and zero bias): an untrained potential
# predicts its reference energies and forces ~0.02 of the label RMS, at the zero-force baseline instead of random
# forces ~0.3 of the label RMS that training must first unlearn (scalable-xs on ../shared/data/dft: validation force
# MAE 0.66 at step 0 instead of 0.71-0.82 against 0.657 for zero forces). Not zero: every layer gets a gradient
# from the first step, and untrained models keep non-trivial forces for the physics tests.
READOUT_INIT_SCALE = 0.1


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Sums of energies run in at least float32 (bf16 per-atom energies summed in bf16 lose eV)."""
    return torch.promote_types(dtype, torch.float32)


def _reference_row(references: Mapping[str | int, float]) -> Tensor:
    """A (NUM_ELEMENTS,) float64 table from {symbol or Z: eV}."""
    row = torch.zeros(NUM_ELEMENTS, dtype=torch.float64)
    for key, value in references.items():
        row[atomic_numbers[key] if isinstance(key, str) else int(key)] = float(value)
    return row


class EnergyHead(nn.Module):
    """Per-atom MLP; energy = sum_i (scale * e_i + shift + element_reference[Z_i]) in eV; with `sources`, the
    reference of atom i is source_references[s, Z_i] + source_offsets[s, Z_i], s the index of its frame's source
    in `sources`."""

    _NORMALIZATION = ("element_references", "scale", "shift", "source_references")
    __constants__ = [
        "has_sources"
    ]  # TorchScript compiles only the branch this head has tensors for

    def __init__(self, hidden: int, sources: Sequence[str] = ()):
        super().__init__()
        self.sources = tuple(sources)
        self.has_sources = bool(self.sources)
        self.mlp = mlp([hidden, max(hidden // 2, 1), 1])
        with (
            torch.no_grad()
        ):  # the untrained energy is its references: forces start near zero, not at random
            self.mlp[-1].weight.mul_(READOUT_INIT_SCALE)
            self.mlp[-1].bias.zero_()
        self.register_buffer("element_references", torch.zeros(NUM_ELEMENTS, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))
        if self.sources:
            self.register_buffer(
                "source_references",
                torch.zeros(len(self.sources), NUM_ELEMENTS, dtype=torch.float64),
            )
            # which elements each source's table holds (its training frames had them): predicting a source's energy
            # for another element is refused (foundation.calculator)
            self.register_buffer(
                "source_elements", torch.zeros(len(self.sources), NUM_ELEMENTS, dtype=torch.bool)
            )
            self.source_offsets = nn.Parameter(torch.zeros(len(self.sources), NUM_ELEMENTS))

    def _apply(self, fn, recurse=True):
        """Keep the normalisation buffers float64 whatever the model's dtype (bf16 would round -5000 eV to 16 eV)."""
        kept = {name: self._buffers[name] for name in self._NORMALIZATION if name in self._buffers}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            self._buffers[name] = old.to(device=self._buffers[name].device, dtype=torch.float64)
        return self

    def set_normalization(
        self,
        element_references: Mapping[str | int, float] | None = None,
        scale: float | None = None,
        shift: float | None = None,
        source_references: Mapping[str, Mapping[str | int, float]] | None = None,
    ) -> None:
        """Per-element reference energies (keys: symbols or Z), scale / per-atom shift, and the reference table of
        each source ({source: {element: eV}}, sources of this head only) (None: unchanged)."""
        if element_references is not None:
            self.element_references.copy_(_reference_row(element_references))
        if source_references is not None:
            unknown = sorted(set(source_references) - set(self.sources))
            if unknown:
                raise ValueError(
                    f"references for sources {unknown}, but this energy head has sources "
                    f"{list(self.sources)}"
                )
            for name, references in source_references.items():
                row = self.sources.index(name)
                self.source_references[row] = _reference_row(references)
                self.source_elements[row] = False
                for key in references:
                    self.source_elements[
                        row, atomic_numbers[key] if isinstance(key, str) else int(key)
                    ] = True
        if scale is not None:
            self.scale.fill_(float(scale))
        if shift is not None:
            self.shift.fill_(float(shift))

    def atom_energies(
        self, features: Features, graph: Graph, source: Tensor | None = None
    ) -> Tensor:
        """Per-atom energy contributions (N,) eV, references included; they sum to `forward` per structure.
        `source` (B,) long: each structure's index into `sources` (needed when the head has sources)."""
        acc = _accumulation_dtype(features.scalars.dtype)
        atom = self.mlp(features.scalars).squeeze(-1).to(acc)
        return atom * self.scale.to(acc) + self.shift.to(acc) + self.references(graph, source, acc)

    def references(
        self, graph: Graph, source: Tensor | None, dtype: torch.dtype, learned: bool = True
    ) -> Tensor:
        """(N,) reference energy of every atom: its element's, of its frame's source when the head has sources
        (`learned=False`: the fitted table alone, without the learned per-source offsets)."""
        if not self.has_sources:
            return self.element_references.to(dtype)[graph.numbers]
        if source is None:
            raise ValueError(
                "this potential has an energy reference per data source (model.config.heads.sources): "
                "the batch must give each frame's source (collate_frames(..., sources=...))"
            )
        row = source.to(graph.numbers.device).index_select(0, graph.batch)
        fitted = self.source_references.to(dtype)[row, graph.numbers]
        return fitted + self.source_offsets.to(dtype)[row, graph.numbers] if learned else fitted

    def forward(self, features: Features, graph: Graph, source: Tensor | None = None) -> Tensor:
        return scatter_sum(
            self.atom_energies(features, graph, source), graph.batch, graph.num_graphs
        )


class AtomScalarHead(nn.Module):
    """Per-atom MLP pooled per structure (sum or mean) -> (B,)."""

    def __init__(self, hidden: int, pooling: str = "sum"):
        super().__init__()
        self.pooling = pooling
        self.mlp = mlp([hidden, max(hidden // 2, 1), 1])

    def forward(self, features: Features, graph: Graph) -> Tensor:
        atom = self.mlp(features.scalars).squeeze(-1)
        atom = atom.to(_accumulation_dtype(atom.dtype))
        if self.pooling == "sum":
            return scatter_sum(atom, graph.batch, graph.num_graphs)
        return segment_mean(atom, graph.batch, graph.num_graphs)


class EdgeWeights(nn.Module):
    """Invariant per-edge weights w_ij = MLP(A s_i + B s_j + C rbf(r_ij)) * envelope(r_ij), shape (E, out)."""

    def __init__(self, hidden: int, cutoff: float, out: int):
        super().__init__()
        self.center = nn.Linear(hidden, hidden)
        self.neighbour = nn.Linear(hidden, hidden, bias=False)
        self.radial = GaussianBasis(cutoff, EDGE_BASIS_SIZE)
        self.envelope = CosineEnvelope(cutoff)
        self.edge = nn.Linear(EDGE_BASIS_SIZE, hidden, bias=False)
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, out))

    def forward(self, scalars: Tensor, graph: Graph) -> Tensor:
        center, neighbour = graph.edge_index[0], graph.edge_index[1]
        rbf, env = (
            self.radial(graph.lengths).to(graph.dtype),
            self.envelope(graph.lengths).to(graph.dtype),
        )
        z = (
            self.center(scalars).index_select(0, center)
            + self.neighbour(scalars).index_select(0, neighbour)
            + self.edge(rbf)
        )
        return self.out(z) * env.unsqueeze(-1)


class ScaledHead(nn.Module):
    """A direct head's output scale: a `scale` buffer, the label RMS (`set_scale`), multiplies its output
    (`scaled`), so outputs of O(1) have the size of the labels; it is saved with the weights."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.ones(()))

    def set_scale(self, scale: float) -> None:
        self.scale.fill_(float(scale))

    def scaled(self, out: Tensor) -> Tensor:
        return out * self.scale.to(out.dtype)


class VectorHead(ScaledHead):
    """Per-atom vector (N, 3), equivariant under rotations and invariant under translations."""

    __constants__ = [
        "from_vectors"
    ]  # TorchScript compiles only the branch this head has modules for

    def __init__(self, hidden: int, cutoff: float, from_vectors: bool):
        super().__init__()
        self.from_vectors = from_vectors
        if from_vectors:  # sum_f v_if g_f(s_i): gated vector channels
            self.gate = mlp([hidden, hidden, hidden])
        else:  # sum_j w_ij r_ij/|r_ij|
            self.weights = EdgeWeights(hidden, cutoff, 1)

    def forward(self, features: Features, graph: Graph) -> Tensor:
        if self.from_vectors:
            vectors = features.vectors
            assert vectors is not None, "this head needs a backbone with vector features"
            out = (vectors * self.gate(features.scalars).unsqueeze(1)).sum(dim=-1)
        else:
            w = self.weights(features.scalars, graph)
            out = scatter_sum(w * graph.unit_vectors, graph.edge_index[0], graph.num_atoms)
        return self.scaled(out)


class StressHead(ScaledHead):
    """sigma_b = mean_{i in b} (p_i I + sum_j w_ij u_ij u_ij^T): symmetric, rotates as a tensor, intensive."""

    def __init__(self, hidden: int, cutoff: float):
        super().__init__()
        self.isotropic = mlp([hidden, max(hidden // 2, 1), 1])
        self.weights = EdgeWeights(hidden, cutoff, 1)

    def forward(self, features: Features, graph: Graph) -> Tensor:
        u = graph.unit_vectors
        w = self.weights(features.scalars, graph)
        atom = scatter_sum(
            w.unsqueeze(-1) * u.unsqueeze(-1) * u.unsqueeze(-2),
            graph.edge_index[0],
            graph.num_atoms,
        )
        eye = torch.eye(3, dtype=atom.dtype, device=atom.device)
        atom = atom + self.isotropic(features.scalars).unsqueeze(-1) * eye
        out = segment_mean(atom, graph.batch, graph.num_graphs)
        return self.scaled(out)
