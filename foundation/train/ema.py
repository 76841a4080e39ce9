"""Exponential moving average of the weights (fp32, on every rank; ZeRO 0-2 keep full weights in the module)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    """shadow = d * shadow + (1 - d) * param after each optimizer step, d = min(decay, (1 + n) / (10 + n));
    decay 0 keeps a plain copy of the current weights. Buffers (normalisers) are copied as they are."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.shadow = {name: p.detach().float().clone() for name, p in module.named_parameters()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, p in module.named_parameters():
            if (
                p.requires_grad
            ):  # a frozen parameter keeps its exact value (d x + (1 - d) x can round)
                self.shadow[name].mul_(d).add_(p.detach().float(), alpha=1 - d)

    def state_dict(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """A full fp32 state dict of `module` with EMA weights (buffers from the module, fp64 ones kept)."""
        state = {}
        for name, value in module.state_dict().items():
            tensor = self.shadow.get(name, value.detach())
            state[name] = (
                tensor.float().cpu().contiguous()
                if tensor.dtype in (torch.bfloat16, torch.float16)
                else tensor.cpu().contiguous()
            )
        return state

    def load_shadow(self, tensors: dict[str, torch.Tensor], updates: int) -> None:
        missing = set(self.shadow) - set(tensors)
        if missing:
            raise KeyError(f"EMA state lacks {sorted(missing)[:3]}")
        for name in self.shadow:
            self.shadow[name].copy_(tensors[name])
        self.updates = updates
