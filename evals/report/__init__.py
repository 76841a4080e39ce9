"""Write an eval report: results.json (every number), report.md (+ figures/*.png), standalone report.html, with
the eval's blocks and figures and foundation.report's writer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from foundation.evals.report.figures import task_figures
from foundation.evals.report.render import report_blocks

from foundation.report import write_report_files


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
