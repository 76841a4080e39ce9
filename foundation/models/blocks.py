"""Building blocks shared by the backbones: radial bases, smooth cutoff envelopes, activations, scatter sums.

Every function here is dtype-agnostic (float32, float64, bfloat16): constants are created on the fly in the
dtype of the input, so `potential.double()` gives float64 results throughout.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def scatter_sum(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Sum rows of `src` into `size` rows by `index` (differentiable to any order)."""
    shape = list(src.shape)
    shape[0] = size
    return src.new_zeros(shape).index_add_(0, index, src)


def segment_mean(src: Tensor, index: Tensor, size: int) -> Tensor:
    """Mean of the rows of `src` per segment (empty segments give zero)."""
    total = scatter_sum(src, index, size)
    count = scatter_sum(torch.ones_like(index, dtype=src.dtype), index, size).clamp(min=1)
    return total / count.view((-1,) + (1,) * (src.dim() - 1))


class ShiftedSoftplus(nn.Module):
    """softplus(x) - log 2 (SchNet's activation: zero at zero)."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.softplus(x) - math.log(2.0)


class CosineEnvelope(nn.Module):
    """0.5 (cos(pi r / c) + 1) inside the cutoff, 0 beyond: value and slope vanish at r = c."""

    def __init__(self, cutoff: float):
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, r: Tensor) -> Tensor:
        inside = r < self.cutoff
        return torch.where(
            inside, 0.5 * (torch.cos(r * (math.pi / self.cutoff)) + 1.0), torch.zeros_like(r)
        )


class PolynomialEnvelope(nn.Module):
    """DimeNet's polynomial envelope of order p: value, slope and curvature vanish at r = c."""

    def __init__(self, cutoff: float, p: int = 6):
        super().__init__()
        self.cutoff, self.p = float(cutoff), int(p)

    def forward(self, r: Tensor) -> Tensor:
        p = self.p
        x = r / self.cutoff
        value = (
            1.0
            - (p + 1) * (p + 2) / 2 * x**p
            + p * (p + 2) * x ** (p + 1)
            - p * (p + 1) / 2 * x ** (p + 2)
        )
        return torch.where(r < self.cutoff, value, torch.zeros_like(r))


class GaussianBasis(nn.Module):
    """Gaussians centred on linspace(0, c, n) with width set by their spacing (SchNet, PyG's GaussianSmearing)."""

    def __init__(self, cutoff: float, num: int):
        super().__init__()
        offsets = torch.linspace(0.0, cutoff, num, device="cpu")  # CPU: see radial_basis
        self.coeff = -0.5 / float(offsets[1] - offsets[0]) ** 2
        self.register_buffer("offsets", offsets)

    def forward(self, r: Tensor) -> Tensor:
        return torch.exp(self.coeff * (r.unsqueeze(-1) - self.offsets) ** 2)


class BesselBasis(nn.Module):
    """sqrt(2/c) sin(n pi r / c) / r, n = 1..num (DimeNet, PaiNN); finite at r -> 0 is not needed (r > 0)."""

    def __init__(self, cutoff: float, num: int):
        super().__init__()
        self.cutoff = float(cutoff)
        self.register_buffer(
            "freqs",
            torch.arange(1, num + 1, dtype=torch.get_default_dtype(), device="cpu")
            * math.pi
            / cutoff,
        )

    def forward(self, r: Tensor) -> Tensor:
        r = r.unsqueeze(-1)
        return math.sqrt(2.0 / self.cutoff) * torch.sin(self.freqs * r) / r


class ExpNormalBasis(nn.Module):
    """TorchMD-Net's exp-normal smearing: exp(-beta (exp(-alpha r) - mu)^2), alpha = 5/c."""

    def __init__(self, cutoff: float, num: int):
        super().__init__()
        self.alpha = 5.0 / cutoff
        start = math.exp(-cutoff)
        self.register_buffer("means", torch.linspace(start, 1.0, num, device="cpu"))
        self.register_buffer(
            "betas", torch.full((num,), (2.0 / num * (1.0 - start)) ** -2, device="cpu")
        )

    def forward(self, r: Tensor) -> Tensor:
        return torch.exp(-self.betas * (torch.exp(-self.alpha * r.unsqueeze(-1)) - self.means) ** 2)


RADIAL_BASES = {"gaussian": GaussianBasis, "bessel": BesselBasis, "expnorm": ExpNormalBasis}
ENVELOPES = {"cosine": CosineEnvelope, "polynomial": PolynomialEnvelope}


def radial_basis(kind: str, cutoff: float, num: int) -> nn.Module:
    """A radial basis module by name (gaussian | bessel | expnorm). Its few buffers are made on the CPU also
    inside a meta-device build (the size check of foundation/models/limits.py): meta arange and linspace
    cost seconds on their first call in a process."""
    return RADIAL_BASES[kind](cutoff, num)


def envelope(kind: str, cutoff: float) -> nn.Module:
    """A smooth cutoff envelope module by name (cosine | polynomial)."""
    return ENVELOPES[kind](cutoff)


def mlp(
    sizes: list[int], activation: type[nn.Module] = nn.SiLU, bias_last: bool = True
) -> nn.Sequential:
    """Linear layers of the given sizes with `activation` between them (none after the last)."""
    layers: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        last = k == len(sizes) - 2
        layers.append(nn.Linear(a, b, bias=bias_last or not last))
        if not last:
            layers.append(activation())
    return nn.Sequential(*layers)
