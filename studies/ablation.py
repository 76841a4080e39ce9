"""The paper's objective ablation: pre-train one backbone with each objective on the same frames, fine-tune every
checkpoint (and one from-scratch twin) on the same downstream task and folds, and rank the objectives.

Stages, each resumable: prep the frames -> one training run per objective (`run_objective`, a picklable call:
sequential here or a Slurm array) -> one eval run per objective (the suite of the config, the scratch twin only
beside the first) -> `write_ablation_report` (table, ranking, the paper's claims checked, plots).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from foundation.data_prep.config import PrepConfig
from foundation.data_prep.pipeline import run_prep
from foundation.evals.config import SuiteConfig
from foundation.evals.metrics import aggregate
from foundation.evals.paired import paired_comparison, size_label
from foundation.evals.run import evaluate

from foundation.config import ConfigError, load_config, save_config
from foundation.jobs import Workload, job_folder
from foundation.report import RESULTS_JSON, figure_png, write_report_files
from foundation.train.config import load_train_config
from foundation.train.runner import run_training

log = logging.getLogger(__name__)

SCRATCH = "scratch"
PROBE = "probe:"  # + an objective's name: the ridge probe on its frozen features
PROBE_RANDOM = "probe:random"  # the ridge probe on a randomly initialised backbone


@dataclass
class AblationObjective:
    """One row of the ablation: an objective's pre-training recipe and its overrides."""

    name: str  # row label, e.g. efs_derivative
    recipe: str  # a configs/pretrain/*.yaml recipe
    overrides: list[str] = field(default_factory=list)


@dataclass
class AblationConfig:
    name: str
    out_dir: str  # data/, pretrain/NAME/, eval/NAME/, report files
    inputs: list[str]  # raw frame files (globs allowed), relative to data_root
    objectives: list[AblationObjective]
    suite: dict[
        str, Any
    ]  # an eval suite (foundation.evals.config.SuiteConfig) with the downstream task
    data_root: str = "../shared/data"
    model: str = "scalable-xs"  # the one backbone every objective pre-trains
    steps: int = 1000  # pre-training steps per objective
    train_overrides: list[str] = field(
        default_factory=list
    )  # dotted training keys fixed for every objective
    prep: dict[str, Any] = field(default_factory=dict)  # data_prep PrepConfig fields
    eval_workers: int = 1

    def __post_init__(self) -> None:
        names = [o.name for o in self.objectives]
        if not names or len(set(names)) != len(names) or SCRATCH in names:
            raise ConfigError(
                f"objectives: give unique names (not {SCRATCH!r}, which is the scratch row)"
            )


@dataclass
class ObjectiveRun:
    """One pre-training run of the ablation (picklable: a Slurm array task)."""

    config_path: str
    objective: str


def load_ablation(
    path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()
) -> AblationConfig:
    return load_config(AblationConfig, path, list(overrides))


def _paths(cfg: AblationConfig) -> dict[str, Path]:
    out = Path(cfg.out_dir).resolve()
    return {"out": out, "data": out / "data", "pretrain": out / "pretrain", "eval": out / "eval"}


