"""Upper bounds on a model's size, checked from its config before anything is allocated.

A model.json comes from a file someone else wrote (a release, a shared run directory): `hidden: 16384`,
`layers: 1000000` or `cutoff: 100` must be refused with one line, not allocate gigabytes or build for
minutes. `BackboneConfig` checks its fields when it is made; `Potential` counts its parameters and buffers
on the meta device (no memory) before it builds them. Every shipped config (configs/model/, the
scalable-xl preset's 94M parameters included) is far inside the bounds.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from foundation.config import ConfigError

MAX_LAYERS = 64
MAX_WIDTH = 8192  # hidden, num_radial and every other per-layer width of a backbone
MAX_CUTOFF = 15.0  # A: the longest sensible interaction range (shipped models use 5 A)
MAX_PARAMETERS = 1_000_000_000  # parameters and buffers: 4 GB in fp32, 10x the largest preset
NOT_WIDTHS = ("layers", "max_neighbours")  # integer fields that are no width


class ModelTooLarge(ConfigError):
    """A model config whose size is beyond the bounds of foundation.models.limits."""


def check_backbone_fields(config: Any) -> None:
    """Refuse a backbone config (a BackboneConfig dataclass) whose layers, widths or cutoff exceed the bounds."""
    name = getattr(config, "name", "?")
    if config.layers > MAX_LAYERS:
        raise ModelTooLarge(
            f"backbone.layers: {config.layers} is more than {MAX_LAYERS} ({name}); refused before "
            "building the model"
        )
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.name in NOT_WIDTHS or isinstance(value, bool) or not isinstance(value, int):
            continue
        if value > MAX_WIDTH:
            raise ModelTooLarge(
                f"backbone.{field.name}: {value} is more than {MAX_WIDTH} ({name}); refused before "
                "building the model"
            )
    if not math.isfinite(config.cutoff) or config.cutoff > MAX_CUTOFF:
        raise ModelTooLarge(
            f"backbone.cutoff: {config.cutoff} A is beyond the longest sensible range, {MAX_CUTOFF} A "
            f"({name}); a neighbour list that long holds thousands of neighbours per atom"
        )


def check_parameter_count(count: int, config: Any) -> None:
    """Refuse a model of more than MAX_PARAMETERS parameters and buffers (`count`, from its meta build)."""
    if count > MAX_PARAMETERS:
        backbone = config.backbone
        raise ModelTooLarge(
            f"model {backbone.name} (hidden {backbone.hidden}, {backbone.layers} layers) has "
            f"{count:,} parameters, more than {MAX_PARAMETERS:,}; refused before building it"
        )
