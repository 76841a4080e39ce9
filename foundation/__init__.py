"""foundation: pre-training materials foundation models on DFT energies, forces and stresses."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# Public names imported on first use, so `import foundation` stays cheap (no torch until a model is asked for).
_LAZY = {
    "open_dataset": "foundation.data.dataset",
    "Frame": "foundation.data.schema",
    "build_potential": "foundation.models.potential",
    "Potential": "foundation.models.potential",
    "FoundationCalculator": "foundation.calculator",
    "load_calculator": "foundation.calculator",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'foundation' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY))
