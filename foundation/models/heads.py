"""Output heads on top of backbone features.

- EnergyHead: per-atom energies e_i -> E = sum_i (scale * e_i + shift + ref[Z_i]); normalisation as float64 buffers.
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

from typing import Mapping

import torch
from ase.data import atomic_numbers
from torch import Tensor, nn

from foundation.models.base import NUM_ELEMENTS, Features, Graph
from foundation.models.blocks import CosineEnvelope, GaussianBasis, mlp, rename_state_keys, scatter_sum, segment_mean

EDGE_BASIS_SIZE = 16


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """Sums of energies run in at least float32 (bf16 per-atom energies summed in bf16 lose eV)."""
    return torch.promote_types(dtype, torch.float32)


class EnergyHead(nn.Module):
    """Per-atom MLP; energy = sum_i (scale * e_i + shift + element_reference[Z_i]) in eV."""

    _NORMALIZATION = ("element_references", "scale", "shift")

    def __init__(self, hidden: int):
        super().__init__()
        self.mlp = mlp([hidden, max(hidden // 2, 1), 1])
        self.register_buffer("element_references", torch.zeros(NUM_ELEMENTS, dtype=torch.float64))
        self.register_buffer("scale", torch.ones((), dtype=torch.float64))
        self.register_buffer("shift", torch.zeros((), dtype=torch.float64))

    def _apply(self, fn, recurse=True):  # noqa: ANN001 - nn.Module signature
        """Keep the normalisation buffers float64 whatever the model's dtype (bf16 would round -5000 eV to 16 eV)."""
        kept = {name: self._buffers[name] for name in self._NORMALIZATION}
        super()._apply(fn, recurse)
        for name, old in kept.items():
            self._buffers[name] = old.to(device=self._buffers[name].device, dtype=torch.float64)
        return self

    def set_normalization(self, element_references: Mapping[str | int, float] | None = None,
                          scale: float | None = None, shift: float | None = None) -> None:
        """Per-element reference energies (keys: symbols or Z), and scale / per-atom shift (None: unchanged)."""
        if element_references is not None:
            refs = torch.zeros(NUM_ELEMENTS, dtype=torch.float64)
            for key, value in element_references.items():
                z = atomic_numbers[key] if isinstance(key, str) else int(key)
                refs[z] = float(value)
            self.element_references.copy_(refs)
        if scale is not None:
            self.scale.fill_(float(scale))
        if shift is not None:
            self.shift.fill_(float(shift))

    def atom_energies(self, features: Features, graph: Graph) -> Tensor:
        """Per-atom energy contributions (N,) eV, references included; they sum to `forward` per structure."""
        acc = _accumulation_dtype(features.scalars.dtype)
        atom = self.mlp(features.scalars).squeeze(-1).to(acc)
        return atom * self.scale.to(acc) + self.shift.to(acc) + self.element_references.to(acc)[graph.numbers]

    def forward(self, features: Features, graph: Graph) -> Tensor:
        return scatter_sum(self.atom_energies(features, graph), graph.batch, graph.num_graphs)


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

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - nn.Module signature
        rename_state_keys(state_dict, prefix, {"neighbor.": "neighbour."})  # older weights: "neighbor"
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, scalars: Tensor, graph: Graph) -> Tensor:
        center, neighbour = graph.edge_index[0], graph.edge_index[1]
        rbf, env = self.radial(graph.lengths).to(graph.dtype), self.envelope(graph.lengths).to(graph.dtype)
        z = self.center(scalars).index_select(0, center) + self.neighbour(scalars).index_select(0, neighbour) + self.edge(rbf)
        return self.out(z) * env.unsqueeze(-1)


class VectorHead(nn.Module):
    """Per-atom vector (N, 3), equivariant under rotations and invariant under translations."""

    __constants__ = ["from_vectors"]  # TorchScript compiles only the branch this head has modules for

    def __init__(self, hidden: int, cutoff: float, from_vectors: bool):
        super().__init__()
        self.from_vectors = from_vectors
        if from_vectors:  # sum_f v_if g_f(s_i): gated vector channels
            self.gate = mlp([hidden, hidden, hidden])
        else:             # sum_j w_ij r_ij/|r_ij|
            self.weights = EdgeWeights(hidden, cutoff, 1)
        self.register_buffer("scale", torch.ones(()))  # the label RMS (set_scale): outputs of O(1) have its size

    def set_scale(self, scale: float) -> None:
        self.scale.fill_(float(scale))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - nn.Module signature
        state_dict.setdefault(prefix + "scale", torch.ones(()))  # weights saved before heads had a scale: 1
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, features: Features, graph: Graph) -> Tensor:
        if self.from_vectors:
            vectors = features.vectors
            assert vectors is not None, "this head needs a backbone with vector features"
            out = (vectors * self.gate(features.scalars).unsqueeze(1)).sum(dim=-1)
        else:
            w = self.weights(features.scalars, graph)
            out = scatter_sum(w * graph.unit_vectors, graph.edge_index[0], graph.num_atoms)
        return out * self.scale.to(out.dtype)


class StressHead(nn.Module):
    """sigma_b = mean_{i in b} (p_i I + sum_j w_ij u_ij u_ij^T): symmetric, rotates as a tensor, intensive."""

    def __init__(self, hidden: int, cutoff: float):
        super().__init__()
        self.isotropic = mlp([hidden, max(hidden // 2, 1), 1])
        self.weights = EdgeWeights(hidden, cutoff, 1)
        self.register_buffer("scale", torch.ones(()))  # the stress label RMS (set_scale)

    def set_scale(self, scale: float) -> None:
        self.scale.fill_(float(scale))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001 - nn.Module signature
        state_dict.setdefault(prefix + "scale", torch.ones(()))  # weights saved before heads had a scale: 1
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, features: Features, graph: Graph) -> Tensor:
        u = graph.unit_vectors
        w = self.weights(features.scalars, graph)
        atom = scatter_sum(w.unsqueeze(-1) * u.unsqueeze(-1) * u.unsqueeze(-2), graph.edge_index[0], graph.num_atoms)
        eye = torch.eye(3, dtype=atom.dtype, device=atom.device)
        atom = atom + self.isotropic(features.scalars).unsqueeze(-1) * eye
        out = segment_mean(atom, graph.batch, graph.num_graphs)
        return out * self.scale.to(out.dtype)
