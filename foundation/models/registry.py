"""Backbones by name: the `backbone.name` of a model config picks the class and its config dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from foundation.config import ConfigError, from_dict
from foundation.models.base import Backbone, BackboneConfig
from foundation.models.cgcnn import CGCNN
from foundation.models.mpnn import MPNN
from foundation.models.painn import PaiNN
from foundation.models.schnet import SchNet
from foundation.models.torchmd_et import EquivariantTransformer

BACKBONES: dict[str, type[Backbone]] = {
    "cgcnn": CGCNN,
    "schnet": SchNet,
    "mpnn": MPNN,
    "torchmd_et": EquivariantTransformer,
    "painn": PaiNN,
}


def backbone_class(name: str) -> type[Backbone]:
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone.name {name!r} (known: {', '.join(BACKBONES)})")
    return BACKBONES[name]


def backbone_config(
    data: BackboneConfig | Mapping[str, Any], origin: str = "<dict>"
) -> BackboneConfig:
    """The typed config of a backbone from a mapping with a `name` key (or an already typed config)."""
    if isinstance(data, BackboneConfig):
        return data
    if not isinstance(data, Mapping) or "name" not in data:
        raise ConfigError(
            f"'backbone' in {origin} must be a mapping with a 'name' key, got {data!r}"
        )
    return from_dict(
        backbone_class(data["name"]).config_class, data, origin=origin, prefix="backbone."
    )


def build_backbone(config: BackboneConfig) -> Backbone:
    return backbone_class(config.name)(config)
