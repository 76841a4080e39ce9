"""One arm of an eval run (pre-trained or scratch) as a results file in the matbench package's layout, with its
MAE mean ± std over folds.

    python -m foundation.evals.matbench_results RESULTS.json --arm pretrained --out docs/results/NAME-pretrained.json

RESULTS.json is an eval report's results.json (`foundation eval`; its units keep their test predictions). Per
fold, the arm's unit trained on the whole training fold gives `tasks.<task>.results.fold_K.data = {id: predicted
value}` with `parameters` (what the fine-tuning chose on its inner validation split) and `scores` (mae, rmse,
mape, max_error), as `matbench.MatbenchBenchmark.to_file` writes them, with the benchmark hash that
`MatbenchBenchmark.from_file` checks. `user_metadata.foundation` holds the arm, the MAE mean ± std over folds
(population std, as Matbench's leaderboard), the eval run's command and checkpoint. Writing needs the matbench
package neither here nor when reading.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from foundation.evals.tasks.matbench import task_name_of

from foundation.errors import UserError
from foundation.files import sha256_file, write_text_atomic

BENCHMARK = "matbench_v0.1"
MATBENCH_VERSION = "0.6"  # the matbench package release whose file layout this follows
ARMS = ("pretrained", "scratch")
PARAMETERS = ("backbone_lr", "best_epoch", "epochs_run", "n_train", "n_val", "n_train_fold")


class MatbenchResultsError(UserError):
    """Eval results that cannot make a Matbench results file (the file and the reason in the message)."""


def _scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Matbench's regression scores of one fold: mae, rmse, mape (a fraction, scikit-learn's definition) and
    max_error."""
    error = np.abs(y_pred - y_true)
    return {
        "mae": float(error.mean()),
        "rmse": float(np.sqrt(np.mean(error**2))),
        "mape": float(np.mean(error / np.maximum(np.abs(y_true), np.finfo(np.float64).eps))),
        "max_error": float(error.max()),
    }


def _sorted(d: dict[str, Any]) -> dict[str, Any]:
    """matbench.util.immutify_dictionary for JSON-born values: keys sorted at every level of nested dicts."""
    return {k: _sorted(v) if isinstance(v, dict) else v for k, v in sorted(d.items())}


def benchmark_hash(d: dict[str, Any]) -> str:
    """matbench.util.hash_dictionary: sha256 of the key-sorted JSON of the benchmark dict (without its hash)."""
    return hashlib.sha256(json.dumps(_sorted(d)).encode("utf-8")).hexdigest()


def arm_units(
    results: dict[str, Any], arm: str, task: str | None, seed: int | None, path: Path
) -> tuple[str, list[dict[str, Any]]]:
    """(task name, one unit per fold in fold order): the arm's units trained on the whole training fold, of
    fine-tuning seed `seed` (needed when a fold has several)."""
    tasks = [t for t in results.get("tasks", []) if t.get("category") == "finetune"]
    if task is not None:
        tasks = [t for t in tasks if t["name"] == task]
    if len(tasks) != 1:
        names = [t["name"] for t in results.get("tasks", []) if t.get("category") == "finetune"]
        raise MatbenchResultsError(
            f"{path}: give --task, one of the fine-tuning tasks {names}"
            if task is None
            else f"{path}: no fine-tuning task {task!r} (has {names})"
        )
    entry = tasks[0]
    units = [u for u in entry["units"] if u["variant"] == arm and u.get("size") is None]
    if not units:
        raise MatbenchResultsError(
            f"{path}: task {entry['name']!r} has no {arm} unit trained on the whole training fold "
            "(train_sizes: [all])"
        )
    seeds = sorted({u["seed"] for u in units})
    if seed is None and len(seeds) > 1:
        raise MatbenchResultsError(
            f"{path}: fine-tuning seeds {seeds} per fold; give --seed (Matbench records one model per fold)"
        )
    chosen = seeds[0] if seed is None else seed
    by_fold = {u["fold"]: u for u in units if u["seed"] == chosen}
    if not by_fold:
        raise MatbenchResultsError(f"{path}: no {arm} unit of fine-tuning seed {chosen}")
    return entry["name"], [by_fold[f] for f in sorted(by_fold)]


