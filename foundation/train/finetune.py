"""Fine-tuning a released (or trained) potential on a user's E/F/S frames: the parent's weights and normalisers,
element reference energies re-fitted for the user's data, frozen parts, a lower backbone learning rate.

The training run itself is the ordinary one (foundation.train.runner) with a `finetune:` section in its config.
Element references: the user's dataset manifest holds references fitted by least squares on its train split
(their DFT settings); they replace the parent's for the user's elements, other elements keep the parent's, and the
parent's other normalisers (energy scale and shift, direct heads' scales) stay: they belong to the network. A
user's element that the parent never saw (no reference in the parent's normalisation: absent from its training
data) is an UnseenElementError: its embedding row was never trained, so the model would extrapolate from a random
vector (docs/finetune.md says why this is an error rather than an extended embedding).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ase.data import atomic_numbers, chemical_symbols
from torch import nn

from foundation.data.manifest import Manifest
from foundation.errors import UserError
from foundation.files import sha256_file
from foundation.models.loading import (
    ModelFiles,
    build_model,
    load_weights,
    open_model,
    read_model_meta,
)
from foundation.models.potential import Potential

log = logging.getLogger(__name__)


class FinetuneError(UserError):
    """A fine-tuning request that cannot work (unusable parent, data the parent cannot describe)."""


class UnseenElementError(FinetuneError):
    """The user's data holds elements the parent model was never trained on."""


@dataclass
class Parent:
    """The model a fine-tuning run starts from."""

    files: ModelFiles  # where its model.safetensors and model.json are
    meta: dict[str, Any]  # its model.json
    identity: dict[
        str, Any
    ]  # name, kind (release/run), path, weights sha256, its own parent (lineage)

    @property
    def model_config(self) -> dict[str, Any]:
        return self.meta["model"]

    @property
    def normalization(self) -> dict[str, Any]:
        return self.meta.get("normalization") or {}

    @property
    def elements(self) -> set[int]:
        """Elements with a fitted reference energy in the parent: those of its training data."""
        return {_z(key) for key in (self.normalization.get("element_references") or {})}


def _z(key: str | int) -> int:
    return atomic_numbers[key] if isinstance(key, str) and not key.isdigit() else int(key)


def load_parent(path: str | Path, which: str = "best") -> Parent:
    """A release directory (SHA256SUMS verified), a training run directory (its `which`/ export, else the other
    one) or a model name, through foundation/models/loading.py; anything else is a ModelNotFound naming it."""
    files = open_model(path, which)
    meta = read_model_meta(files)
    identity = {
        "name": files.name,
        "kind": files.kind,
        "path": str(files.path),
        "weights_sha256": sha256_file(files.weights),
        "step": meta.get("step"),
        "parent": meta.get("parent"),
    }
    return Parent(files, meta, identity)


def with_parent_model(config: Any, parent: Parent) -> Any:
    """The run config with the parent's architecture as its model (what config.yaml records)."""
    return dataclasses.replace(config, model=parent.model_config, model_overrides=[])


def finetune_normalization(
    parent: Parent, manifest: Manifest, data_path: str | Path
) -> dict[str, Any]:
    """The parent's normalisation with element references re-fitted on the user's data (see the module doc).
    Raises UnseenElementError naming every element of the data the parent never saw; an element of the data
    without a fitted reference (absent from the train split) keeps the parent's, with a warning."""
    data = {int(z) for z in manifest.elements}
    unseen = sorted(data - parent.elements)
    if unseen:
        names = ", ".join(chemical_symbols[z] for z in unseen)
        raise UnseenElementError(
            f"{data_path}: element(s) {names} never occur in the training data of the parent model "
            f"{parent.identity['name']} (it knows {len(parent.elements)} elements); their embeddings are untrained. "
            "Remove these frames, or pre-train a model whose data include them"
        )
    user_refs = {_z(k): float(v) for k, v in manifest.element_references.items()}
    missing = sorted(data - set(user_refs))
    if missing:
        log.warning(
            "%s: no fitted reference energy for %s (absent from the train split): the parent's is kept, so "
            "energies of frames with it carry the difference of DFT settings",
            data_path,
            ", ".join(chemical_symbols[z] for z in missing),
        )
    refs = {
        _z(k): float(v) for k, v in (parent.normalization.get("element_references") or {}).items()
    }
    changed = {z: v - refs.get(z, 0.0) for z, v in user_refs.items()}
    log.info(
        "element references re-fitted for %d elements (mean change %.4f eV)",
        len(changed),
        sum(changed.values()) / max(len(changed), 1),
    )
    refs.update(user_refs)
    return {
        **parent.normalization,
        "element_references": {chemical_symbols[z]: v for z, v in sorted(refs.items())},
    }


