"""The one way to load a model: a training run directory, a release directory or a model name.

`locate_model` decides once what a path or name is:
    a release      release.json and SHA256SUMS (foundation/release.py); its own directory holds the weights
    a training run a directory with best/ or last/ model.safetensors + model.json, or such an export itself
    a model name   a release of that name in the model directories: the paths in $FOUNDATION_MODELS
                   (separated by os.pathsep), else $XDG_DATA_HOME/foundation/models (~/.local/share/...);
                   a path that exists always wins over a name
`open_model` also verifies a release's SHA256SUMS (a changed model card or report only warns: it does not
change the model). `load_potential` builds the Potential from model.json, within the size bounds of
foundation/models/limits.py, and loads model.safetensors into it: JSON and safetensors only, nothing is
unpickled, and shapes are checked against the safetensors header before any tensor is read. Bad files end as
a ModelFileError (a UserError: one line on the command line) naming the file and the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from foundation.config import ConfigError, read_yaml
from foundation.errors import UserError
from foundation.files import read_json_bounded
from foundation.models.config import resolve_model_config
from foundation.models.potential import Potential, build_potential, check_model_size
from foundation.release import CHECKSUMS, RELEASE_JSON, release_info, verify_checksums
from foundation.train.run_layout import BEST, CONFIG, EXPORTS, MODEL_META, MODEL_WEIGHTS, RunLayout

MODELS_ENV = "FOUNDATION_MODELS"
RELEASE, RUN = "release", "run"
KINDS = (RELEASE, RUN)
MAX_MODEL_JSON_BYTES = 16 << 20  # model.json holds a config, normalisers and metrics: kilobytes


class ModelNotFound(UserError, LookupError):
    """A path that is no model directory, or a name that is no release in the model directories."""


class ModelFileError(UserError, ValueError):
    """A model directory whose model.json or model.safetensors cannot be loaded."""


def model_dirs() -> list[Path]:
    """The directories searched for models by name, in order."""
    value = os.environ.get(MODELS_ENV, "")
    if value.strip():
        return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return [data_home / "foundation" / "models"]


def model_kind(path: str | os.PathLike) -> str | None:
    """RELEASE, RUN, or None for a directory that is neither (the one place this is decided)."""
    path = Path(path)
    if (path / RELEASE_JSON).is_file() and (path / CHECKSUMS).is_file():
        return RELEASE
    if RunLayout(path).exported_model() is not None:
        return RUN
    return None


@dataclass(frozen=True)
class ModelFiles:
    """A located model: the directory named (`path`), what it is (`kind`), and the directory holding its
    model.safetensors and model.json (`directory`: the release itself, or a run's best/ or last/)."""

    path: Path
    kind: str
    directory: Path

    @property
    def weights(self) -> Path:
        return self.directory / MODEL_WEIGHTS

    @property
    def meta(self) -> Path:
        return self.directory / MODEL_META

    @property
    def which(self) -> str:
        """RELEASE for a release, else the run's export the weights come from ("best" or "last")."""
        return RELEASE if self.kind == RELEASE else self.directory.name

    @property
    def name(self) -> str:
        """A release's name (release.json), else the run directory's name."""
        if self.kind == RELEASE:
            return release_info(self.path).get("name") or self.path.name
        return (self.directory.parent if self.directory.name in EXPORTS else self.directory).name

    def run_config(self) -> dict[str, Any]:
        """The training run's resolved config.yaml (a release keeps a copy; read by `read_yaml`, which refuses
        a location that runs a program); {} when there is none."""
        path = self.path / CONFIG
        return read_yaml(path) if path.is_file() else {}


_DESCRIPTIONS = {
    RELEASE: f"a release directory ({RELEASE_JSON} and {CHECKSUMS})",
    RUN: f"a training run directory (best/ or last/ {MODEL_WEIGHTS} and {MODEL_META})",
}


def release_dirs() -> dict[str, Path]:
    """{name: directory} of every release directly under the model directories (the first of a name wins;
    hidden directories, such as a killed release's temporary one, are none)."""
    found: dict[str, Path] = {}
    for directory in model_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            hidden = path.name.startswith(".")
            if not hidden and path.name not in found and model_kind(path) == RELEASE:
                found[path.name] = path
    return found


def _not_a_model(path: Path, kind: str | None, kinds: tuple[str, ...]) -> ModelNotFound:
    wanted = " nor ".join(_DESCRIPTIONS[k] for k in kinds)
    if kind is None:
        return ModelNotFound(f"{path}: {'neither' if len(kinds) > 1 else 'not'} {wanted}")
    hint = " (make a release with `foundation release RUN_DIR --out DIR`)" if kind == RUN else ""
    return ModelNotFound(f"{path}: {_DESCRIPTIONS[kind]}, not {wanted}{hint}")


def locate_model(
    model: str | os.PathLike, which: str = BEST, *, kinds: tuple[str, ...] = KINDS
) -> ModelFiles:
    """What `model` names: an existing path (a release, or a run's `which` export, else its other one), or a
    release by name in the model directories. Anything else, or a kind not in `kinds`, is ModelNotFound."""
    path = Path(model).expanduser()
    if not path.exists():
        text, releases = str(model), release_dirs()
        if os.sep in text or text not in releases:
            raise ModelNotFound(
                f"model {text!r}: no such directory, and no release of that name in "
                f"{os.pathsep.join(str(d) for d in model_dirs())} (set {MODELS_ENV}; "
                f"known: {', '.join(releases) or 'none'})"
            )
        path = releases[text]
    kind = model_kind(path)
    if kind not in kinds:
        raise _not_a_model(path, kind, kinds)
    path = path.resolve()
    directory = path if kind == RELEASE else RunLayout(path).exported_model(which)
    return ModelFiles(path, kind, directory)


def open_model(
    model: str | os.PathLike, which: str = BEST, *, kinds: tuple[str, ...] = KINDS
) -> ModelFiles:
    """`locate_model`, and for a release its SHA256SUMS verified (ReleaseError naming each changed file)."""
    files = locate_model(model, which, kinds=kinds)
    if files.kind == RELEASE:
        verify_checksums(files.path, documentation="warn")
    return files


def read_model_meta(files: ModelFiles) -> dict[str, Any]:
    """model.json (at most MAX_MODEL_JSON_BYTES): a JSON object with a `model` mapping."""
    try:
        meta = read_json_bounded(files.meta, MAX_MODEL_JSON_BYTES)
    except ValueError as exc:
        raise ModelFileError(str(exc)) from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict):
        raise ModelFileError(
            f"{files.meta}: no 'model' mapping; not the model.json of a foundation potential"
        )
    return meta


