"""`foundation eval`: fine-tune and zero-shot evaluate a checkpoint on a suite of downstream tasks, with a
from-scratch twin beside every fine-tuning run, and write results.json, report.md and report.html."""

from __future__ import annotations

import argparse
import shlex
import sys

from foundation.cli.cluster import add_cluster_options, on_cluster, submit_and_follow, take_profile
from foundation.config import load_config
from foundation.evals.config import SuiteConfig
from foundation.evals.reduce import reduce_units
from foundation.evals.run import eval_workload, evaluate
from foundation.report import REPORT_FILES, REPORT_HTML

RAW = argparse.RawDescriptionHelpFormatter
EPILOG = """examples:
  foundation eval --checkpoint runs/pretrain/schnet --suite configs/evals/quick.yaml --out runs/eval/quick
  foundation eval --checkpoint releases/schnet-v1 --suite configs/evals/full.yaml --out runs/eval/full --workers 2
  foundation eval --checkpoint runs/pretrain/schnet --suite configs/evals/quick.yaml --out runs/eval/q \\
      data_root=/data/matbench-copy seeds=[0,1] finetune.max_epochs=50
  foundation eval --reduce-only --out runs/eval/full     re-render the report from finished units

--checkpoint takes a training run directory (best/ weights, or last/) or a release directory (checksums are
verified). Each (task, fold, seed, pretrained|scratch) unit writes OUT/units/...json; rerunning into the same
--out resumes, skipping finished units. Suite paths are relative to the suite's data_root (default
../shared/data, relative to the current directory)."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval",
        help="evaluate a checkpoint on downstream tasks and write the report",
        description=__doc__,
        formatter_class=RAW,
        epilog=EPILOG,
    )
    p.add_argument("--checkpoint", help="training run directory or release directory")
    p.add_argument(
        "--suite", help="eval suite YAML (configs/evals/quick.yaml, configs/evals/full.yaml)"
    )
    p.add_argument(
        "--out",
        required=True,
        help="output directory (units/, results.json, report.md, report.html)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local processes running units in parallel (default 1)",
    )
    p.add_argument(
        "--launcher", choices=["local"], default="local", help="where units run (default local)"
    )
    p.add_argument(
        "--reduce-only", action="store_true", help="only aggregate finished units into the report"
    )
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides of suite fields (dotted keys)"
    )
    add_cluster_options(p)
    p.set_defaults(func=run_eval)


def run_eval(args: argparse.Namespace) -> int:
    if args.reduce_only:
        paths = reduce_units(args.out)
        print(f"report: {paths[REPORT_HTML]}")
        return 0
    if not args.checkpoint or not args.suite:
        print(
            "foundation eval: --checkpoint and --suite are required (or --reduce-only)",
            file=sys.stderr,
        )
        return 2
    profile = take_profile(args) if on_cluster(args) else None
    suite = load_config(SuiteConfig, args.suite, args.overrides)
    command = (
        "foundation " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        if sys.argv[1:2] == ["eval"]
        else ""
    )
    if profile is not None:  # one array task per unit, then the reducer after them
        paths = submit_and_follow(
            args,
            profile,
            eval_workload(args.out, args.checkpoint, suite, command=command),
            args.out,
        )
        for name, path in sorted((paths or {}).items()):
            print(f"{name}: {path}")
        return 0
    paths, failures = evaluate(
        args.checkpoint, suite, args.out, workers=args.workers, command=command
    )
    print(f"{len(failures)} units failed" if failures else "all units finished")
    for name in REPORT_FILES:
        print(f"{name}: {paths[name]}")
    return 1 if failures else 0
