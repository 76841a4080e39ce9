"""`foundation ablation`: the paper's objective ablation in one command (prep, pre-train each objective,
fine-tune each checkpoint beside one scratch twin, report with the ranking and the paper's claims checked)."""

from __future__ import annotations

import argparse
import sys

from foundation.cli.cluster import add_cluster_options, on_cluster, submit_and_follow, take_profile
from foundation.jobs import run_workload
from foundation.studies.ablation import ablation_workload, load_ablation, write_ablation_report

RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation ablation --config configs/experiments/paper_ablation.yaml
  foundation ablation --config configs/experiments/paper_ablation.yaml steps=3000 eval_workers=2
  foundation ablation --config configs/experiments/paper_ablation.yaml --launcher slurm --cluster example-gpu
  foundation ablation --config configs/experiments/paper_ablation.yaml --only-report

Every stage resumes: an identical rerun keeps the dataset, finished training runs and finished eval units.
With --launcher slurm the objectives train as one array and the evaluation + report run as a job after it."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ablation",
        help="the paper's pre-training objective ablation, end to end",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=RAW,
    )
    p.add_argument(
        "--config",
        required=True,
        help="an experiment YAML (configs/experiments/paper_ablation.yaml)",
    )
    p.add_argument(
        "--launcher",
        choices=["local"],
        default="local",
        help="where the stages run (default local)",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="local processes for data preparation (default 2)"
    )
    p.add_argument(
        "--only-report", action="store_true", help="only (re)write the report from finished evals"
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides of the experiment's fields"
    )
    add_cluster_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    profile = take_profile(args) if on_cluster(args) else None
    cfg = load_ablation(args.config, args.overrides)
    if args.only_report:
        paths = write_ablation_report(cfg)
    else:
        print(
            f"[prep] {cfg.inputs} -> {cfg.out_dir}/data; then {len(cfg.objectives)} objectives x {cfg.steps} steps, "
            "then fine-tuning every checkpoint and the scratch twin",
            file=sys.stderr,
        )
        workload = ablation_workload(cfg, workers=args.workers)
        if profile is None:
            paths = (
                run_workload(workload).final or {}
            )  # none when stopped on request (run_workload says so)
        else:  # the objectives as one array, then the evaluation + report as one job after it
            paths = submit_and_follow(args, profile, workload, cfg.out_dir) or {}
    for name, path in sorted(paths.items()):
        print(f"{name}: {path}")
    return 0