def reference_shift(old: Mapping[str, float], new: Mapping[str, float]) -> dict[int, float]:
    """{Z: new - old reference energy} for elements whose reference changed: what a frame labelled under the old
    references gains per atom of Z to be consistent with the new ones."""
    old_z = {_z(k): float(v) for k, v in old.items()}
    return {
        z: v - old_z.get(z, 0.0)
        for z, v in ((_z(k), float(v)) for k, v in new.items())
        if v != old_z.get(z, 0.0)
    }


def frozen_prefixes(model: Potential, freeze_embedding: bool, freeze_layers: int) -> list[str]:
    """Parameter-name prefixes to freeze: the element embedding (every backbone module whose name ends in
    'embedding') when asked, and the first `freeze_layers` interaction layers."""
    backbone = model.backbone
    if not 0 <= freeze_layers <= backbone.config.layers:
        raise FinetuneError(
            f"finetune.freeze_layers: {freeze_layers} is not in 0..{backbone.config.layers} (the "
            f"parent's backbone has {backbone.config.layers} interaction layers)"
        )
    names = backbone.embedding_modules() if freeze_embedding else []
    for layer in range(freeze_layers):
        names += backbone.layer_modules(layer)
    return [f"backbone.{name}." for name in names]


def freeze_parameters(model: nn.Module, prefixes: list[str] | tuple[str, ...]) -> int:
    """Stop gradients of parameters whose names start with any prefix; returns how many tensors were frozen. A
    prefix that matches nothing is a ValueError naming it."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n.startswith(prefix) for n in names):
            raise ValueError(
                f"freeze prefix {prefix!r} matches no parameter (e.g. {', '.join(names[:6])})"
            )
    frozen = 0
    for name, param in model.named_parameters():
        if any(name.startswith(p) for p in prefixes):
            param.requires_grad_(False)
            frozen += 1
    return frozen


def start_from_parent(
    model: Potential, parent: Parent, *, freeze_embedding: bool = False, freeze_layers: int = 0
) -> list[str]:
    """Load the parent's weights and normalisers into `model` (the parent's architecture) and freeze what is asked
    (set the re-fitted normalisation afterwards); returns the frozen parameter names. Weights that do not fit the
    parent's own model.json are a ModelFileError naming the file."""
    load_weights(parent.files, model)
    freeze_parameters(model, frozen_prefixes(model, freeze_embedding, freeze_layers))
    return [n for n, p in model.named_parameters() if not p.requires_grad]


@dataclass
class FinetuneStart:
    """What a fine-tuning run starts from: its config (the parent's model), the model holding the parent's weights
    (parts frozen), the re-fitted normalisation (not yet applied) and the parent."""

    config: Any
    model: Potential
    normalization: dict[str, Any]
    parent: Parent
    frozen: list[str]

    @property
    def replay_energy_shift(self) -> dict[int, float]:
        """Per-element energy shift moving replayed (parent-labelled) frames to the new references."""
        return reference_shift(
            self.parent.normalization.get("element_references") or {},
            self.normalization["element_references"],
        )


def prepare_finetune(config: Any) -> FinetuneStart:
    """Load the parent of `config.finetune`, build its architecture with its weights, freeze, and re-fit the element
    references on `config.data.path` (UnseenElementError for elements the parent never saw)."""
    ft = config.finetune
    parent = load_parent(ft.parent, ft.parent_which)
    config = with_parent_model(config, parent)
    model = build_model(parent.files, parent.meta)
    normalization = finetune_normalization(
        parent, Manifest.load(config.data.path), config.data.path
    )
    frozen = start_from_parent(
        model, parent, freeze_embedding=ft.freeze_embedding, freeze_layers=ft.freeze_layers
    )
    log.info(
        "fine-tuning from %s (%s, weights sha256 %s); %d parameter tensors frozen",
        parent.identity["name"],
        parent.identity["kind"],
        parent.identity["weights_sha256"][:12],
        len(frozen),
    )
    return FinetuneStart(config, model, normalization, parent, frozen)