def input_files(cfg: AblationConfig) -> list[str]:
    """The raw input files, globs expanded against data_root, sorted."""
    root = Path(cfg.data_root)
    files = sorted(str(p) for pattern in cfg.inputs for p in root.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no input files match {cfg.inputs} under {root.resolve()}")
    return files


def prepare_data(cfg: AblationConfig, workers: int = 1):
    """Prepare the shared pre-training dataset (resumable: an identical rerun does nothing)."""
    options = {"required": ["energy", "forces", "stress"], "workers": workers, **cfg.prep}
    return run_prep(PrepConfig(inputs=input_files(cfg), out=str(_paths(cfg)["data"]), **options))


def _objective(cfg: AblationConfig, name: str) -> AblationObjective:
    return next(o for o in cfg.objectives if o.name == name)


def train_config_of(cfg: AblationConfig, objective: AblationObjective):
    """The resolved training config of one objective (same data, backbone, steps and fixed keys for all)."""
    paths = _paths(cfg)
    overrides = [
        f"model={cfg.model}",
        f"data.path={paths['data']}",
        f"train.max_steps={cfg.steps}",
        f"run_dir={paths['pretrain'] / objective.name}",
        *cfg.train_overrides,
        *objective.overrides,
    ]
    return load_train_config(objective.recipe, overrides)


def run_objective(run: ObjectiveRun) -> dict[str, Any]:
    """Pre-train one objective (resumes from its newest checkpoint; a finished run returns at once)."""
    cfg = load_ablation(run.config_path)
    return run_training(train_config_of(cfg, _objective(cfg, run.objective)))


def evaluate_objectives(cfg: AblationConfig, workers: int = 1) -> list[tuple[str, str]]:
    """Fine-tune every pre-trained checkpoint on the suite; the scratch twin runs only beside the first."""
    paths = _paths(cfg)
    failures = []
    for index, objective in enumerate(cfg.objectives):
        suite = dict(cfg.suite)
        suite["tasks"] = [{**task, "scratch": index == 0} for task in suite["tasks"]]
        _, failed = evaluate(
            paths["pretrain"] / objective.name,
            load_config(SuiteConfig, suite),
            paths["eval"] / objective.name,
            workers=workers,
            command=f"ablation {cfg.name}: {objective.name}",
        )
        failures += [(f"{objective.name}:{key}", err) for key, err in failed]
    return failures


def collect_table(cfg: AblationConfig) -> dict[str, Any]:
    """Per task: every fine-tuning and probe unit (fold, seed, size, MAE) labelled by its row (the objective's
    name, scratch, probe:NAME, probe:random), the rows at the headline training size (MAE mean/std over folds and
    seeds, per-unit MAEs in (fold, seed) order, the paired comparison with scratch and the probe's with random
    features), and the trivial baselines (mean and median predictor) on the same splits at that size."""
    paths = _paths(cfg)
    tasks: dict[str, dict[str, Any]] = {}
    for index, objective in enumerate(cfg.objectives):
        results_path = paths["eval"] / objective.name / RESULTS_JSON
        if (
            not results_path.is_file()
        ):  # not pre-trained or not evaluated (yet): missing_objectives names it
            continue
        results = json.loads(results_path.read_text())
        labels = {"pretrained": objective.name, "probe_pretrained": PROBE + objective.name}
        if index == 0:  # the arms without pre-training run beside the first objective only
            labels.update(scratch=SCRATCH, probe_random=PROBE_RANDOM)
        for task in results["tasks"]:
            if task["category"] != "finetune":
                continue
            entry = tasks.setdefault(
                task["name"],
                {
                    "unit": task["unit"],
                    "property": task["property"],
                    "headline_size": task.get("headline_size"),
                    "baselines": _headline_baselines(task),
                    "units": [],
                },
            )
            entry["units"] += [
                {
                    "variant": labels[u["variant"]],
                    "fold": u["fold"],
                    "seed": u["seed"],
                    "size": u.get("size"),
                    "metrics": {"mae": u["metrics"]["mae"]},
                }
                for u in task["units"]
                if u["variant"] in labels and (u.get("metrics") or {}).get("mae") is not None
            ]
    for entry in tasks.values():
        entry["rows"] = ablation_rows(
            entry["units"], [o.name for o in cfg.objectives], entry["headline_size"]
        )
    return tasks


def _headline_baselines(task: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{mean|median: {mae, std}} of the trivial predictors at the task's headline training size (empty if none)."""
    by_size = task.get("baselines") or {}
    label = size_label(task.get("headline_size"))
    return {
        name: {"mae": agg["mae"]["mean"], "std": agg["mae"]["std"]}
        for name, agg in by_size.get(label, {}).items()
    }


def ablation_rows(
    units: list[dict[str, Any]], objectives: list[str], size: int | None
) -> dict[str, dict[str, Any]]:
    """{objective or scratch: {mae, std, count, units, vs_scratch, probe: {mae, std, count, vs_random}}} at `size`."""
    rows = {}
    for name in [*objectives, SCRATCH]:
        row = _summary(units, name, size)
        if row is None:
            continue
        if name != SCRATCH:
            row["vs_scratch"] = compare(units, name, SCRATCH, size)
            probe = _summary(units, PROBE + name, size)
            if probe is not None:
                row["probe"] = {
                    **probe,
                    "vs_random": compare(units, PROBE + name, PROBE_RANDOM, size),
                }
        rows[name] = row
    return rows


def _summary(units: list[dict[str, Any]], label: str, size: int | None) -> dict[str, Any] | None:
    mine = sorted(
        (u for u in units if u["variant"] == label and u["size"] == size),
        key=lambda u: (u["fold"], u["seed"]),
    )
    if not mine:
        return None
    mae = aggregate([u["metrics"] for u in mine], ("mae",))["mae"]
    return {
        "mae": mae["mean"],
        "std": mae["std"],
        "count": mae["count"],
        "units": [u["metrics"]["mae"] for u in mine],
    }


def compare(
    units: list[dict[str, Any]], treatment: str, control: str, size: int | None
) -> dict[str, Any] | None:
    """The paired comparison (treatment - control MAE per (fold, seed), hierarchical bootstrap 95% interval,
    verdict) of two rows at one training size; None when they share no pair."""
    return next(
        (row for row in paired_comparison(units, treatment, control) if row["size"] == size), None
    )


def check_claims(
    units: list[dict[str, Any]], rows: dict[str, dict[str, Any]], size: int | None
) -> list[dict[str, Any]]:
    """The paper's findings, each "A beats B" checked on paired per-(fold, seed) MAE differences A - B at `size`:
    agrees True when the bootstrap 95% interval lies below zero, False when above, None when it spans zero, pairs
    are too few, or a row is missing."""

    def best(names: list[str]) -> str | None:
        present = [n for n in names if n in rows]
        return min(present, key=lambda n: rows[n]["mae"]) if present else None

    objectives = [n for n in rows if n != SCRATCH]
    denoising = ["denoise_direct", "denoise_derivative"]
    best_explicit, best_denoise = (
        best([n for n in objectives if n not in denoising]),
        best(denoising),
    )
    best_other = best([n for n in objectives if n != "efs_derivative"])
    claims = [
        ("derivative denoising beats direct denoising", "denoise_derivative", "denoise_direct"),
        (
            f"explicit E/F/S ({best_explicit}) beats denoising ({best_denoise})",
            best_explicit,
            best_denoise,
        ),
        ("E+F+S with derivatives beats E+F+S direct", "efs_derivative", "efs_direct"),
        (
            f"E+F+S with derivatives is best of all objectives (against {best_other})",
            "efs_derivative",
            best_other,
        ),
    ]
    out = []
    for text, a, b in claims:
        paired = compare(units, a, b, size) if a in rows and b in rows else None
        verdict = paired["verdict"] if paired else None
        out.append(
            {
                "claim": text,
                "ours": rows.get(a, {}).get("mae"),
                "other": rows.get(b, {}).get("mae"),
                "mean_difference": paired["mean_difference"] if paired else None,
                "ci95": paired["ci95"] if paired else None,
                "pairs": paired["pairs"] if paired else 0,
                "agrees": {"helps": True, "hurts": False}.get(verdict),
            }
        )
    return out


def ablation_figure(task_name: str, task: dict[str, Any]) -> bytes:
    """Bar chart of test MAE per row (mean ± std over folds and seeds) with the single runs as dots, and each
    objective's frozen-feature probe (and the random-feature probe) as diamonds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(task["rows"], key=lambda n: task["rows"][n]["mae"])
    random_probe = _summary(task["units"], PROBE_RANDOM, task["headline_size"])
    fig, ax = plt.subplots(figsize=(7, 3.6))
    probe_label = "ridge probe (under scratch: random features)"
    for i, name in enumerate(names):
        row = task["rows"][name]
        ax.bar(
            i,
            row["mae"],
            yerr=row["std"],
            color="0.7" if name == SCRATCH else "tab:blue",
            capsize=3,
        )
        ax.plot([i] * len(row["units"]), row["units"], "k.", ms=4)
        probe = random_probe if name == SCRATCH else row.get("probe")
        if probe:
            ax.plot(i, probe["mae"], "D", color="tab:orange", ms=6, label=probe_label)
            probe_label = None
    if "mean" in task["baselines"]:
        ax.axhline(
            task["baselines"]["mean"]["mae"], color="tab:red", ls="--", label="mean predictor"
        )
    ax.legend(loc="lower right", fontsize=8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_ylabel(f"test MAE ({task['unit'] or task['property']})")
    ax.set_title(f"{task_name}: pre-training objective ablation")
    fig.tight_layout()
    return figure_png(fig)


def _interval(paired: dict[str, Any] | None) -> str:
    if not paired:
        return "-"
    low, high = paired["ci95"]
    return f"{paired['mean_difference']:+.3f} [{low:+.3f}, {high:+.3f}]"


def missing_objectives(cfg: AblationConfig) -> list[str]:
    """The objectives without an evaluation (results.json) yet, in config order."""
    return [
        o.name
        for o in cfg.objectives
        if not (_paths(cfg)["eval"] / o.name / RESULTS_JSON).is_file()
    ]


def write_ablation_report(cfg: AblationConfig) -> dict[str, Path]:
    """results.json + report.md + report.html (table with paired intervals, ranking, claims, figures) in out_dir."""
    tasks = collect_table(cfg)
    blocks: list[tuple] = [
        ("h", 1, f"Objective ablation: {cfg.name}"),
        (
            "p",
            f"Backbone `{cfg.model}`, {cfg.steps} pre-training steps per objective on the same "
            f"frames ({', '.join(cfg.inputs)}); fine-tuning as in the suite `{cfg.suite.get('name')}`. "
            "MAE: mean ± std over folds and seeds; lower is better. Differences: paired per "
            "(fold, seed), mean with its hierarchical bootstrap 95% interval (folds, then fine-tuning "
            "seeds); one pre-training seed per objective, so no interval covers pre-training variance.",
        ),
    ]
    missing = missing_objectives(cfg)
    if missing:
        blocks.append(
            (
                "p",
                f"Missing (not pre-trained or not evaluated): {', '.join(missing)}; the scratch row and "
                "the random-feature probe come from the first objective's evaluation.",
            )
        )
    figures, results = (
        {},
        {"name": cfg.name, "model": cfg.model, "steps": cfg.steps, "missing": missing, "tasks": {}},
    )
    for name, task in tasks.items():
        ranked = sorted(task["rows"].items(), key=lambda kv: kv[1]["mae"])
        claims = check_claims(task["units"], task["rows"], task["headline_size"])
        base = task["baselines"].get("mean", {}).get("mae")
        results["tasks"][name] = {
            "headline_size": task["headline_size"],
            "rows": task["rows"],
            "ranking": [n for n, _ in ranked],
            "claims": claims,
            "baselines": task["baselines"],
            "baseline_ratios": {n: r["mae"] / base if base else None for n, r in ranked},
            "units": task["units"],
        }
        table = []
        for i, (n, r) in enumerate(ranked):
            versus, probe = r.get("vs_scratch"), r.get("probe")
            table.append(
                [
                    str(i + 1),
                    n,
                    f"{r['mae']:.4g}",
                    f"{r['std']:.2g}",
                    str(r["count"]),
                    f"{r['mae'] / base:.3f}" if base else "-",
                    _interval(versus),
                    versus["verdict"] if versus else "-",
                    f"{probe['mae']:.4g}" if probe else "-",
                    _interval(probe["vs_random"]) if probe else "-",
                ]
            )
        table += [
            [
                "-",
                f"{b} predictor (baseline)",
                f"{r['mae']:.4g}",
                f"{r['std']:.2g}",
                "",
                "",
                "",
                "",
                "",
                "",
            ]
            for b, r in task["baselines"].items()
        ]
        blocks += [
            ("h", 2, f"{name} ({size_label(task['headline_size'])} training structures)"),
            (
                "table",
                [
                    "rank",
                    "objective",
                    f"MAE ({task['unit'] or task['property']})",
                    "std",
                    "runs",
                    "MAE / mean predictor",
                    "minus scratch [95% interval]",
                    "verdict",
                    "probe MAE",
                    "probe minus random features [95% interval]",
                ],
                table,
            ),
        ]
        blocks.append(
            (
                "table",
                [
                    "the paper's finding",
                    "ours",
                    "compared with",
                    "paired difference [95% interval]",
                    "agrees",
                ],
                [
                    [
                        c["claim"],
                        "-" if c["ours"] is None else f"{c['ours']:.4g}",
                        "-" if c["other"] is None else f"{c['other']:.4g}",
                        "-"
                        if c["ci95"] is None
                        else f"{c['mean_difference']:+.3f} [{c['ci95'][0]:+.3f}, {c['ci95'][1]:+.3f}]",
                        {True: "yes", False: "no"}.get(
                            c["agrees"], "not resolved" if c["pairs"] else "n/a"
                        ),
                    ]
                    for c in claims
                ],
            )
        )
        figures[f"ablation_{name}"] = ablation_figure(name, task)
        blocks.append(("fig", f"ablation_{name}", f"{name}: test MAE per pre-training objective"))
    return write_report_files(
        _paths(cfg)["out"], results, blocks, figures, title=f"foundation ablation: {cfg.name}"
    )


def finish_ablation(config_path: str, workers: int = 1) -> dict[str, Path]:
    """After every pre-training run: evaluate each checkpoint and write the ablation report."""
    cfg = load_ablation(config_path)
    failures = evaluate_objectives(cfg, workers=workers)
    for key, error in failures:
        log.error("eval unit %s failed:\n%s", key, error)
    return write_ablation_report(cfg)


def resolved_config_path(cfg: AblationConfig) -> str:
    """Write the resolved config to OUT/ablation.yaml (what array tasks read) and return its path."""
    path = _paths(cfg)["out"] / "ablation.yaml"
    save_config(cfg, path)
    return str(path)


def _objective_name(run: ObjectiveRun) -> str:
    return run.objective


def ablation_workload(cfg: AblationConfig, workers: int = 1) -> Workload:
    """Prepare the shared data here, then describe the ablation as a workload: one pre-training run per objective,
    then `finish_ablation` (afterany: the report names what is missing)."""
    prepare_data(cfg, workers=workers)
    config_path = resolved_config_path(cfg)
    runs = [ObjectiveRun(config_path, objective.name) for objective in cfg.objectives]
    return Workload(
        name="ablation",
        folder=job_folder(_paths(cfg)["out"]),
        task=run_objective,
        items=runs,
        then=finish_ablation,
        then_args=(config_path, cfg.eval_workers),
        condition="afterany",
        label=_objective_name,
        info={"objectives": len(runs)},
    )
