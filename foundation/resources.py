"""Where the shipped configs are: the package `foundation.configs` (the repository's configs/ folder, installed
with the package; in an editable install the folder itself). Config files given as `configs/...` paths that do
not exist relative to the working directory resolve to the shipped copy, so documented commands such as
`foundation train --config configs/pretrain/efs_derivative.yaml` and configs that name other configs
(a sweep's base_config, the ablation's recipes) work from any directory once the package is installed."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

CONFIGS_PACKAGE = "foundation.configs"
CONFIGS_PREFIX = "configs"


def configs_dir() -> Path:
    """The directory holding the shipped configs (model/, pretrain/, cluster/, evals/, sweeps/, ...)."""
    return Path(str(resources.files(CONFIGS_PACKAGE)))


def config_file(group: str, name: str) -> Path:
    """configs/GROUP/NAME.yaml of the shipped configs (it may not exist; callers name what is known)."""
    return configs_dir() / group / f"{name}.yaml"


def config_path(path: str | os.PathLike) -> Path:
    """`path` itself when it exists (or is absolute); a relative `configs/...` path that does not exist here is
    the shipped config of that name."""
    path = Path(path)
    if path.exists() or path.is_absolute() or not path.parts or path.parts[0] != CONFIGS_PREFIX:
        return path
    shipped = configs_dir().joinpath(*path.parts[1:])
    return shipped if shipped.exists() else path
