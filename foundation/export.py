"""Export a Potential for MD engines: one TorchScript file that computes energy, per-atom energies, forces and
stress of one structure from (numbers, positions, cell, pbc), with the neighbour list inside, so that it runs
where only torch is installed:

    model = torch.jit.load("model.pt")
    out = model(numbers (N,) int, positions (N,3) A, cell (3,3) A (rows), pbc (3,) bool)
    out["energy"] (), out["energies"] (N,), out["forces"] (N,3) eV/A, out["stress"] (3,3) eV/A^3 (ASE sign)

Inputs are cast to the model's geometry dtype (float32, or float64 for a float64 export); outputs come in it.
Every backbone of foundation.models scripts (their Graph and Features are TorchScript classes). The neighbour
search is the all-pairs search with a per-pair box of image shifts (foundation.data.graph's method without its
cell lists): time O(N^2) per call, memory bounded by searching blocks of atoms; fine up to a few thousand atoms.
Backbones built with max_neighbours are refused (the export has no neighbour cap).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from foundation.data.graph import edge_vectors
from foundation.models.base import Graph
from foundation.models.potential import Potential

METADATA = "metadata.json"  # extra file inside the TorchScript archive (torch.jit.load(..., _extra_files=...))
MAX_PAIRS_PER_BLOCK = 1 << 18  # atom pairs (i, j) examined at once by the neighbour search


class ExportError(ValueError):
    """A potential that cannot be exported (no energy head, a neighbour cap)."""


def search_frame(cell: Tensor, pbc: Tensor) -> Tensor:
    """The cell with each non-periodic row replaced by a unit vector orthogonal to the periodic rows (and to each
    other), so fractional coordinates exist for molecules, slabs and wires; shifts stay 0 along those rows."""
    if bool(pbc.all()):
        return cell
    periodic = torch.where(pbc.unsqueeze(1), cell, torch.zeros_like(cell))
    vh = torch.linalg.svd(periodic)[
        2
    ]  # rows beyond the rank of the periodic rows span their complement
    frame = periodic.clone()
    k = int(pbc.sum())
    for axis in range(3):
        if not bool(pbc[axis]):
            frame[axis] = vh[k]
            k += 1
    return frame


def neighbour_list(
    positions: Tensor,
    cell: Tensor,
    pbc: Tensor,
    cutoff: float,
    max_pairs: int = MAX_PAIRS_PER_BLOCK,
) -> tuple[Tensor, Tensor]:
    """edge_index (2, E) and integer-valued shifts (E, 3) of one structure in foundation.data.graph's 'ijS'
    convention (vec = positions[j] - positions[i] + shifts @ cell, 0 < |vec| < cutoff, both directions, self
    images included), in lexicographic (i, j, shift) order. TorchScript-compatible."""
    frame = search_frame(cell, pbc)
    if float(torch.linalg.det(frame).abs()) <= 1e-9 * float(
        torch.linalg.vector_norm(frame, dim=1).prod()
    ):
        raise ValueError("degenerate cell along its periodic axes")
    inverse = torch.linalg.inv(frame)
    frac = positions @ inverse
    wrap = torch.where(pbc, torch.floor(frac), torch.zeros_like(frac))
    frac = frac - wrap
    reach = (
        cutoff * torch.linalg.vector_norm(inverse, dim=0) * (1 + 1e-4)
    )  # cutoff in fractional units per axis
    n = positions.shape[0]
    block = max(1, max_pairs // max(n, 1))
    empty = torch.zeros(0, dtype=torch.long, device=frac.device)
    parts_i: list[Tensor] = [empty]
    parts_j: list[Tensor] = [empty]
    parts_s: list[Tensor] = [frac[:0]]
    for start in range(0, n, block):
        ds = frac.unsqueeze(0) - frac[start : start + block].unsqueeze(1)  # (b, N, 3): s_j - s_i
        lo = torch.where(pbc, torch.ceil(-reach - ds), torch.zeros_like(ds))
        hi = torch.where(pbc, torch.floor(reach - ds), torch.zeros_like(ds))
        size = (hi - lo + 1).clamp(min=0).long().reshape(-1, 3)
        count = size.prod(dim=1)
        owner = torch.repeat_interleave(count)
        rank = (
            torch.arange(owner.shape[0], device=frac.device)
            - (torch.cumsum(count, 0) - count)[owner]
        )
        size, low = size[owner], lo.reshape(-1, 3)[owner]
        s2 = rank % size[:, 2]
        s1 = torch.div(rank, size[:, 2], rounding_mode="floor") % size[:, 1]
        s0 = torch.div(rank, size[:, 1] * size[:, 2], rounding_mode="floor")
        image = low + torch.stack([s0, s1, s2], dim=1).to(frac.dtype)
        vec = (ds.reshape(-1, 3)[owner] + image) @ frame
        dist2 = (vec * vec).sum(dim=1)
        i = torch.div(owner, n, rounding_mode="floor") + start
        j = owner % n
        itself = (i == j) & (image == 0).all(
            dim=1
        )  # an atom is never its own neighbour; a coincident one is (as ASE)
        kept = torch.nonzero((dist2 < cutoff * cutoff) & ~itself).squeeze(1)
        i, j = i[kept], j[kept]
        parts_i.append(i)
        parts_j.append(j)
        parts_s.append(image[kept] + wrap[i] - wrap[j])
    return torch.stack([torch.cat(parts_i), torch.cat(parts_j)]), torch.cat(parts_s)


class ExportedPotential(nn.Module):
    """The scriptable single-structure wrapper of a Potential's backbone and heads (see the module docstring)."""

    def __init__(self, potential: Potential):
        super().__init__()
        if potential.energy_head is None:
            raise ExportError(
                "the potential has no energy head (heads.energy: false): nothing to export"
            )
        if potential.max_neighbours is not None:
            raise ExportError(
                f"backbone.max_neighbours={potential.max_neighbours}: the exported neighbour list "
                "has no neighbour cap; export a model built with max_neighbours: null"
            )
        self.backbone = potential.backbone
        self.energy_head = potential.energy_head
        self.force_head = potential.force_head  # None: forces = -dE/dr
        self.stress_head = potential.stress_head  # None: stress = (1/V) dE/d(strain)
        self.cutoff = float(potential.cutoff)
        source = (
            potential.config.heads.energy_source()
        )  # a multi-source model exports its default source's energy
        self.source_index = potential.sources.index(source) if source is not None else -1

    def forward(
        self, numbers: Tensor, positions: Tensor, cell: Tensor, pbc: Tensor
    ) -> dict[str, Tensor]:
        dtype = self.energy_head.mlp[0].weight.dtype  # the parameters' (features') dtype
        geometry = torch.promote_types(dtype, torch.float32)
        numbers = numbers.to(torch.long).reshape(-1)
        positions = positions.to(geometry).reshape(-1, 3).detach()
        cell = cell.to(device=positions.device, dtype=geometry).reshape(3, 3)
        pbc = pbc.to(device=positions.device, dtype=torch.bool).reshape(3)
        edge_index, shifts = neighbour_list(positions, cell, pbc, self.cutoff)
        batch = torch.zeros_like(numbers)
        if not torch.is_grad_enabled():
            raise RuntimeError(
                "forces and stress need autograd: do not call the exported model under torch.no_grad()"
            )
        positions.requires_grad_(True)
        strain = torch.zeros_like(cell).requires_grad_(True)
        sym = 0.5 * (strain + strain.transpose(0, 1))
        displaced, strained = positions + positions @ sym, cell + cell @ sym
        vectors = edge_vectors(displaced, strained.unsqueeze(0), batch, edge_index, shifts)
        graph = Graph.from_vectors(numbers, batch, edge_index, shifts, vectors, 1, dtype)
        features = self.backbone(graph)
        source: Tensor | None = None
        if self.source_index >= 0:
            source = torch.full((1,), self.source_index, dtype=torch.long, device=numbers.device)
        energies = self.energy_head.atom_energies(features, graph, source)
        energy = energies.sum()
        grads = torch.autograd.grad([energy], [positions, strain], allow_unused=True)
        forces, stress = _as_tensor(grads[0], positions), _as_tensor(grads[1], cell)
        forces = -forces
        volume = torch.linalg.det(cell).abs()
        stress = torch.where(
            pbc.all() & (volume > 0), stress / volume.clamp(min=1e-30), torch.zeros_like(stress)
        )
        force_head, stress_head = self.force_head, self.stress_head
        if force_head is not None:
            forces = force_head(features, graph).to(geometry)
        if stress_head is not None:
            stress = stress_head(features, graph)[0].to(geometry)
        return {
            "energy": energy.detach(),
            "energies": energies.detach(),
            "forces": forces.detach(),
            "stress": stress.detach(),
        }


