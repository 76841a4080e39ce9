"""What a resumed run may change in its config: every changed key is logged; a changed data path or model is
refused unless the user allows it (`foundation train --allow-config-change`), since the checkpoint was trained on
the old ones. RUN_DIR/config.yaml is rewritten only once the changes are allowed and logged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from foundation.config import ConfigError, to_dict

# the keys naming what the checkpoint was trained on and with (a prefix covers its subkeys)
PROTECTED = (
    "data.path",
    "data.sources",
    "data.shard_url_base",
    "model",
    "model_overrides",
    "finetune.parent",
)
_IGNORED = ("run_dir",)  # the same directory, spelt relative or absolute


def _flat(value: Any, key: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for name, item in value.items():
            out.update(_flat(item, f"{key}.{name}" if key else str(name)))
        return out
    return {key: value}


def config_changes(saved: dict[str, Any], current: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """{dotted key: (saved value, current value)} for every key whose value differs."""
    old, new = _flat(saved), _flat(current)
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key) and key not in _IGNORED
    }


def is_protected(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") or key.startswith(p + "[") for p in PROTECTED)


def check_resume_config(saved_path: Path, config: Any, allow: bool) -> list[str]:
    """The log lines of the changes between the run's saved config and `config`; ConfigError naming the file and
    the keys when a protected key changed and `allow` is false. No saved config: nothing changed."""
    if not saved_path.is_file():
        return []
    saved = yaml.safe_load(saved_path.read_text()) or {}
    changes = config_changes(saved, to_dict(config))
    refused = [k for k in changes if is_protected(k)]
    if refused and not allow:
        listed = "; ".join(f"{k}: {changes[k][0]!r} -> {changes[k][1]!r}" for k in refused)
        raise ConfigError(
            f"{saved_path}: resuming with another data path or model ({listed}); the checkpoint was trained "
            "on the saved ones. Start a new run_dir, or pass --allow-config-change to resume anyway"
        )
    how = " (allowed by --allow-config-change)" if refused else ""
    return [
        f"resume: config changed: {k}: {old!r} -> {new!r}{how if k in refused else ''}"
        for k, (old, new) in changes.items()
    ]
