"""Typed configuration: YAML files loaded into dataclasses, dotted command-line overrides, strict checks.

An unknown key or a value of the wrong type is a ConfigError naming the key and the file it came from.
Every run writes its resolved config beside its outputs with `save_config`.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from foundation.data.remote import check_location, runs_program
from foundation.errors import UserError
from foundation.files import write_text_atomic
from foundation.legacy import upgrade_config
from foundation.resources import config_path

T = TypeVar("T")


class ConfigError(UserError, ValueError):
    """A config that does not fit its schema, or a value outside its range."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str, origin: str) -> Any:
    """Check (and gently coerce: int -> float, list -> tuple) `value` against the annotation `tp`."""
    where = f"{key!r} in {origin}"
    if tp is Any:
        return value
    base = typing.get_origin(tp)
    args = typing.get_args(tp)
    if base in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, origin)
            except ConfigError as exc:
                errors.append(str(exc))
        if len(errors) == 1:  # an optional section or value: the one alternative's own reason
            raise ConfigError(errors[0])
        raise ConfigError(f"{where}: {value!r} is not {_type_name(tp)}")
    if base is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}"
            )
        return from_dict(tp, value, origin=origin, prefix=f"{key}.")
    if base in (list, tuple, Sequence) or tp in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{key}[{i}]", origin) for i, v in enumerate(value)]
        return tuple(items) if (base is tuple or tp is tuple) else items
    if base is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {
            _coerce(k, kt, key, origin): _coerce(v, vt, f"{key}.{k}", origin)
            for k, v in value.items()
        }
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            pass
    if isinstance(tp, type):
        if tp is not bool and isinstance(value, bool):
            raise ConfigError(f"{where}: expected {tp.__name__}, got a boolean")
        if not isinstance(value, tp):
            raise ConfigError(
                f"{where}: expected {tp.__name__}, got {type(value).__name__} {value!r}"
            )
    return value


def from_dict(
    cls: type[T], data: Mapping[str, Any], *, origin: str = "<dict>", prefix: str = ""
) -> T:
    """Build dataclass `cls` from a mapping; unknown keys and wrong types raise ConfigError."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in known]
    if unknown:
        raise ConfigError(
            f"unknown key {prefix + unknown[0]!r} in {origin} (known: {', '.join(sorted(known))})"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _coerce(value, hints[name], prefix + name, origin) for name, value in data.items()
    }
    missing = [
        n
        for n, f in known.items()
        if n not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing key {prefix + missing[0]!r} in {origin}")
    return cls(**kwargs)


def parse_override(text: str) -> tuple[list[str], Any]:
    """'train.lr=1e-3' -> (['train', 'lr'], 0.001); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.path=value")
    key, raw = text.split("=", 1)
    return key.strip().split("."), yaml.safe_load(raw) if raw != "" else ""


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply dotted overrides to a nested mapping in place (creating intermediate mappings)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return data


def read_yaml(path: str | os.PathLike, overridden: Collection[str] = ()) -> dict[str, Any]:
    """A YAML mapping from a file; `configs/...` paths that do not exist here are the shipped configs
    (foundation.resources). A value naming a location that runs a program (`pipe:...`) is refused naming the
    file and the key (data/remote.py: a location read from a file never runs anything), except at the dotted
    keys in `overridden`, whose values the command line replaces."""
    path = config_path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (
        yaml.YAMLError
    ) as exc:  # bad syntax, or a tag such as !!python/object that safe_load refuses
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}:{where}: not a plain YAML mapping: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    refuse_commands(data, str(path), set(overridden))
    return data


def refuse_commands(value: Any, origin: str, skip: set[str], key: str = "") -> None:
    """Refuse (UnsafeLocation naming `origin` and the key) every string under `value` that names a location
    running a program, itself or as the value of a `key=value` override in a list."""
    if key in skip:
        return
    if isinstance(value, Mapping):
        for name, item in value.items():
            refuse_commands(item, origin, skip, f"{key}.{name}" if key else str(name))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            refuse_commands(item, origin, skip, f"{key}[{i}]")
    elif isinstance(value, str):
        head, sep, tail = value.partition("=")
        for text in (value, tail if sep and ":" not in head else ""):
            if runs_program(text):
                check_location(text, origin=f"{origin}: {key}")


def load_config(
    cls: type[T],
    source: str | os.PathLike | Mapping[str, Any] | None = None,
    overrides: Sequence[str] = (),
) -> T:
    """Load `cls` from a YAML path or mapping, apply dotted overrides, read the keys of a foundation 0.1.0
    config under their names of today (foundation/legacy.py), and type-check everything."""
    if source is None:
        data, origin = {}, "<defaults>"
    elif isinstance(source, Mapping):
        data, origin = dict(source), "<dict>"
    else:
        overridden = [".".join(parse_override(text)[0]) for text in overrides]
        data, origin = read_yaml(source, overridden), str(source)
    if overrides:
        data = apply_overrides(_deep_copy(data), overrides)
        origin = f"{origin} + overrides {list(overrides)}"
    return from_dict(cls, upgrade_config(data, origin), origin=origin)


def _deep_copy(data: Any) -> Any:
    if isinstance(data, Mapping):
        return {k: _deep_copy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deep_copy(v) for v in data]
    return data


def to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML-friendly data."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def save_config(config: Any, path: str | os.PathLike) -> Path:
    """Write the resolved config as YAML (runs call this beside their outputs)."""
    path = Path(path)
    write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))
    return path
