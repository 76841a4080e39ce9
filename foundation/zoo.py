"""The released models of the local model directories, as `foundation models` lists them.

foundation/models/loading.py finds the model directories ($FOUNDATION_MODELS, else
~/.local/share/foundation/models) and loads a release by name; here each release is described from its
release.json, read no further than foundation.release.MAX_RELEASE_JSON_BYTES. A release.json that cannot be
described (unreadable, too large, not a JSON object, an unknown element) makes its entry broken, with the
reason, beside the others. A release directory that is a Hugging Face model repository (downloaded with
`huggingface-cli download` or `git clone`) is found the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ase.data import chemical_symbols

from foundation.models.loading import release_dirs
from foundation.release import ReleaseError, release_info

ELEMENTS = chemical_symbols[1:]


@dataclass
class ModelEntry:
    """One release in a model directory; `error` says why a broken one could not be described."""

    name: str
    path: Path
    size_bytes: int
    parent: str | None = None
    elements: list[str] = field(default_factory=list)
    backbone: str = "?"
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _size(path: Path) -> int:
    return sum(
        p.stat().st_size
        for p in path.rglob("*")
        if p.is_file() and ".cache" not in p.parts and ".git" not in p.parts
    )


def _elements(info: dict[str, Any], where: Path) -> list[str]:
    """The release's elements: its dataset's atomic numbers, else its element references' symbols."""
    numbers = (info.get("dataset") or {}).get("elements") or []
    symbols = list(info.get("element_references") or {})
    bad = [z for z in numbers if isinstance(z, bool) or not isinstance(z, int)]
    bad += [z for z in numbers if isinstance(z, int) and not 1 <= z <= len(ELEMENTS)]
    bad += [s for s in symbols if s not in ELEMENTS and not numbers]
    if bad:
        raise ReleaseError(f"{where}: unknown element {bad[0]!r}")
    return [chemical_symbols[z] for z in numbers] or sorted(symbols)


def describe_release(name: str, path: Path) -> ModelEntry:
    """The listing entry of one release directory; a release.json that cannot be described is a
    ReleaseError (or a TypeError, ValueError, AttributeError for values of the wrong type)."""
    info = release_info(path)
    parent = info.get("parent")
    if isinstance(parent, dict):
        parent = parent.get("name") or parent.get("path")
    return ModelEntry(
        name=name,
        path=path,
        size_bytes=_size(path),
        parent=None if parent is None else str(parent),
        elements=_elements(info, path / "release.json"),
        backbone=str(((info.get("model") or {}).get("backbone") or {}).get("name", "?")),
        metrics=dict(info.get("validation") or {}),
    )


def list_models() -> list[ModelEntry]:
    """Every release directly under the model directories (the first of a name wins), by name; a broken one
    is listed with its error instead of hiding the others."""
    entries = []
    for name, path in release_dirs().items():
        try:
            entries.append(describe_release(name, path))
        except ReleaseError as exc:
            entries.append(ModelEntry(name, path, _size(path), error=str(exc)))
        except (OSError, TypeError, ValueError, AttributeError) as exc:
            error = f"{path / 'release.json'}: unexpected content ({exc})"
            entries.append(ModelEntry(name, path, _size(path), error=error))
    return sorted(entries, key=lambda entry: entry.name)
