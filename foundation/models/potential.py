"""The Potential: a backbone plus heads; energies, and forces/stress by autograd inside forward.

Derivatives (DESIGN.md): a symmetric strain eps (B, 3, 3) displaces positions and cell before edge vectors are
computed, r' = r (1 + eps[batch]), cell' = cell (1 + eps); then forces = -dE/dr and stress = (1/V) dE/deps
(ASE sign), with create_graph=self.training so that a loss on forces/stress trains the model (and DeepSpeed
sees every gradient inside module.forward). Works under torch.no_grad (grad is enabled locally); in eval
mode the outputs are detached.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from foundation.data.graph import edge_vectors
from foundation.legacy import upgrade_state_dict
from foundation.models.base import Graph
from foundation.models.blocks import scatter_sum
from foundation.models.config import ModelConfig, resolve_model_config
from foundation.models.heads import AtomScalarHead, EnergyHead, StressHead, VectorHead
from foundation.models.limits import check_parameter_count
from foundation.models.registry import build_backbone


def _grad(
    output: Tensor, inputs: list[Tensor], create_graph: bool, retain_graph: bool
) -> list[Tensor]:
    """d(sum output)/d(inputs), zeros where an input does not influence the output."""
    if not output.requires_grad:
        return [torch.zeros_like(x) for x in inputs]
    return list(
        torch.autograd.grad(
            output.sum(),
            inputs,
            create_graph=create_graph,
            retain_graph=retain_graph,
            materialize_grads=True,
        )
    )


class Potential(nn.Module):
    """forward(batch, compute=None) -> {"energy" (B,) eV, "forces" (N,3) eV/A, "stress" (B,3,3) eV/A^3,
    "noise" (N,3), "property" (B,)}: the keys its heads provide (`outputs`), or the subset `compute` asks for;
    `compute` may also ask for "energies" (N,) eV, the per-atom energy contributions, which sum to "energy"."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if torch.get_default_device().type != "meta":
            check_model_size(config)
        self.config = config
        heads = config.heads
        self.backbone = build_backbone(config.backbone)
        hidden, cutoff, vectors = (
            self.backbone.hidden,
            self.backbone.cutoff,
            self.backbone.has_vectors,
        )
        self.energy_head = EnergyHead(hidden, heads.sources) if heads.energy else None
        self.force_head = VectorHead(hidden, cutoff, vectors) if heads.forces == "direct" else None
        self.stress_head = StressHead(hidden, cutoff) if heads.stress == "direct" else None
        self.denoise_head: nn.Module | None = None
        if heads.denoise == "derivative":  # noise = -d(scalar)/dpositions
            self.denoise_head = AtomScalarHead(hidden, "sum")
        elif heads.denoise == "direct":
            self.denoise_head = VectorHead(hidden, cutoff, vectors)
        self.property_head = (
            AtomScalarHead(hidden, heads.property.pooling) if heads.property else None
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Weights saved by foundation 0.1.0 load too: foundation/legacy.py converts them first."""
        upgrade_state_dict(state_dict, prefix, self.state_dict(keep_vars=True).keys())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def cutoff(self) -> float:
        """Graph cutoff in A (build batches with it)."""
        return self.backbone.cutoff

    @property
    def max_neighbours(self) -> int | None:
        return self.config.backbone.max_neighbours

    @property
    def dtype(self) -> torch.dtype:
        """The parameters' dtype."""
        return next(self.parameters()).dtype

    @property
    def geometry_dtype(self) -> torch.dtype:
        """The dtype batches should carry positions and cell in: the model's, but at least float32 (under a bf16
        model, edge vectors are formed in float32 and only the edge features are cast to bf16)."""
        return torch.promote_types(self.dtype, torch.float32)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Keys forward returns by default."""
        heads = self.config.heads
        keys = [
            ("energy", heads.energy),
            ("forces", heads.forces != "none"),
            ("stress", heads.stress != "none"),
            ("noise", heads.denoise != "none"),
            ("property", heads.property is not None),
        ]
        return tuple(key for key, present in keys if present)

    @property
    def computable(self) -> tuple[str, ...]:
        """Keys `compute` may ask for: `outputs`, plus per-atom "energies" when there is an energy head."""
        return self.outputs + (("energies",) if self.energy_head is not None else ())

    @property
    def sources(self) -> tuple[str, ...]:
        """The data sources with their own energy reference (empty: one reference for every frame)."""
        return tuple(self.config.heads.sources)

    def set_normalization(
        self,
        element_references: Mapping[str | int, float] | None = None,
        scale: float | None = None,
        shift: float | None = None,
        *,
        forces_scale: float | None = None,
        stress_scale: float | None = None,
        noise_scale: float | None = None,
        source_references: Mapping[str, Mapping[str | int, float]] | None = None,
    ) -> None:
        """Energy normalisation: E = sum_i (scale * e_i + shift + element_references[Z_i]) (buffers, saved), with a
        reference table per source when the model has sources; and the output scales of the direct heads present
        (forces, stress, denoising); None leaves a value unchanged."""
        if (
            element_references is not None
            or scale is not None
            or shift is not None
            or source_references
        ):
            if self.energy_head is None:
                raise ValueError("this potential has no energy head (heads.energy: false)")
            self.energy_head.set_normalization(
                element_references, scale, shift, source_references if source_references else None
            )
        for head, value in (
            (self.force_head, forces_scale),
            (self.stress_head, stress_scale),
            (self.denoise_head if self.config.heads.denoise == "direct" else None, noise_scale),
        ):
            if head is not None and value is not None:
                head.set_scale(value)

    def embed(self, batch: Any) -> tuple[Any, Graph]:
        """(backbone features, graph) of a batch at its own positions, without derivatives: what a frozen
        probe reads."""
        vectors = edge_vectors(
            batch.positions, batch.cell, batch.batch, batch.edge_index, batch.shifts
        )
        graph = Graph.from_vectors(
            batch.numbers,
            batch.batch,
            batch.edge_index,
            batch.shifts,
            vectors,
            int(batch.num_graphs),
            self.dtype,
        )
        return self.backbone(graph), graph

    def forward(self, batch: Any, compute: Iterable[str] | None = None) -> dict[str, Tensor]:
        want = set(self.outputs if compute is None else compute)
        unknown = want - set(self.computable)
        if unknown:
            raise ValueError(
                f"cannot compute {sorted(unknown)}: this potential provides {list(self.computable)}"
            )
        heads = self.config.heads
        forces_by_grad = "forces" in want and heads.forces == "derivative"
        stress_by_grad = "stress" in want and heads.stress == "derivative"
        noise_by_grad = "noise" in want and heads.denoise == "derivative"
        need_grad = forces_by_grad or stress_by_grad or noise_by_grad
        with torch.enable_grad() if need_grad else contextlib.nullcontext():
            positions, cell = batch.positions, batch.cell
            if (forces_by_grad or noise_by_grad) and not positions.requires_grad:
                positions = positions.detach().requires_grad_(True)
            strain = None
            if stress_by_grad:
                strain = torch.zeros_like(cell).requires_grad_(True)
                sym = 0.5 * (strain + strain.transpose(1, 2))
                displaced = positions + torch.bmm(
                    positions.unsqueeze(1), sym.index_select(0, batch.batch)
                ).squeeze(1)
                cell = cell + torch.bmm(cell, sym)
            else:
                displaced = positions
            vectors = edge_vectors(displaced, cell, batch.batch, batch.edge_index, batch.shifts)
            graph = Graph.from_vectors(
                batch.numbers,
                batch.batch,
                batch.edge_index,
                batch.shifts,
                vectors,
                int(batch.num_graphs),
                self.dtype,
            )
            features = self.backbone(graph)
            out = self._heads(
                features,
                graph,
                want,
                bool({"energy", "energies"} & want) or forces_by_grad or stress_by_grad,
                getattr(batch, "source", None),
            )
            out.update(
                self._derivatives(
                    out,
                    positions,
                    strain,
                    batch,
                    forces_by_grad,
                    stress_by_grad,
                    noise_by_grad,
                    features,
                    graph,
                )
            )
        if "energy" not in want:
            out.pop("energy", None)
        if need_grad and not self.training:
            out = {key: value.detach() for key, value in out.items()}
        return out

    def _heads(
        self, features: Any, graph: Graph, want: set[str], need_energy: bool, source: Tensor | None
    ) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        if need_energy and self.energy_head is not None:
            atom = self.energy_head.atom_energies(features, graph, source)
            out["energy"] = scatter_sum(atom, graph.batch, graph.num_graphs)
            if "energies" in want:
                out["energies"] = atom
        if "forces" in want and self.force_head is not None:
            out["forces"] = self.force_head(features, graph)
        if "stress" in want and self.stress_head is not None:
            out["stress"] = self.stress_head(features, graph)
        if "noise" in want and self.config.heads.denoise == "direct":
            out["noise"] = self.denoise_head(features, graph)
        if "property" in want:
            out["property"] = self.property_head(features, graph)
        return out

    def _derivatives(
        self,
        out: dict[str, Tensor],
        positions: Tensor,
        strain: Tensor | None,
        batch: Any,
        forces_by_grad: bool,
        stress_by_grad: bool,
        noise_by_grad: bool,
        features: Any,
        graph: Graph,
    ) -> dict[str, Tensor]:
        result: dict[str, Tensor] = {}
        create = self.training
        if forces_by_grad or stress_by_grad:
            inputs = ([positions] if forces_by_grad else []) + ([strain] if stress_by_grad else [])
            grads = _grad(
                out["energy"], inputs, create_graph=create, retain_graph=create or noise_by_grad
            )
            if forces_by_grad:
                result["forces"] = -grads[0]
            if stress_by_grad:
                # zero (not NaN) for molecules, slabs and wires: stress needs a volume
                cell = batch.cell
                volume = (torch.linalg.cross(cell[:, 0], cell[:, 1]) * cell[:, 2]).sum(-1).abs()
                periodic = (volume > 0) & batch.pbc.to(volume.device).all(dim=1)
                safe = torch.where(periodic, volume, torch.ones_like(volume))
                result["stress"] = torch.where(
                    periodic.view(-1, 1, 1),
                    grads[-1] / safe.view(-1, 1, 1),
                    torch.zeros_like(grads[-1]),
                )
        if noise_by_grad:
            scalar = self.denoise_head(features, graph)
            result["noise"] = -_grad(scalar, [positions], create_graph=create, retain_graph=create)[
                0
            ]
        return result


class _NoRandomFill(TorchFunctionMode):
    """`nn.init.normal_` leaves its tensor as it is: a meta tensor has no values to fill, and torch's meta
    normal_ costs seconds on its first call in a process."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is nn.init.normal_:
            return args[0] if args else kwargs["tensor"]
        return func(*args, **kwargs)


def check_model_size(config: ModelConfig) -> None:
    """Refuse a model beyond the size bounds of foundation/models/limits.py, allocating nothing (its fields are
    checked when the config is made, its parameters counted here)."""
    check_parameter_count(parameter_count(config), config)


def parameter_count(config: ModelConfig) -> int:
    """Parameters and buffers of the Potential `config` builds, counted on the meta device (no memory)."""
    with torch.device("meta"), _NoRandomFill():
        model = Potential(config)
    return sum(t.numel() for t in (*model.parameters(), *model.buffers()))


def build_potential(
    config: ModelConfig | Mapping[str, Any] | str | os.PathLike, overrides: Sequence[str] = ()
) -> Potential:
    """A Potential from a ModelConfig, a mapping, a YAML path, or a name under configs/model/ ("schnet")."""
    return Potential(resolve_model_config(config, overrides))
