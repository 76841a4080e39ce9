"""Write an eval report: results.json (every number), report.md (+ figures/*.png), standalone report.html."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from foundation.evals.report.figures import task_figures
from foundation.evals.report.render import report_blocks, to_html, to_markdown
from foundation.files import atomic_path, write_text_atomic

REPORT_FILES = ("results.json", "report.md", "report.html")


def finite_or_null(value: Any) -> Any:
    """A copy of nested data with nan/inf floats as None, so results.json is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


def write_report(results: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Path]:
    """Render `results` into out_dir; returns the paths written, by name."""
    out = Path(out_dir)
    figures = task_figures(results)
    for name, png in figures.items():
        with atomic_path(out / "figures" / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    blocks = report_blocks(results, list(figures))
    write_text_atomic(out / "results.json", json.dumps(finite_or_null(results), indent=1, allow_nan=False) + "\n")
    write_text_atomic(out / "report.md", to_markdown(blocks))
    write_text_atomic(out / "report.html", to_html(blocks, figures, title=f"foundation eval: {results['suite']['name']}"))
    return {name: out / name for name in REPORT_FILES}