def _as_tensor(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


@contextlib.contextmanager
def _quiet_jit() -> Iterator[None]:
    """Silence TorchScript's deprecation warnings (torch.export cannot yet capture a data-dependent neighbour
    search with autograd inside, so TorchScript it is)."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r".*torch\.jit\..* is deprecated", category=DeprecationWarning
        )
        yield


def script_potential(potential: Potential) -> torch.jit.ScriptModule:
    """The Potential as a TorchScript module (eval mode, in the potential's dtype). Its parameters are constants
    (a copy with requires_grad off): TorchScript's autodiff would otherwise also work out weight gradients, which
    halves the speed of SchNet-like models."""
    frozen = copy.deepcopy(potential).eval().requires_grad_(False)
    with _quiet_jit():
        return torch.jit.script(ExportedPotential(frozen).eval())


def export_potential(
    potential: Potential, out: str | os.PathLike, metadata: dict | None = None
) -> Path:
    """Write the TorchScript file OUT (torch.jit.save) with METADATA (JSON: cutoff, dtype, units, and what
    the caller adds, e.g. the release's name and weights sha256) stored inside the archive."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    module = script_potential(potential.cpu())
    info = {
        "format": "foundation-torchscript-v1",
        "cutoff": float(potential.cutoff),
        "dtype": str(potential.dtype).removeprefix("torch."),
        "inputs": ["numbers (N,) int", "positions (N,3) A", "cell (3,3) A, rows", "pbc (3,) bool"],
        "outputs": {
            "energy": "eV",
            "energies": "eV per atom",
            "forces": "eV/A",
            "stress": "eV/A^3, ASE sign (3x3)",
        },
        **(metadata or {}),
    }
    with _quiet_jit():
        torch.jit.save(
            module, str(out), _extra_files={METADATA: json.dumps(info, indent=1, sort_keys=True)}
        )
    return out


def read_metadata(path: str | os.PathLike) -> dict:
    """The metadata stored in an exported file."""
    extra = {METADATA: ""}
    with _quiet_jit():
        torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    return json.loads(extra[METADATA])
