"""Learning-rate schedules (linear warm-up then cosine, plateau, or constant) with JSON state for resume."""

from __future__ import annotations

import math

from foundation.train.config import OptimizerConfig, ScheduleConfig


class LRSchedule:
    """lr(step) for optimizer step `step` (0-based); `observe(val_loss)` drives the plateau schedule."""

    def __init__(self, schedule: ScheduleConfig, optimizer: OptimizerConfig, max_steps: int):
        self.cfg, self.base_lr, self.max_steps = schedule, optimizer.lr, max_steps
        self.plateau_scale, self.best, self.bad = 1.0, math.inf, 0

    def lr(self, step: int) -> float:
        c = self.cfg
        if c.warmup_steps and step < c.warmup_steps:
            return self.base_lr * (step + 1) / c.warmup_steps
        if c.kind == "cosine":
            span = max(self.max_steps - c.warmup_steps, 1)
            progress = min(max(step - c.warmup_steps, 0) / span, 1.0)
            ratio = c.min_lr_ratio + (1 - c.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
            return self.base_lr * ratio
        if c.kind == "plateau":
            return self.base_lr * self.plateau_scale
        return self.base_lr

    def observe(self, val_loss: float) -> None:
        """A validation loss; the plateau schedule multiplies lr by `plateau_factor` after `plateau_patience`
        validations without improvement."""
        if val_loss < self.best:
            self.best, self.bad = val_loss, 0
            return
        self.bad += 1
        if self.cfg.kind == "plateau" and self.bad >= self.cfg.plateau_patience:
            self.plateau_scale *= self.cfg.plateau_factor
            self.bad = 0

    def state_dict(self) -> dict:
        return {
            "plateau_scale": self.plateau_scale,
            "best": self.best if math.isfinite(self.best) else None,
            "bad": self.bad,
        }

    def load_state_dict(self, state: dict) -> None:
        self.plateau_scale, self.bad = float(state["plateau_scale"]), int(state["bad"])
        self.best = math.inf if state["best"] is None else float(state["best"])
