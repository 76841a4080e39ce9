"""Validation errors per data source: energy MAE (eV/atom) and force MAE (eV/A, over components) of the frames of
each source, logged as val/energy_mae/SOURCE and val/forces_mae/SOURCE (TensorBoard and metrics.jsonl)."""

from __future__ import annotations

from typing import Sequence

import torch

from foundation.data.batch import AtomsBatch
from foundation.train.distributed import all_reduce_sum


class SourceErrors:
    """Sums of absolute errors and their counts per source over one validation pass (every rank adds its batches;
    `values` reduces over ranks)."""

    def __init__(self, names: Sequence[str], device: torch.device):
        self.names = list(names)
        self.sums = torch.zeros(len(self.names), 4, dtype=torch.float64, device=device)  # |dE|/N, frames, |dF|, comps

    def add(self, out: dict[str, torch.Tensor], batch: AtomsBatch) -> None:
        if not self.names or batch.source is None:
            return
        device = self.sums.device
        source = batch.source.to(device)
        if "energy" in out and batch.energy is not None:
            error = (out["energy"].double() - batch.energy.double().to(out["energy"].device)).abs()
            per_atom = error.to(device) / batch.natoms.to(device)
            self.sums[:, 0].index_add_(0, source, per_atom)
            self.sums[:, 1].index_add_(0, source, torch.ones_like(per_atom))
        if "forces" in out and batch.forces is not None:
            error = (out["forces"].double() - batch.forces.double().to(out["forces"].device)).abs().sum(-1).to(device)
            per_frame = torch.zeros(batch.num_graphs, dtype=torch.float64, device=device)
            per_frame.index_add_(0, batch.batch.to(device), error)
            self.sums[:, 2].index_add_(0, source, per_frame)
            self.sums[:, 3].index_add_(0, source, 3.0 * batch.natoms.to(device).double())

    def values(self) -> dict[str, float]:
        """{"val/energy_mae/SOURCE": eV/atom, "val/forces_mae/SOURCE": eV/A} of the sources that had frames."""
        sums = all_reduce_sum(self.sums.clone()).cpu()
        out: dict[str, float] = {}
        for name, (energy, frames, forces, components) in zip(self.names, sums.tolist()):
            if frames:
                out[f"val/energy_mae/{name}"] = energy / frames
            if components:
                out[f"val/forces_mae/{name}"] = forces / components
        return out
