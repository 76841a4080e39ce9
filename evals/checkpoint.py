"""What `--checkpoint` names: a training run directory (its best/ or last/ weights) or a release directory.
`describe_checkpoint` records its identity (weights sha256, pre-training manifest digest) for results.json."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from foundation.data.manifest import MANIFEST_NAME
from foundation.data.remote import check_location
from foundation.files import sha256_file
from foundation.release import RELEASE_JSON, is_release, load_release_potential, release_info
from foundation.train.checkpoint import load_potential
from foundation.train.run_layout import MODEL_META, MODEL_WEIGHTS, RunLayout


def checkpoint_kind(path: str | os.PathLike) -> str:
    """'release' or 'run'; anything else is a clear error."""
    path = Path(path)
    if is_release(path):
        return "release"
    if RunLayout(path).is_run():
        return "run"
    raise FileNotFoundError(
        f"{path}: neither a run directory (config.yaml and best/ or last/{MODEL_WEIGHTS}) "
        f"nor a release directory (release.json and SHA256SUMS)"
    )


def weights_dir(path: str | os.PathLike, which: str = "best") -> Path:
    """The directory holding model.safetensors + model.json: a release itself, or run_dir/best|last
    (falling back to last/ when a run has no best/ yet)."""
    path = Path(path)
    if checkpoint_kind(path) == "release":
        return path
    directory = RunLayout(path).exported_model(which)
    if directory is not None:
        return directory
    raise FileNotFoundError(f"{path}: no {which}/{MODEL_WEIGHTS} with {MODEL_META}")


def pretraining_manifest(
    run_config: dict[str, Any], base: Path | None = None
) -> dict[str, str | None]:
    """{path, sha256} of manifest.json of the run config's data.path (sha256 None when it is not here)."""
    data_path = (run_config.get("data") or {}).get("path")
    if not data_path:
        return {"path": None, "sha256": None}
    candidates = [Path(data_path)] + ([base / data_path] if base is not None else [])
    for candidate in candidates:
        if (candidate / MANIFEST_NAME).is_file():
            return {
                "path": str(candidate.resolve()),
                "sha256": sha256_file(candidate / MANIFEST_NAME),
            }
    return {"path": str(data_path), "sha256": None}


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    return yaml.safe_load(RunLayout(run_dir).config.read_text()) or {}


def describe_checkpoint(path: str | os.PathLike, which: str = "best") -> dict[str, Any]:
    """Identity of a checkpoint for results.json: kind, weights sha256, pre-training manifest, configs."""
    path = Path(path).resolve()
    kind = checkpoint_kind(path)
    wdir = weights_dir(path, which)
    info: dict[str, Any] = {
        "path": str(path),
        "kind": kind,
        "which": wdir.name if kind == "run" else "release",
        "weights": str(wdir / MODEL_WEIGHTS),
        "sha256": sha256_file(wdir / MODEL_WEIGHTS),
    }
    meta = json.loads((wdir / MODEL_META).read_text()) if (wdir / MODEL_META).is_file() else {}
    info["validation"] = (
        meta.get("val") or {}
    )  # the run's validation metrics (with baselines since they exist)
    if kind == "run":
        info["training_config"] = read_run_config(path)
        info["pretraining_manifest"] = pretraining_manifest(info["training_config"])
    else:
        rel = release_info(path)
        info["pretraining_manifest"] = rel.get(
            "pretraining_manifest", {"path": None, "sha256": None}
        )
        info["release"] = rel
    info["pretraining_manifest"] = checked_manifest_location(
        path, kind, info["pretraining_manifest"]
    )
    return info


def checked_manifest_location(path: Path, kind: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The pre-training manifest entry with its path through data/remote.py's check_location: a location that
    runs a program is refused naming the file and key; a release's relative path resolves inside the release."""
    location = manifest.get("path")
    if not location:
        return manifest
    if kind == "run":
        origin, root = f"{RunLayout(path).config}: data.path", None
    else:
        origin, root = f"{path / RELEASE_JSON}: pretraining_manifest.path", path
    return {**manifest, "path": check_location(location, origin=origin, root=root)}


@lru_cache(maxsize=2)
def load_checkpoint_potential(path: str, which: str = "best"):
    """The Potential of a run (best/last EMA weights) or a release (checksums verified), fp32, eval mode.
    Cached per process: every unit a worker runs shares one copy (callers copy before training)."""
    if checkpoint_kind(path) == "release":
        return load_release_potential(path)
    return load_potential(path, which=weights_dir(path, which).name).eval()
