"""Files written by foundation 0.1.0, read by today's code: the one converter for old configs and weights.

Two entry points, applied where configs and weights are loaded; today's files pass through unchanged:
- `upgrade_config(data, origin)`: a config mapping (a YAML config, a run's config.yaml, model.json's `model`)
  with 0.1.0 key spellings renamed (`max_neighbors` -> `max_neighbours`, at any depth), a warning naming each.
  `foundation.config.load_config` applies it to every config it reads.
- `upgrade_state_dict(state_dict, prefix, expected)`: a Potential's weights as 0.1.0 saved them, in place:
  submodules renamed since (`neighbor` -> `neighbour`, `neighbor_embedding` -> `neighbour_embedding`), and the
  output scale of a direct head, which 0.1.0 did not have, set to 1 (what its outputs were then).
  `Potential._load_from_state_dict` applies it, so every `load_state_dict` of a Potential (a model loader, a
  DeepSpeed resume) reads 0.1.0 weights.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

CONFIG_KEYS = {"max_neighbors": "max_neighbours"}  # 0.1.0 spelling -> today's
MODULE_NAMES = {"neighbor": "neighbour", "neighbor_embedding": "neighbour_embedding"}
DIRECT_HEAD_SCALES = ("force_head.scale", "stress_head.scale", "denoise_head.scale")


def upgrade_config(data: Mapping[str, Any], origin: str, prefix: str = "") -> dict[str, Any]:
    """A copy of `data` with the 0.1.0 spellings of keys (CONFIG_KEYS) renamed in every nested mapping; a key
    given in both spellings keeps both (the typed config then refuses the old one as unknown)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        new = CONFIG_KEYS.get(key) if isinstance(key, str) else None
        if new is not None and new not in data:
            log.warning(
                "%s: key %r is the foundation 0.1.0 spelling of %r; read as such",
                origin,
                prefix + key,
                prefix + new,
            )
            key = new
        if isinstance(value, Mapping):
            value = upgrade_config(value, origin, f"{prefix}{key}.")
        out[key] = value
    return out


def upgrade_state_dict(
    state_dict: MutableMapping[str, torch.Tensor], prefix: str, expected: Collection[str]
) -> None:
    """In place: the keys under `prefix` of a Potential's 0.1.0 weights renamed to today's module names, and a
    direct head's missing output scale (a key of `expected`, the model's own state keys without the prefix) set
    to 1."""
    import torch  # here, not at the top: configs load without importing torch

    for key in [k for k in state_dict if k.startswith(prefix)]:
        parts = key[len(prefix) :].split(".")
        renamed = [MODULE_NAMES.get(part, part) for part in parts]
        if renamed != parts:
            state_dict[prefix + ".".join(renamed)] = state_dict.pop(key)
    for name in DIRECT_HEAD_SCALES:
        if name in expected and prefix + name not in state_dict:
            state_dict[prefix + name] = torch.ones(())
