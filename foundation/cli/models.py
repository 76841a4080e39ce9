"""`foundation models`: the releases in the local model directories (FOUNDATION_MODELS, else
~/.local/share/foundation/models), loadable by name with `foundation.load_calculator("NAME")`. A release
whose release.json cannot be read is listed as broken, with the reason; names and values are printed with
control characters escaped (a name cannot move the cursor or recolour the terminal)."""

from __future__ import annotations

import argparse
import json

from foundation.models.loading import model_dirs
from foundation.zoo import list_models

RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation models
  FOUNDATION_MODELS=/shared/models foundation models --json

a model gets there by copying (or `huggingface-cli download REPO_ID --local-dir`) its release directory into one
of the model directories; the directory's name is the model's name."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the released models of the local model directories",
        description=__doc__,
        formatter_class=RAW,
        epilog=EPILOG,
    )
    p.add_argument(
        "--json", action="store_true", help="print JSON (one object per model) instead of a table"
    )
    p.set_defaults(func=run_models)


def _size(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def printable(text: str) -> str:
    """`text` with every non-printable character (terminal escapes, newlines) written as a Python escape."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def _metrics(metrics: dict) -> str:
    """The validation step and errors (MAEs without the baselines'); --json has every metric."""
    shown = {
        k: v
        for k, v in metrics.items()
        if k == "step" or (k.endswith("_mae") and "baseline" not in k)
    }
    return (
        ", ".join(
            f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
            for key, value in (shown or metrics).items()
        )
        or "-"
    )


def run_models(args: argparse.Namespace) -> int:
    entries = list_models()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "path": str(e.path),
                        "parent": e.parent,
                        "size_bytes": e.size_bytes,
                        "backbone": e.backbone,
                        "elements": e.elements,
                        "metrics": e.metrics,
                        "error": e.error,
                    }
                    for e in entries
                ],
                indent=1,
            )
        )
        return 0
    where = printable(", ".join(str(d) for d in model_dirs()))
    if not entries:
        print(f"no models in {where} (set FOUNDATION_MODELS, or copy a release directory there)")
        return 0
    rows = [("name", "parent", "backbone", "size", "elements", "validation")]
    rows += [
        tuple(
            printable(cell)
            for cell in (
                e.name,
                e.parent or "-",
                e.backbone,
                _size(e.size_bytes),
                " ".join(e.elements[:12])
                + (f" +{len(e.elements) - 12}" if len(e.elements) > 12 else ""),
                _metrics(e.metrics) if e.error is None else f"broken: {e.error}",
            )
        )
        for e in entries
    ]
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]) - 1)]
    print(f"models in {where}:")
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
    return 0
