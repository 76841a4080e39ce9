"""The reducer: read every unit result of an eval run from OUT/units/, aggregate metrics over folds and seeds,
write results.json, report.md and report.html. Runs anywhere the files are (after a pool or a Slurm array)."""

from __future__ import annotations

import json
import os
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import ase
import numpy
import torch
from foundation.evals.config import FINETUNE_KINDS
from foundation.evals.metrics import METRICS, aggregate
from foundation.evals.overlap import pretraining_overlap
from foundation.evals.paired import size_label, task_comparisons
from foundation.evals.report import write_report
from foundation.evals.suite import load_suite, plan_units, read_checkpoint_info

import foundation
from foundation.config import to_dict
from foundation.train.baselines import baseline_check

RESULTS_FORMAT = "foundation-eval"
# 2: training sizes, baselines, paired comparisons, pre-training check; 3: a task's `provenance`
RESULTS_VERSION = 3


def _environment() -> dict[str, str]:
    return {
        "foundation": foundation.__version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "ase": ase.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def headline_size(units: list[dict[str, Any]]) -> int | None:
    """The training size the headline summary uses: the whole training fold when present, else the largest
    (None, too, for a task with no finished unit)."""
    sizes = {u.get("size") for u in units}
    return None if not sizes or None in sizes else max(sizes)


def _task_summary(units: list[dict[str, Any]]) -> dict[str, Any]:
    """summary (by variant, over folds and seeds, at the headline size), per_fold (by variant over seeds, same
    size), by_size (by size label and variant), baselines (by size label: the mean and median predictors,
    which are the same for every arm of a (fold, seed, size)), ratios (model MAE / mean-predictor MAE) and the
    paired comparisons of the arms."""
    head = headline_size(units)
    at_head = [u for u in units if u.get("size") == head]
    summary, per_fold = {}, {}
    for variant in sorted({u["variant"] for u in at_head}):
        mine = [u for u in at_head if u["variant"] == variant]
        summary[variant] = aggregate([u["metrics"] for u in mine], METRICS)
        per_fold[variant] = {
            str(f): aggregate([u["metrics"] for u in mine if u["fold"] == f], METRICS)
            for f in sorted({u["fold"] for u in mine})
        }
    by_size, baselines, ratios = {}, {}, {}
    for size in sorted({u.get("size") for u in units}, key=lambda s: (s is None, s or 0)):
        label = size_label(size)
        mine = [u for u in units if u.get("size") == size]
        by_size[label] = {
            v: aggregate([u["metrics"] for u in mine if u["variant"] == v], METRICS)
            for v in sorted({u["variant"] for u in mine})
        }
        reference = {}
        for u in mine:
            if u.get("baselines"):
                reference.setdefault((u["fold"], u["seed"]), u["baselines"])
        if reference:
            baselines[label] = {
                name: aggregate([b[name] for b in reference.values()], METRICS)
                for name in ("mean", "median")
            }
            base_mae = baselines[label]["mean"]["mae"]["mean"]
            ratios[label] = {
                v: (agg["mae"]["mean"] / base_mae if base_mae else None)
                for v, agg in by_size[label].items()
            }
    return {
        "headline_size": head,
        "summary": summary,
        "per_fold": per_fold,
        "by_size": by_size,
        "baselines": baselines,
        "baseline_ratios": ratios,
        "comparisons": task_comparisons(units),
    }


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
        units = sorted(
            by_task[cfg.name],
            key=lambda u: (
                u.get("size") is None,
                u.get("size") or 0,
                u["fold"],
                u["seed"],
                u["variant"],
            ),
        )
        desc = units[0]["task"] if units else {"name": cfg.name}
        entry = {
            "name": cfg.name,
            "kind": cfg.kind,
            "category": "finetune" if cfg.kind in FINETUNE_KINDS else "zeroshot",
            "property": desc.get("property", cfg.property or ""),
            "unit": desc.get("unit", ""),
            "description": desc,
            "units": units,
        }
        if entry["category"] == "finetune":
            entry.update(_task_summary(units))
        else:
            entry["summary"] = {"zeroshot": units[0]["metrics"]} if units else {}
            if units and units[0].get("baselines"):
                entry["baselines"] = units[0]["baselines"]
        tasks.append(entry)
    return {
        "format": RESULTS_FORMAT,
        "version": RESULTS_VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": checkpoint.get("command", ""),
        "suite": to_dict(suite),
        "checkpoint": checkpoint,
        "environment": _environment(),
        "tasks": tasks,
        "missing_units": missing,
        "pretraining_check": baseline_check(checkpoint.get("validation") or {}),
        "pretraining_overlap": pretraining_overlap(out),
    }


def reduce_units(out_dir: str | os.PathLike) -> dict[str, Path]:
    """Aggregate OUT/units/** into OUT/results.json, OUT/report.md, OUT/report.html (+ OUT/figures/)."""
    return write_report(collect_results(out_dir), out_dir)