def _fold_record(unit: dict[str, Any], path: Path) -> dict[str, Any]:
    predictions = unit.get("predictions")
    if not predictions:
        raise MatbenchResultsError(
            f"{path}: unit {unit.get('key', unit['fold'])} has no test predictions (a trimmed results file? "
            "use the eval run's own results.json)"
        )
    ids = [str(i) for i in predictions["ids"]]
    y_true = np.asarray(predictions["y_true"], dtype=np.float64)
    y_pred = np.asarray(predictions["y_pred"], dtype=np.float64)
    if len(set(ids)) != len(ids) or not (len(ids) == y_true.size == y_pred.size):
        raise MatbenchResultsError(
            f"{path}: unit {unit.get('key')}: ids and predictions do not match"
        )
    if not np.isfinite(y_pred).all():
        raise MatbenchResultsError(
            f"{path}: unit {unit.get('key')}: a test prediction is not finite"
        )
    return {
        "data": dict(zip(ids, y_pred.tolist())),
        "parameters": {k: unit[k] for k in PARAMETERS if unit.get(k) is not None},
        "scores": _scores(y_true, y_pred),
    }


def matbench_record(
    results_path: str | Path,
    arm: str,
    *,
    task: str | None = None,
    seed: int | None = None,
    command: str = "",
) -> dict[str, Any]:
    """The Matbench benchmark dict of one arm of an eval run (hash included)."""
    path = Path(results_path)
    if arm not in ARMS:
        raise MatbenchResultsError(f"arm must be one of {ARMS}, got {arm!r}")
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise MatbenchResultsError(f"{path}: not a readable JSON file: {exc}") from exc
    name, units = arm_units(results, arm, task, seed, path)
    suite_task = next(t for t in results["suite"]["tasks"] if t["name"] == name)
    dataset = task_name_of(suite_task["path"]) if suite_task.get("path") else name
    folds = {f"fold_{u['fold']}": _fold_record(u, path) for u in units}
    maes = [f["scores"]["mae"] for f in folds.values()]
    body = {
        "@module": "matbench.bench",
        "@class": "MatbenchBenchmark",
        "version": MATBENCH_VERSION,
        "tasks": {
            dataset: {
                "@module": "matbench.task",
                "@class": "MatbenchTask",
                "benchmark_name": BENCHMARK,
                "dataset_name": dataset,
                "results": folds,
            }
        },
        "user_metadata": {
            "foundation": {
                "arm": arm,
                "fine_tuning_seed": units[0]["seed"],
                "folds": [u["fold"] for u in units],
                "complete": len(units) == 5,
                "mae_mean": float(np.mean(maes)),
                "mae_std": float(np.std(maes)),
                "eval_results": str(path),
                "eval_results_sha256": sha256_file(path),
                "eval_command": results.get("command", ""),
                "checkpoint_sha256": (results.get("checkpoint") or {}).get("sha256", ""),
                "finetune": units[0].get("finetune_config") or {},
                "command": command,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
        },
        "benchmark_name": BENCHMARK,
        "datestamp": datetime.now(timezone.utc).strftime("%Y.%m.%d %H:%M.%S"),
    }
    body["hash"] = benchmark_hash(body)
    return body


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m foundation.evals.matbench_results",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("results", help="an eval run's results.json (with test predictions)")
    parser.add_argument("--arm", required=True, choices=ARMS)
    parser.add_argument(
        "--out", required=True, help="the JSON to write; its name must name the arm"
    )
    parser.add_argument("--task", help="the fine-tuning task (needed when the eval has several)")
    parser.add_argument(
        "--seed", type=int, help="the fine-tuning seed (needed when a fold has several)"
    )
    args = parser.parse_args(argv)
    command = "python -m foundation.evals.matbench_results " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    try:
        if args.arm not in Path(args.out).name:
            raise MatbenchResultsError(
                f"{args.out}: the file name must contain the arm ({args.arm!r})"
            )
        record = matbench_record(
            args.results, args.arm, task=args.task, seed=args.seed, command=command
        )
    except UserError as exc:
        print(f"matbench_results: {exc}", file=sys.stderr)
        return 2
    write_text_atomic(Path(args.out), json.dumps(record) + "\n")
    summary = record["user_metadata"]["foundation"]
    print(
        f"{args.arm}: MAE {summary['mae_mean']:.4f} ± {summary['mae_std']:.4f} over folds "
        f"{summary['folds']} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
