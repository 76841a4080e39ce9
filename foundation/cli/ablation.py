"""`foundation ablation`: the paper's objective ablation in one command (prep, pre-train each objective,
fine-tune each checkpoint beside one scratch twin, report with the ranking and the paper's claims checked)."""

from __future__ import annotations

import argparse
import sys

RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation ablation --config configs/experiments/paper_ablation.yaml
  foundation ablation --config configs/experiments/paper_ablation.yaml steps=3000 eval_workers=2
  foundation ablation --config configs/experiments/paper_ablation.yaml --launcher slurm --cluster example-gpu
  foundation ablation --config configs/experiments/paper_ablation.yaml --only-report

Every stage resumes: an identical rerun keeps the dataset, finished training runs and finished eval units.
With --launcher slurm the objectives train as one array and the evaluation + report run as a job after it."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablation", help="the paper's pre-training objective ablation, end to end",
                       description=__doc__, epilog=EPILOG, formatter_class=RAW)
    p.add_argument("--config", required=True, help="an experiment YAML (configs/experiments/paper_ablation.yaml)")
    p.add_argument("--launcher", choices=["local"], default="local", help="where the stages run (default local)")
    p.add_argument("--workers", type=int, default=2, help="local processes for data preparation (default 2)")
    p.add_argument("--only-report", action="store_true", help="only (re)write the report from finished evals")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides of the experiment's fields")
    from foundation.slurm.cli import add_cluster_options
    add_cluster_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from foundation.data_prep.pipeline import format_summary
    from foundation.studies.ablation import (ObjectiveRun, finish_ablation, load_ablation, prepare_data, resolved_config_path,
                                run_objective, write_ablation_report)

    if args.launcher in ("slurm", "submitit-local"):
        from foundation.slurm.cli import launch
        return launch("ablation", args)
    cfg = load_ablation(args.config, args.overrides)
    config_path = resolved_config_path(cfg)
    if args.only_report:
        paths = write_ablation_report(cfg)
    else:
        print(f"[prep] {cfg.inputs} -> {cfg.out_dir}/data", file=sys.stderr)
        print(format_summary(prepare_data(cfg, workers=args.workers), f"{cfg.out_dir}/data"))
        for objective in cfg.objectives:
            print(f"[pretrain] {objective.name} ({objective.recipe}, {cfg.steps} steps)", file=sys.stderr)
            run_objective(ObjectiveRun(config_path, objective.name))
        print("[eval] fine-tuning every checkpoint and the scratch twin", file=sys.stderr)
        paths = finish_ablation(config_path, workers=cfg.eval_workers)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0
