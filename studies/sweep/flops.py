"""Training FLOPs of one optimisation step, counted with torch's FLOP counter.

The counter (torch.utils.flop_counter.FlopCounterMode) sees every matmul/convolution dispatched while it
is active, including those autograd runs: the forces and stress a potential computes inside forward
(autograd.grad with create_graph=True), and the backward pass of the loss through them (the double
backward). It counts matmul-like ops only (2 FLOPs per multiply-add); elementwise ops, scatters and
gathers are not counted, which is the usual convention of scaling-law studies (and understates message
passing on sparse graphs; the report says so).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from foundation.data.batch import collate_frames
from foundation.data.dataset import open_dataset
from foundation.models import build_potential
from foundation.train.objectives import Objective


@dataclasses.dataclass(frozen=True)
class StepFlops:
    """FLOPs of one training step on one batch, and the batch's size."""

    flops: int
    frames: int
    atoms: int

    @property
    def per_frame(self) -> float:
        return self.flops / self.frames

    @property
    def per_atom(self) -> float:
        return self.flops / self.atoms


def count_flops(fn: Callable[[], Any]) -> int:
    """Total FLOPs torch dispatches while running fn()."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def training_step_flops(
    model: torch.nn.Module, step_loss: Callable[[], torch.Tensor], *, frames: int, atoms: int
) -> StepFlops:
    """FLOPs of `step_loss()` (forward with the model's own force/stress derivatives, loss) and its backward.

    The model is put in training mode (so derivatives are built with create_graph=True) and its
    gradients are cleared afterwards; its parameters are not changed.
    """
    was_training = model.training
    model.train()
    try:
        flops = count_flops(lambda: step_loss().backward())
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return StepFlops(flops=flops, frames=int(frames), atoms=int(atoms))


@dataclasses.dataclass(frozen=True)
class RunCost:
    """What one optimizer step of a training config costs, averaged over representative batches."""

    n_params: int
    flops_per_step: float
    frames_per_step: float
    atoms_per_step: float

    @property
    def flops_per_frame(self) -> float:
        return self.flops_per_step / self.frames_per_step


def representative_batches(
    natoms: np.ndarray, max_atoms: int, n_batches: int, seed: int
) -> list[list[int]]:
    """Frame indices of `n_batches` micro-batches filled, like the atoms-balanced sampler, up to max_atoms
    with frames in a seeded random order (a frame larger than max_atoms forms a batch of its own)."""
    order = np.random.default_rng(seed).permutation(len(natoms))
    batches, current, atoms = [], [], 0
    for i in order:
        if current and atoms + natoms[i] > max_atoms:
            batches.append(current)
            if len(batches) == n_batches:
                return batches
            current, atoms = [], 0
        current.append(int(i))
        atoms += int(natoms[i])
    return batches + [current] if current and len(batches) < n_batches else batches


def parameter_count(model: torch.nn.Module) -> int:
    """Every parameter of the model (N of the scaling laws)."""
    return sum(p.numel() for p in model.parameters())


def measure_run_cost(train_config: Any, n_batches: int = 3, seed: int = 0) -> RunCost:
    """Parameter count and counted FLOPs per optimizer step of a TrainRunConfig on its own training split:
    the model's forward (outputs the objective needs, derivatives included), the objective's loss and
    backward, per micro-batch, times the gradient-accumulation steps."""
    cfg = train_config
    model = build_potential(cfg.model, cfg.model_overrides)
    objective = Objective(cfg.objective)
    clean, noisy = objective.outputs(model.outputs)
    dataset = open_dataset(cfg.data.path, split=cfg.data.train_split)
    max_neighbours = (
        cfg.data.max_neighbours if cfg.data.max_neighbours is not None else model.max_neighbours
    )
    steps = []
    for index in representative_batches(dataset.natoms, cfg.data.max_atoms, n_batches, seed):
        batch = collate_frames([dataset[i] for i in index], model.cutoff, max_neighbours)

        def step_loss() -> torch.Tensor:
            loss = torch.zeros(())
            if clean:
                out = model(batch, compute=clean)
                loss = (
                    loss
                    + objective.loss(objective.errors(out, batch), objective.counts(batch, None))[0]
                )
            if noisy:  # denoising runs a second forward; the noise values do not change the count
                loss = loss + model(batch, compute=noisy)["noise"].square().mean()
            return loss

        steps.append(
            training_step_flops(model, step_loss, frames=len(index), atoms=int(batch.natoms.sum()))
        )
    accum = cfg.engine.grad_accum
    return RunCost(
        n_params=parameter_count(model),
        flops_per_step=accum * float(np.mean([s.flops for s in steps])),
        frames_per_step=accum * float(np.mean([s.frames for s in steps])),
        atoms_per_step=accum * float(np.mean([s.atoms for s in steps])),
    )
