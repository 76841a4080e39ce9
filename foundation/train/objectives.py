"""Pre-training objectives: weighted E/F/S terms (derivative or direct, as the model's heads say) and denoising.

Every term is a sum of element-wise errors divided by a GLOBAL count (all ranks, all micro-batches of the
optimizer step), so ranks holding different numbers of atoms give exactly the loss of one big batch:
  energy   per structure, (E_pred - E) / natoms ("per_atom") or E_pred - E ("total"); the model's energy
           includes the manifest's element references, so this equals the error of reference-corrected energies
  forces   per Cartesian component of every atom (forces_loss atom_huber: one loss per atom, summed over the
           atoms and divided by the same component count)
  stress   per component of every structure that has a stress label
  denoise  per component of every noisy atom, on (noise_pred - noise) / noise_std
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from foundation.data.batch import AtomsBatch
from foundation.train.config import ObjectiveConfig

TERMS = ("energy", "forces", "stress", "denoise")


@dataclass(frozen=True)
class Objective:
    config: ObjectiveConfig

    @property
    def weights(self) -> dict[str, float]:
        c = self.config
        return {
            "energy": c.energy_weight,
            "forces": c.forces_weight,
            "stress": c.stress_weight,
            "denoise": c.denoise_weight,
        }

    @property
    def needs_clean(self) -> bool:
        w = self.weights
        return bool(w["energy"] or w["forces"] or w["stress"])

    @property
    def needs_noisy(self) -> bool:
        return self.weights["denoise"] > 0

    def outputs(self, available: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Model outputs to compute on the clean and on the noisy batch."""
        w = self.weights
        clean = tuple(
            k
            for k, t in (("energy", "energy"), ("forces", "forces"), ("stress", "stress"))
            if w[t] > 0
        )
        missing = [k for k in clean if k not in available] + (
            ["noise"] if self.needs_noisy and "noise" not in available else []
        )
        if missing:
            raise ValueError(
                f"the objective needs model outputs {missing} but the model provides {list(available)}: "
                "set the model config's heads accordingly"
            )
        return clean, (("noise",) if self.needs_noisy else ())

    def elementwise(self, error: Tensor, term: str = "") -> Tensor:
        """The loss of each error element: `loss` (with huber_delta), or the term's own loss when set:
        `energy_loss` (with energy_huber_delta), `forces_loss` (with forces_huber_delta). "atom_huber" takes the
        forces' components in atom order and gives one loss per atom, the Huber of its error vector's length:
        0.5 |e|^2 below delta (the sum of its components' "huber" losses), linear in |e| above, so the few atoms
        with large errors (hot MD frames) cannot dominate a step, whatever the error's direction."""
        kind, delta = self.config.loss, self.config.huber_delta
        if term == "energy" and self.config.energy_loss is not None:
            kind, delta = self.config.energy_loss, self.config.energy_huber_delta
        if term == "forces" and self.config.forces_loss is not None:
            kind, delta = self.config.forces_loss, self.config.forces_huber_delta
        if kind == "atom_huber":
            return vector_huber(error.reshape(-1, 3), delta)
        if kind == "mse":
            return error.square()
        if kind == "l1":
            return error.abs()
        return torch.nn.functional.huber_loss(
            error, torch.zeros_like(error), reduction="none", delta=delta
        )

    def errors(
        self, pred: dict[str, Tensor], batch: AtomsBatch | None, noisy: bool = False
    ) -> dict[str, Tensor]:
        """Element-wise errors (float32, labelled entries only) for each term this batch serves."""
        out: dict[str, Tensor] = {}
        if batch is None:
            return out
        if noisy:
            out["denoise"] = (
                (pred["noise"].float() - batch.noise.float()) / self.config.noise_std
            ).reshape(-1)
            return out
        w = self.weights
        if w["energy"] > 0 and batch.energy is not None:
            err = pred["energy"].float() - batch.energy.float()
            if self.config.energy_basis == "per_atom":
                err = err / batch.natoms.float()
            out["energy"] = err
        if w["forces"] > 0 and batch.forces is not None:
            out["forces"] = (pred["forces"].float() - batch.forces.float()).reshape(-1)
        if w["stress"] > 0 and batch.stress is not None:
            keep = batch.has_stress.bool()
            out["stress"] = (pred["stress"].float()[keep] - batch.stress.float()[keep]).reshape(-1)
        return out

    def counts(self, clean: AtomsBatch | None, noisy: AtomsBatch | None) -> Tensor:
        """Number of error elements per term of one micro-batch, from the labels alone (before any forward)."""
        w = self.weights
        c = torch.zeros(len(TERMS), dtype=torch.float64)
        if clean is not None:
            if w["energy"] > 0 and clean.energy is not None:
                c[0] = clean.num_graphs
            if w["forces"] > 0 and clean.forces is not None:
                c[1] = clean.forces.numel()
            if w["stress"] > 0 and clean.stress is not None:
                c[2] = 9 * int(clean.has_stress.sum())
        if noisy is not None and self.needs_noisy:
            c[3] = noisy.noise.numel()
        return c

    def loss(self, errors: dict[str, Tensor], global_counts: Tensor) -> tuple[Tensor, Tensor]:
        """(weighted loss: this micro-batch's share of the step's global mean, per-term [loss, |error|] sums)."""
        if not errors:
            raise ValueError(
                "no loss term has a label in this batch (check the dataset's labels and the weights)"
            )
        device = next(iter(errors.values())).device
        total = torch.zeros((), device=device)
        sums = torch.zeros(len(TERMS), 2, dtype=torch.float64, device=device)
        for t, term in enumerate(TERMS):
            if term not in errors or global_counts[t] == 0:
                continue
            err = errors[term]
            part = self.elementwise(err, term).sum()
            sums[t, 0] = part.detach().double()
            sums[t, 1] = err.detach().abs().sum().double()
            total = total + self.weights[term] * part / float(global_counts[t])
        return total, sums


def vector_huber(vectors: Tensor, delta: float) -> Tensor:
    """Huber loss of each row's Euclidean length: 0.5 r^2 for r <= delta, delta (r - delta / 2) above (finite
    gradients at r = 0: the square root is taken only where r > delta)."""
    squared = vectors.square().sum(dim=-1)
    length = squared.clamp(min=delta**2).sqrt()
    return torch.where(squared <= delta**2, 0.5 * squared, delta * (length - 0.5 * delta))
