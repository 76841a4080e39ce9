"""Models: backbones (CGCNN, SchNet, MPNN, TorchMD-ET, PaiNN), heads, and the Potential that combines them."""

from foundation.models.config import (
    HeadsConfig,
    ModelConfig,
    PropertyHeadConfig,
    resolve_model_config,
)
from foundation.models.potential import Potential, build_potential
from foundation.models.registry import BACKBONES

__all__ = [
    "BACKBONES",
    "HeadsConfig",
    "ModelConfig",
    "Potential",
    "PropertyHeadConfig",
    "build_potential",
    "resolve_model_config",
]
