"""Write an eval report: results.json (every number), report.md (+ figures/*.png), standalone report.html.
`write_report_files` writes those files for every report of the project (evals, scaling sweeps, the ablation)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from foundation.evals.report.figures import task_figures
from foundation.evals.report.render import FIGURES_DIR, report_blocks, to_html, to_markdown

from foundation.files import atomic_path, write_text_atomic

RESULTS_JSON, REPORT_MD, REPORT_HTML = "results.json", "report.md", "report.html"
REPORT_FILES = (RESULTS_JSON, REPORT_MD, REPORT_HTML)


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
    figures = task_figures(results)
    return write_report_files(
        out_dir,
        results,
        report_blocks(results, list(figures)),
        figures,
        title=f"foundation eval: {results['suite']['name']}",
    )


def write_report_files(
    out_dir: str | os.PathLike,
    results: dict[str, Any],
    blocks: list,
    figures: dict[str, bytes],
    title: str,
) -> dict[str, Path]:
    """OUT/figures/NAME.png for every figure, results.json (strict JSON: nan and inf as null), report.md (linking
    the figures) and a standalone report.html (figures inlined), each written atomically; the paths by file name."""
    out = Path(out_dir)
    for name, png in figures.items():
        with atomic_path(out / FIGURES_DIR / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    write_text_atomic(
        out / RESULTS_JSON, json.dumps(finite_or_null(results), indent=1, allow_nan=False) + "\n"
    )
    write_text_atomic(out / REPORT_MD, to_markdown(blocks))
    write_text_atomic(out / REPORT_HTML, to_html(blocks, figures, title=title))
    return {name: out / name for name in REPORT_FILES}
