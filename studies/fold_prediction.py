"""A prediction called in advance: from the eval results of some folds, the pre-trained/scratch ratio (and the
probe's) that folds not yet run will show, with intervals from the hierarchical bootstrap; then, once those folds
have run, whether it held. Reads results files only (no training).

    python -m foundation.studies.fold_prediction predict RESULTS.json [...] --task T --folds 3 4 --out P.json
    python -m foundation.studies.fold_prediction check P.json RESULTS.json [...]

Each RESULTS.json is an eval report's results.json (`foundation eval`, or an ablation's eval/NAME/) of one
pre-training run; several runs enter as the pre-training level of the bootstrap (their training seeds differ).
Per comparison and training size the prediction holds the ratio and mean paired difference measured on the
given folds, their 95% interval (the mean over folds and fine-tuning seeds), and the 95% prediction interval of
the value the predicted folds will show: the point plus the bootstrap spread of (a replicate drawing as many
folds as are predicted) minus (a replicate of the estimate). The check says, per row, whether the measured value
lies inside the prediction interval.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from foundation.evals.hierarchical import percentile_interval, resampling_weights
from foundation.evals.paired import (
    ARMS,
    PRETRAINING_SEED,
    compare_arms,
    coverage_note,
    paired_comparison,
    paired_values,
)

from foundation.errors import UserError
from foundation.files import sha256_file, write_text_atomic

FORMAT = "foundation-fold-prediction"
VERSION = 1
PREDICTIVE_SEED = (
    1  # the replicates of the predicted folds (the estimate's replicates use the default seed)
)


class PredictionError(UserError):
    """A results or prediction file that cannot serve the prediction (named in the message)."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PredictionError(f"{path}: not a readable JSON file: {exc}") from exc
    if not isinstance(body, dict):
        raise PredictionError(f"{path}: expected a JSON object")
    return body


def load_units(paths: Sequence[str | Path], task: str) -> tuple[list[dict[str, Any]], list[dict]]:
    """The fine-tuning units of `task` from eval results files, each labelled with its pre-training run's
    training seed, and one provenance record per file. Two files of one training seed or one checkpoint are an
    error (they would count as two pre-training seeds)."""
    units: list[dict[str, Any]] = []
    sources: list[dict[str, Any]] = []
    for path in map(Path, paths):
        body = _read_json(path)
        if body.get("format") != "foundation-eval":
            raise PredictionError(
                f"{path}: not an eval report's results.json (format 'foundation-eval')"
            )
        checkpoint = body.get("checkpoint") or {}
        seed = ((checkpoint.get("training_config") or {}).get("train") or {}).get("seed")
        if seed is None:
            raise PredictionError(f"{path}: the checkpoint's training config names no train.seed")
        for earlier in sources:
            if (
                seed == earlier["pretraining_seed"]
                or checkpoint.get("sha256") == earlier["checkpoint"]
            ):
                raise PredictionError(
                    f"{path}: pre-training seed {seed} (checkpoint {checkpoint.get('sha256')}) already "
                    f"comes from {earlier['path']}"
                )
        entry = next((t for t in body.get("tasks", []) if t.get("name") == task), None)
        if entry is None or entry.get("category") != "finetune":
            raise PredictionError(f"{path}: no fine-tuning task {task!r}")
        units += [{**u, PRETRAINING_SEED: seed} for u in entry["units"]]
        sources.append(
            {
                "path": str(path),
                "sha256": sha256_file(path),
                "checkpoint": checkpoint.get("sha256"),
                "pretraining_seed": seed,
                "command": body.get("command", ""),
            }
        )
    return units, sources


def predictive_shift(
    treatment: Sequence[float],
    control: Sequence[float],
    pretraining: Sequence[Any],
    folds: Sequence[Any],
    fold_draws: int,
) -> dict[str, tuple[float, float]]:
    """95% intervals of (value on `fold_draws` new folds) minus (the estimate), for the ratio and the mean paired
    difference: replicates drawing `fold_draws` folds against independent replicates of the estimate."""
    t, c = np.asarray(treatment, dtype=np.float64), np.asarray(control, dtype=np.float64)
    estimate = resampling_weights(pretraining, folds)
    new = resampling_weights(pretraining, folds, fold_draws=fold_draws, seed=PREDICTIVE_SEED)
    return {
        "ratio": percentile_interval(new @ t / (new @ c) - estimate @ t / (estimate @ c)),
        "mean_difference": percentile_interval(new @ (t - c) - estimate @ (t - c)),
    }


def predict(units: list[dict[str, Any]], folds: Sequence[int]) -> list[dict[str, Any]]:
    """Per comparison (pre-trained - scratch, probe on pre-trained - probe on random features) and training size:
    the measured ratio and difference with their 95% intervals, and the 95% prediction intervals for `folds`."""
    rows = []
    for treatment, control in ARMS:
        for size, values in paired_values(units, treatment, control).items():
            row = {
                "treatment": treatment,
                "control": control,
                "size": size,
                **compare_arms(*values),
            }
            shift = predictive_shift(*values, fold_draws=len(folds))
            row["ratio_prediction95"] = [row["ratio"] + s for s in shift["ratio"]]
            row["difference_prediction95"] = [
                row["mean_difference"] + s for s in shift["mean_difference"]
            ]
            row["note"] = coverage_note(row)
            rows.append(row)
    return rows


