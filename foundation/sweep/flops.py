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
from typing import Any, Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


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


def training_step_flops(model: torch.nn.Module, batch: Any, loss_fn: Callable[[Any, Any], torch.Tensor], *,
                        frames: int, atoms: int) -> StepFlops:
    """FLOPs of forward (with the model's own force/stress derivatives), loss and backward on `batch`.

    The model is put in training mode (so derivatives are built with create_graph=True) and its
    gradients are cleared afterwards; its parameters are not changed.
    """
    was_training = model.training
    model.train()

    def step() -> None:
        loss = loss_fn(model(batch), batch)
        loss.backward()

    try:
        flops = count_flops(step)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return StepFlops(flops=flops, frames=int(frames), atoms=int(atoms))
