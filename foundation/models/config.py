"""The model config: a backbone (typed per backbone, picked by `backbone.name`) and the heads.

YAML (configs/model/*.yaml):
    backbone: {name: schnet, hidden: 128, layers: 6, cutoff: 5.0, num_radial: 50, ...}
    heads:
      energy: true
      forces: derivative     # derivative | direct | none
      stress: derivative     # derivative | direct | none
      denoise: none          # derivative | direct | none   (output key "noise")
      property: null         # or {name: n, pooling: mean}   (output key "property")
      sources: []            # multi-fidelity energy: one reference table per data source (frame tag)
      default_source: null   # the source a calculator predicts for unless told (default: sources[0])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from foundation.config import ConfigError, load_config, to_dict
from foundation.models.registry import backbone_config
from foundation.resources import configs_dir

CONFIG_DIR = configs_dir() / "model"
HeadKind = Literal["derivative", "direct", "none"]


@dataclass
class PropertyHeadConfig:
    name: str = "property"  # the target's name in the dataset's properties
    pooling: Literal["mean", "sum"] = "mean"


@dataclass
class HeadsConfig:
    energy: bool = True
    forces: HeadKind = "derivative"
    stress: HeadKind = "derivative"
    denoise: HeadKind = "none"
    property: PropertyHeadConfig | None = None
    sources: list[str] = field(
        default_factory=list
    )  # per-source energy references (empty: one reference)
    default_source: str | None = None  # what a calculator predicts for (None: sources[0])

    def __post_init__(self) -> None:
        for key in ("forces", "stress"):
            if getattr(self, key) == "derivative" and not self.energy:
                raise ConfigError(f"heads.{key}: derivative needs heads.energy: true")
        if len(set(self.sources)) != len(self.sources):
            raise ConfigError(f"heads.sources lists a source twice: {self.sources}")
        if self.sources and not self.energy:
            raise ConfigError("heads.sources needs heads.energy: true (they are energy references)")
        if self.default_source is not None and self.default_source not in self.sources:
            raise ConfigError(
                f"heads.default_source {self.default_source!r} is not one of heads.sources "
                f"{self.sources}"
            )

    def energy_source(self) -> str | None:
        """The source energies refer to by default (None: a single-reference model)."""
        return self.default_source or (self.sources[0] if self.sources else None)


@dataclass
class ModelConfig:
    backbone: Any  # a BackboneConfig subclass chosen by backbone.name (a mapping is converted)
    heads: HeadsConfig = field(default_factory=HeadsConfig)

    def __post_init__(self) -> None:
        self.backbone = backbone_config(self.backbone)


def model_config_path(name: str) -> Path:
    """configs/model/NAME.yaml."""
    return CONFIG_DIR / f"{name}.yaml"


def available_models() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_model_config(
    source: ModelConfig | Mapping[str, Any] | str | os.PathLike, overrides: Sequence[str] = ()
) -> ModelConfig:
    """A ModelConfig from a dataclass, a mapping, a YAML path, or a bare name under configs/model/."""
    if isinstance(source, ModelConfig):
        if not overrides:
            return source
        source = to_dict(source)
    if isinstance(source, (str, os.PathLike)) and not Path(source).exists():
        text = str(source)
        if (
            text.endswith((".yaml", ".yml"))
            or os.sep in text
            or not model_config_path(text).exists()
        ):
            raise ConfigError(
                f"model config {text!r} is neither a file nor a name under {CONFIG_DIR} "
                f"(known: {', '.join(available_models())})"
            )
        source = model_config_path(text)
    try:
        return load_config(ModelConfig, source, overrides)
    except ConfigError as exc:
        origin = "<dict>" if isinstance(source, Mapping) else str(source)
        raise ConfigError(str(exc) if origin in str(exc) else f"{exc} (in {origin})") from None
