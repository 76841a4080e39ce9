"""The reducer: read every unit result of an eval run from OUT/units/, aggregate metrics over folds and seeds,
write results.json, report.md and report.html. Runs anywhere the files are (after a pool or a Slurm array)."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from foundation.evals.config import FINETUNE_KINDS
from foundation.evals.metrics import METRICS, aggregate
from foundation.evals.report import write_report
from foundation.evals.suite import load_suite, plan_units, read_checkpoint_info
from foundation.config import to_dict

RESULTS_FORMAT = "foundation-eval"
RESULTS_VERSION = 1


def _environment() -> dict[str, str]:
    import ase
    import numpy
    import torch

    import foundation
    return {"foundation": foundation.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "ase": ase.__version__, "python": platform.python_version(), "platform": platform.platform()}


def _task_summary(units: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary by variant over all folds and seeds, per-fold summary by variant over seeds)."""
    summary, per_fold = {}, {}
    for variant in sorted({u["variant"] for u in units}):
        mine = [u["metrics"] for u in units if u["variant"] == variant]
        summary[variant] = aggregate(mine, METRICS)
        folds = sorted({u["fold"] for u in units if u["variant"] == variant})
        per_fold[variant] = {str(f): aggregate([u["metrics"] for u in units if u["variant"] == variant
                                                and u["fold"] == f], METRICS) for f in folds}
    return summary, per_fold


def collect_results(out_dir: str | os.PathLike) -> dict[str, Any]:
    """results.json's content from the unit files in OUT (missing units are listed, not hidden)."""
    out = Path(out_dir)
    suite = load_suite(out)
    checkpoint = read_checkpoint_info(out)
    by_task: dict[str, list[dict[str, Any]]] = {t.name: [] for t in suite.tasks}
    missing = []
    for unit in plan_units(out):
        if unit.result_path.is_file():
            by_task[unit.task].append(json.loads(unit.result_path.read_text()))
        else:
            missing.append(unit.key)
    tasks = []
    for cfg in suite.tasks:
        units = sorted(by_task[cfg.name], key=lambda u: (u["fold"], u["seed"], u["variant"]))
        desc = units[0]["task"] if units else {"name": cfg.name}
        entry = {"name": cfg.name, "kind": cfg.kind, "category": "finetune" if cfg.kind in FINETUNE_KINDS
                 else "zeroshot", "property": desc.get("property", cfg.property or ""), "unit": desc.get("unit", ""),
                 "description": desc, "units": units}
        if entry["category"] == "finetune":
            entry["summary"], entry["per_fold"] = _task_summary(units)
        else:
            entry["summary"] = {"zeroshot": units[0]["metrics"]} if units else {}
        tasks.append(entry)
    return {"format": RESULTS_FORMAT, "version": RESULTS_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": checkpoint.get("command", ""), "suite": to_dict(suite), "checkpoint": checkpoint,
            "environment": _environment(), "tasks": tasks, "missing_units": missing}


def reduce_units(out_dir: str | os.PathLike) -> dict[str, Path]:
    """Aggregate OUT/units/** into OUT/results.json, OUT/report.md, OUT/report.html (+ OUT/figures/)."""
    return write_report(collect_results(out_dir), out_dir)