def prediction_record(
    paths: Sequence[str | Path], task: str, folds: Sequence[int], command: str
) -> dict[str, Any]:
    """The prediction file's content; the predicted folds must be absent from the results read."""
    units, sources = load_units(paths, task)
    used = sorted({u["fold"] for u in units})
    overlap = sorted(set(used) & set(folds))
    if overlap:
        raise PredictionError(
            f"{', '.join(map(str, paths))}: the results already hold folds {overlap} that are to be predicted"
        )
    rows = predict(units, folds)
    if not rows:
        raise PredictionError(f"{', '.join(map(str, paths))}: task {task!r} has no paired units")
    return {
        "format": FORMAT,
        "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "task": task,
        "results": sources,
        "from_folds": used,
        "fine_tuning_seeds": sorted({u["seed"] for u in units}),
        "predicted_folds": list(folds),
        "interval": (
            "ratio_ci95 / ci95: hierarchical bootstrap 95% interval of the mean over the folds read; "
            "ratio_prediction95 / difference_prediction95: 95% interval of the value the predicted folds will "
            "show with the same fine-tuning seeds, sizes and protocol (evals/hierarchical.py)"
        ),
        "predictions": rows,
    }


def check_prediction(
    prediction: dict[str, Any], units: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Per predicted row: the measured ratio and difference on the predicted folds and whether each lies inside
    its prediction interval (measured values None where the row was not measured)."""
    measured = {
        (r["treatment"], r["control"], r["size"]): r
        for treatment, control in ARMS
        for r in paired_comparison(units, treatment, control)
    }
    out = []
    for row in prediction["predictions"]:
        got = measured.get((row["treatment"], row["control"], row["size"]))
        check = {
            key: row[key]
            for key in (
                "treatment",
                "control",
                "size",
                "ratio_prediction95",
                "difference_prediction95",
            )
        }
        check.update(predicted_ratio=row["ratio"], predicted_difference=row["mean_difference"])
        check.update(
            measured_ratio=None,
            measured_difference=None,
            ratio_held=None,
            difference_held=None,
            measured_pairs=0,
            measured_verdict=None,
        )
        if got is not None:
            check.update(
                measured_ratio=got["ratio"],
                measured_difference=got["mean_difference"],
                ratio_held=_inside(got["ratio"], row["ratio_prediction95"]),
                difference_held=_inside(got["mean_difference"], row["difference_prediction95"]),
                measured_pairs=got["pairs"],
                measured_verdict=got["verdict"],
            )
        out.append(check)
    return out


def _inside(value: float | None, interval: Sequence[float]) -> bool | None:
    return None if value is None else bool(interval[0] <= value <= interval[1])


def check_record(
    prediction_path: Path, paths: Sequence[str | Path], command: str
) -> dict[str, Any]:
    """The check file's content: the measured units must cover only the predicted folds."""
    prediction = _read_json(prediction_path)
    if prediction.get("format") != FORMAT:
        raise PredictionError(f"{prediction_path}: not a prediction file (format {FORMAT!r})")
    units, sources = load_units(paths, prediction["task"])
    stray = sorted({u["fold"] for u in units} - set(prediction["predicted_folds"]))
    if stray:
        raise PredictionError(
            f"{', '.join(map(str, paths))}: folds {stray} were not predicted "
            f"(the prediction covers {prediction['predicted_folds']})"
        )
    return {
        "format": FORMAT + "-check",
        "version": VERSION,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "prediction": {"path": str(prediction_path), "sha256": sha256_file(prediction_path)},
        "results": sources,
        "checks": check_prediction(prediction, units),
    }


def _line(row: dict[str, Any]) -> str:
    """One terminal line of a prediction row or a check row."""
    size = "all" if row["size"] is None else row["size"]
    low, high = row["ratio_prediction95"]
    predicted = row["predicted_ratio"] if "predicted_ratio" in row else row["ratio"]
    text = f"{row['treatment']}/{row['control']} n={size}: ratio predicted {predicted:.3f} [{low:.3f}, {high:.3f}]"
    if "measured_ratio" not in row:
        return text
    if row["measured_ratio"] is None:
        return text + ", not measured"
    return (
        text
        + f", measured {row['measured_ratio']:.3f}: {'held' if row['ratio_held'] else 'missed'}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m foundation.studies.fold_prediction",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("predict", help="write the prediction for folds not yet run")
    p.add_argument("results", nargs="+", help="eval results.json files, one per pre-training run")
    p.add_argument("--task", required=True, help="the fine-tuning task's name in the results")
    p.add_argument("--folds", type=int, nargs="+", required=True, help="the folds to predict")
    p.add_argument("--out", required=True, help="the prediction JSON to write")
    c = sub.add_parser("check", help="compare a prediction with the results of its folds")
    c.add_argument("prediction", help="a prediction JSON written by `predict`")
    c.add_argument("results", nargs="+", help="eval results.json files of the predicted folds")
    c.add_argument("--out", help="also write the check as JSON here")
    args = parser.parse_args(argv)
    command = "python -m foundation.studies.fold_prediction " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    try:
        if args.action == "predict":
            record = prediction_record(args.results, args.task, args.folds, command)
            rows = record["predictions"]
        else:
            record = check_record(Path(args.prediction), args.results, command)
            rows = record["checks"]
    except UserError as exc:
        print(f"fold_prediction: {exc}", file=sys.stderr)
        return 2
    if args.out:
        write_text_atomic(Path(args.out), json.dumps(record, indent=1) + "\n")
    for row in rows:
        print(_line(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