def build_model(files: ModelFiles, meta: dict[str, Any]) -> Potential:
    """The Potential of model.json's config (size bounds checked before anything is allocated)."""
    try:
        return build_potential(meta["model"])
    except ConfigError as exc:
        raise ModelFileError(f"{files.meta}: {exc}") from None


def check_model(files: ModelFiles, meta: dict[str, Any]) -> None:
    """Refuse model.json's model beyond the size bounds without building it (a job that builds the model
    later, in its workers, checks it up front)."""
    try:
        check_model_size(resolve_model_config(meta["model"]))
    except ConfigError as exc:
        raise ModelFileError(f"{files.meta}: {exc}") from None


def read_weights(files: ModelFiles, model: Potential) -> dict[str, torch.Tensor]:
    """The tensors of model.safetensors, after its header is checked against `model`: no more elements than the
    model holds, and every tensor the model also has of the model's shape (before any tensor is read)."""
    expected = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    try:
        with safe_open(str(files.weights), framework="pt") as fh:
            shapes = {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}
            wrong = [
                f"{key} is {list(shape)}, the model's is {list(expected[key])}"
                for key, shape in shapes.items()
                if key in expected and expected[key] != shape
            ]
            if wrong:
                raise ModelFileError(
                    f"{files.weights}: tensors do not fit {files.meta}: "
                    + "; ".join(wrong[:3])
                    + (f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else "")
                )
            held = sum(_numel(shape) for shape in shapes.values())
            limit = sum(_numel(shape) for shape in expected.values())
            if held > limit:
                raise ModelFileError(
                    f"{files.weights}: holds {held:,} values, the model of {files.meta} has "
                    f"{limit:,}; refused"
                )
            return {key: fh.get_tensor(key) for key in shapes}
    except SafetensorError as exc:
        raise ModelFileError(f"{files.weights}: not a readable safetensors file ({exc})") from None


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


def load_weights(files: ModelFiles, model: Potential) -> None:
    """model.safetensors into `model` (strict: every parameter and buffer, nothing else)."""
    try:
        model.load_state_dict(read_weights(files, model), strict=True)
    except RuntimeError as exc:  # missing or unexpected keys
        detail = " ".join(str(exc).split())
        raise ModelFileError(
            f"{files.weights}: does not fit {files.meta}: {detail[:400]}"
        ) from None


def load_potential(
    model: str | os.PathLike | ModelFiles,
    which: str = BEST,
    *,
    device: str | torch.device = "cpu",
    kinds: tuple[str, ...] = KINDS,
) -> Potential:
    """The Potential of a release (checksums verified), a training run (its `which` export) or a model name,
    fp32, in eval mode, on `device`; a ModelFiles is loaded as it is (`open_model` verified it)."""
    files = model if isinstance(model, ModelFiles) else open_model(model, which, kinds=kinds)
    potential = build_model(files, read_model_meta(files))
    load_weights(files, potential)
    return potential.to(device).eval()
