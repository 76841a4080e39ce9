"""Run sweep points: `run_point(point)` (one pre-training run, picklable, so it can be a Slurm array task or a
process of foundation.jobs.run_workload), and the markers that make a finished point never rerun and a failed one
retryable (a point whose process was killed without a word stays pending and runs again).

Markers in each point's run directory:
  sweep_point.json    written last by a finished point: its config hash and every number the report needs
  sweep_failed.json   written by a point that raised: the error and traceback (removed when it reruns)
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from foundation.studies.sweep.flops import measure_run_cost
from foundation.studies.sweep.grid import SweepPoint, point_hash

from foundation.data.manifest import Manifest
from foundation.files import write_text_atomic
from foundation.train.config import load_train_config
from foundation.train.run_layout import BEST, MODEL_META
from foundation.train.runner import run_training
from foundation.train.sampler import AtomsBalancedSampler
from foundation.train.validation import EXCLUDED

DONE = "sweep_point.json"
FAILED = "sweep_failed.json"


class SweepError(RuntimeError):
    """A point that cannot run or be read back, named with the reason."""


def point_state(point: SweepPoint) -> str:
    """'done' (a marker with this point's current config hash), 'failed', or 'pending'.

    A done marker whose hash differs (the base config, the model or the data changed) is an error: the run
    directory holds a different experiment, and mixing them would corrupt the fits."""
    run_dir = Path(point.run_dir)
    if (run_dir / DONE).exists():
        marker = json.loads((run_dir / DONE).read_text())
        if marker.get("config_hash") != point_hash(point):
            raise SweepError(
                f"{run_dir / DONE}: point {point.point_id} finished with a different config (hash "
                f"{marker.get('config_hash', '?')[:12]}, now {point_hash(point)[:12]}); use a new "
                "out_dir for a changed sweep, or delete that run directory to rerun it"
            )
        return "done"
    return "failed" if (run_dir / FAILED).exists() else "pending"


def final_val_metrics(
    summary: dict[str, Any], names: Iterable[str], run_dir: Path
) -> dict[str, float]:
    """The named metrics of the run's final validation (run_training's summary), all finite."""
    val = summary.get("val") or {}
    missing = [n for n in names if n not in val]
    if missing:
        raise SweepError(
            f"{run_dir}: the final validation has no {missing} (it has {sorted(val)}); check the "
            "sweep's `loss` metric names against the objective's weighted terms"
        )
    values = {n: float(val[n]) if val[n] is not None else math.nan for n in names}
    bad = [n for n, v in values.items() if not math.isfinite(v)]
    if bad:
        raise SweepError(f"{run_dir}: final validation {bad} not finite (the run diverged)")
    return values


def baseline_name(metric: str) -> str | None:
    """The trivial baseline's counterpart of a validation metric (forces_mae -> forces_baseline_mae), or None."""
    return metric[: -len("_mae")] + "_baseline_mae" if metric.endswith("_mae") else None


def combined(values: dict[str, float], weights: dict[str, float]) -> float | None:
    """sum of weight x value over the weighted metrics; None when one is missing."""
    if any(name not in values for name in weights):
        return None
    return sum(w * values[name] for name, w in weights.items())


def baseline_metrics(val: dict[str, Any], names: Iterable[str]) -> dict[str, float]:
    """The trivial baselines' values of the named metrics (under the metric's own name), where logged."""
    out = {}
    for name in names:
        base = baseline_name(name)
        if base is not None and val.get(base) is not None:
            out[name] = float(val[base])
    return out


def _resolved_config(point: SweepPoint, steps: int, extra: Sequence[str] = ()) -> Any:
    return load_train_config(point.train_config, [f"train.max_steps={steps}", *extra])


def steps_per_pass(config: Any) -> float:
    """Optimizer steps in one pass over a run's training split: the atoms-balanced sampler's plan of its first
    epoch (one process), divided by the gradient-accumulation steps."""
    data = config.data
    manifest = Manifest.load(data.path)
    sizes = [s.num_frames for s in manifest.shards_of(data.container, data.train_split)]
    sampler = AtomsBalancedSampler(
        manifest.atoms_per_frame(data.container, data.train_split),
        sizes,
        data.max_atoms,
        grad_accum=config.engine.grad_accum,
        seed=config.train.seed,
        shuffle=data.shuffle,
    )
    return max(len(sampler.plan(0)) / config.engine.grad_accum, 1.0)


def _budget_steps(point: SweepPoint, cost: Any, per_pass: float) -> tuple[int, list[str]]:
    """The step cap of a point and the training overrides its design adds: FLOPs budgets buy steps at the
    measured cost; a convergence point gets max_passes passes (`per_pass` steps each), a validation (and
    checkpoint) every validate_every_passes passes, and early stopping after `patience` validations without a
    new best."""
    if point.budget_kind == "steps":
        return int(point.budget), []
    if point.budget_kind == "flops":
        return max(1, round(point.budget / cost.flops_per_step)), []
    conv = point.convergence or {}
    every = max(int(conv["min_validate_steps"]), round(conv["validate_every_passes"] * per_pass))
    steps = max(every, math.ceil(conv["max_passes"] * per_pass))
    return steps, [
        f"train.val_every={every}",
        f"train.checkpoint_every={every}",
        f"train.early_stop_patience={int(conv['patience'])}",
    ]


