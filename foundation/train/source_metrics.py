"""Validation errors per data source: energy MAE (eV/atom) and force MAE (eV/A, over components) of the frames of
each source, beside the trivial baseline's (element references only, zero forces) on the same frames, logged as
val/energy_mae/SOURCE, val/energy_baseline_mae/SOURCE, val/forces_mae/SOURCE and val/forces_baseline_mae/SOURCE
(TensorBoard and metrics.jsonl)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from foundation.data.batch import AtomsBatch
from foundation.train.distributed import all_reduce_sum


class SourceErrors:
    """Sums of absolute errors (model and baseline) and their counts per source over one validation pass (every
    rank adds its batches; `values` reduces over ranks)."""

    TERMS = ("energy", "forces")

    def __init__(self, names: Sequence[str], device: torch.device, prefix: str = "val/"):
        self.names, self.prefix = list(names), prefix
        # per source and term: model error sum, baseline error sum, count (frames for energy, components for forces)
        self.sums = torch.zeros(
            len(self.names), len(self.TERMS), 3, dtype=torch.float64, device=device
        )

    def add(
        self, out: dict[str, torch.Tensor], baseline: dict[str, torch.Tensor], batch: AtomsBatch
    ) -> None:
        """Add one batch: the model's outputs `out` and the trivial baseline's `baseline` against its labels."""
        if not self.names or batch.source is None:
            return
        device = self.sums.device
        source = batch.source.to(device)
        natoms = batch.natoms.to(device).double()
        for k, term in enumerate(self.TERMS):
            label = getattr(batch, term)
            if term not in out or term not in baseline or label is None:
                continue
            for column, prediction in enumerate((out[term], baseline[term])):
                error = (
                    (prediction.double() - label.double().to(prediction.device)).abs().to(device)
                )
                if term == "energy":
                    per_frame = error / natoms
                else:
                    per_frame = torch.zeros(batch.num_graphs, dtype=torch.float64, device=device)
                    per_frame.index_add_(0, batch.batch.to(device), error.sum(-1))
                self.sums[:, k, column].index_add_(0, source, per_frame)
            self.sums[:, k, 2].index_add_(
                0, source, torch.ones_like(natoms) if term == "energy" else 3.0 * natoms
            )

    def values(self) -> dict[str, float]:
        """{"val/energy_mae/SOURCE": eV/atom, "val/energy_baseline_mae/SOURCE", "val/forces_mae/SOURCE": eV/A,
        "val/forces_baseline_mae/SOURCE"} of the sources that had frames ("val/" is the `prefix`)."""
        sums = all_reduce_sum(self.sums.clone()).cpu()
        out: dict[str, float] = {}
        for name, per_term in zip(self.names, sums.tolist()):
            for term, (model, baseline, count) in zip(self.TERMS, per_term):
                if count:
                    out[f"{self.prefix}{term}_mae/{name}"] = model / count
                    out[f"{self.prefix}{term}_baseline_mae/{name}"] = baseline / count
        return out
