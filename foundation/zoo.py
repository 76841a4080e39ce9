"""A local model directory: released models found by name.

`foundation.load_calculator("NAME")`, `foundation export NAME` and `foundation models` look for release directories
(foundation/release.py) named NAME in the model directories: the paths in the FOUNDATION_MODELS environment
variable (separated by os.pathsep), else ~/.local/share/foundation/models ($XDG_DATA_HOME/foundation/models).
A release directory that is a Hugging Face model repository (downloaded with `huggingface-cli download` or
`git clone`) is found the same way. A path that exists always wins over a name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase.data import chemical_symbols

from foundation.calculator import FoundationCalculator
from foundation.errors import UserError
from foundation.release import is_release, load_release_potential, release_info

MODELS_ENV = "FOUNDATION_MODELS"


class ModelNotFound(UserError, LookupError):
    """A model name that is neither a directory nor a release in the model directories."""


def model_dirs() -> list[Path]:
    """The directories searched for models by name, in order."""
    value = os.environ.get(MODELS_ENV, "")
    if value.strip():
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return [data_home / "foundation" / "models"]


def resolve_model(name_or_dir: str | os.PathLike) -> Path:
    """The release directory of a path, or of a model name in the model directories (first match)."""
    path = Path(name_or_dir).expanduser()
    if path.exists():
        return path
    text = str(name_or_dir)
    if os.sep not in text and text not in ("", ".", ".."):
        for directory in model_dirs():
            if is_release(directory / text):
                return directory / text
    known = ", ".join(entry.name for entry in list_models()) or "none"
    raise ModelNotFound(
        f"model {text!r}: no such directory, and no release of that name in "
        f"{os.pathsep.join(str(d) for d in model_dirs())} (set {MODELS_ENV}; known: {known})"
    )


@dataclass
class ModelEntry:
    """One release in a model directory, as `foundation models` lists it."""

    name: str
    path: Path
    parent: str | None
    size_bytes: int
    elements: list[str]
    backbone: str
    metrics: dict[str, Any]


def _entry(path: Path) -> ModelEntry:
    info = release_info(path)
    dataset = info.get("dataset") or {}
    elements = [chemical_symbols[z] for z in dataset.get("elements") or []] or sorted(
        info.get("element_references") or {}
    )
    parent = info.get("parent")
    if isinstance(parent, dict):
        parent = parent.get("name") or parent.get("path")
    backbone = ((info.get("model") or {}).get("backbone") or {}).get("name", "?")
    size = sum(
        p.stat().st_size
        for p in path.rglob("*")
        if p.is_file() and ".cache" not in p.parts and ".git" not in p.parts
    )
    return ModelEntry(
        name=path.name,
        path=path,
        parent=parent,
        size_bytes=size,
        elements=elements,
        backbone=backbone,
        metrics=dict(info.get("validation") or {}),
    )


def list_models() -> list[ModelEntry]:
    """Every release directory directly under the model directories (the first of a name wins), by name."""
    found: dict[str, ModelEntry] = {}
    for directory in model_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.name not in found and is_release(path):
                found[path.name] = _entry(path)
    return sorted(found.values(), key=lambda entry: entry.name)


def load_calculator(
    name_or_dir: str | os.PathLike, *, device: str | None = None, source: str | None = None
):
    """An ASE calculator (energy, free_energy, forces, stress) for a release directory, or a model name in the
    local model directories (FOUNDATION_MODELS, see foundation/zoo.py). Refuses a bundle whose weights or
    configs do not match its SHA256SUMS (ReleaseError). `source`: the data source whose energies to predict, for a
    model trained on several (default: the release's energy_source; an unknown one is a ValueError)."""
    return FoundationCalculator(
        load_release_potential(resolve_model(name_or_dir)), device=device, source=source
    )