def run_point(point: SweepPoint) -> dict[str, Any]:
    """Run one point to completion (or return its result when already done) and write its marker.

    Measures FLOPs per step on representative batches first (a FLOPs budget becomes steps here), then
    trains, then reads the final validation metrics. On an exception writes sweep_failed.json and re-raises.
    """
    run_dir = Path(point.run_dir)
    if point_state(point) == "done":
        return json.loads((run_dir / DONE).read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / FAILED).unlink(missing_ok=True)
    try:
        config_hash = point_hash(point)
        cost = measure_run_cost(_resolved_config(point, 1), point.flops_batches, point.flops_seed)
        subset = Manifest.load(point.data_path).extra.get("subset", {})
        frames = int(subset.get("frames", point.target_frames))
        per_pass = steps_per_pass(_resolved_config(point, 1))
        max_steps, extra = _budget_steps(point, cost, per_pass)
        config = _resolved_config(point, max_steps, extra)
        start = time.perf_counter()
        summary = run_training(config)
        wall = time.perf_counter() - start
        if summary.get("stopped"):
            raise SweepError(
                f"{run_dir}: training was stopped at step {summary.get('step')} before {max_steps}"
            )
        steps = int(summary["step"])
        converge = point.budget_kind == "converge"
        # a converged point is read at its best validation (the weights early stopping keeps), others at the end
        val = (
            json.loads((run_dir / BEST / MODEL_META).read_text())["val"]
            if converge
            else summary["val"]
        )
        metrics = final_val_metrics({"val": val}, point.loss_weights, run_dir)
        baselines = baseline_metrics(val, point.loss_weights)
        devices = 1  # the local driver trains in one process; a multi-process point records its world size
        result = {
            "point_id": point.point_id,
            "config_hash": config_hash,
            "model": point.model,
            "role": point.role,
            "n_params": cost.n_params,
            "target_frames": point.target_frames,
            "frames": frames,
            "structures": subset.get("structures"),
            "seed": point.seed,
            "budget_kind": point.budget_kind,
            "budget": point.budget,
            "steps": steps,
            "max_steps": max_steps,
            "passes": steps / per_pass,
            "steps_per_pass": per_pass,
            "early_stopped": bool(summary.get("early_stopped")),
            "hit_cap": converge and steps >= max_steps,
            "best_step": summary.get("best_step"),
            "val_every": config.train.val_every,
            "flops_per_step": cost.flops_per_step,
            "frames_per_step": cost.frames_per_step,
            "atoms_per_step": cost.atoms_per_step,
            "flops_per_frame": cost.flops_per_frame,
            "flops": cost.flops_per_step * steps,
            "wall_s": wall,
            "devices": devices,
            "device_hours": wall * devices / 3600.0,
            "metrics": metrics,
            "baseline_metrics": baselines,
            "excluded_metrics": {
                k[len(EXCLUDED) :]: float(v)
                for k, v in val.items()
                if k.startswith(EXCLUDED) and v is not None
            },
            "loss": combined(metrics, point.loss_weights),
            "baseline_loss": combined(baselines, point.loss_weights),
            "run_dir": str(run_dir),
        }
        write_text_atomic(run_dir / DONE, json.dumps(result, indent=1) + "\n")
        return result
    except BaseException as exc:
        write_text_atomic(
            run_dir / FAILED,
            json.dumps(
                {
                    "point_id": point.point_id,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                },
                indent=1,
            )
            + "\n",
        )
        raise


def collect(points: Sequence[SweepPoint]) -> dict[str, list[dict[str, Any]]]:
    """Finished results, failures (with their error) and pending point ids."""
    done, failed, pending = [], [], []
    for point in points:
        state = point_state(point)
        if state == "done":
            result = json.loads((Path(point.run_dir) / DONE).read_text())
            missing = [name for name in point.loss_weights if name not in result["metrics"]]
            if missing:
                raise SweepError(
                    f"{point.run_dir}/{DONE}: no final {missing}; the sweep's `loss` names metrics this "
                    f"point did not record ({sorted(result['metrics'])})"
                )
            # the combined losses follow the sweep's current weights (they are not part of the point's hash)
            result["loss"] = combined(result["metrics"], point.loss_weights)
            result["baseline_loss"] = combined(
                result.get("baseline_metrics", {}), point.loss_weights
            )
            result.setdefault("role", point.role)
            done.append(result)
        elif state == "failed":
            failed.append(json.loads((Path(point.run_dir) / FAILED).read_text()))
        else:
            pending.append(point.point_id)
    return {"points": done, "failed": failed, "pending": pending}


def points_to_run(points: Sequence[SweepPoint], retry: Sequence[str] = ()) -> list[SweepPoint]:
    """Every pending point; with `retry`, only the points it names (["failed"]: every failed point).
    Finished points never, failed points only when retried."""
    known = {p.point_id for p in points}
    unknown = [r for r in retry if r != "failed" and r not in known]
    if unknown:
        raise SweepError(
            f"--retry {unknown[0]}: no such point (points: {', '.join(sorted(known))})"
        )
    states = {p.point_id: point_state(p) for p in points}
    if retry:
        return [
            p
            for p in points
            if states[p.point_id] != "done"
            and (p.point_id in retry or ("failed" in retry and states[p.point_id] == "failed"))
        ]
    return [p for p in points if states[p.point_id] == "pending"]
