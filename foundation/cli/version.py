"""`foundation --version`: the package version and the torch, DeepSpeed and CUDA versions it runs with, read from
the installed distributions' metadata and torch/version.py, without importing torch or DeepSpeed."""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.util
from pathlib import Path
from typing import Any

import foundation

MISSING = "not installed"


def distribution_version(name: str) -> str:
    """The installed version of distribution `name`, or MISSING."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return MISSING


def torch_cuda_version() -> str:
    """The CUDA version torch was built with ("none" for a CPU build), from torch/version.py (not imported)."""
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return MISSING
    path = Path(spec.origin).with_name("version.py")
    if not path.is_file():
        return "unknown"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "cuda" for t in targets):
                value = ast.literal_eval(node.value)
                return "none" if value is None else str(value)
    return "unknown"


def version_line() -> str:
    return (
        f"foundation {foundation.__version__} (torch {distribution_version('torch')}, "
        f"DeepSpeed {distribution_version('deepspeed')}, CUDA {torch_cuda_version()})"
    )


class PrintVersion(argparse.Action):
    """`--version`: print `version_line()` and exit."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any):
        kwargs.setdefault(
            "help", "print the versions of foundation, torch, DeepSpeed and CUDA and exit"
        )
        super().__init__(
            option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs
        )

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(version_line())
        parser.exit()


def exit_on_version(argv: list[str]) -> None:
    """Print the versions and exit when `argv` asks for them, before the commands (and torch) are imported."""
    early = argparse.ArgumentParser(prog="foundation", add_help=False, allow_abbrev=False)
    early.add_argument("--version", action=PrintVersion)
    early.parse_known_args(argv)
