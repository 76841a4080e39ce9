"""`foundation sweep`: a scaling-law sweep (grid of pre-training runs), its fits and its report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from foundation.cli.cluster import add_cluster_options, on_cluster, submit_and_follow, take_profile
from foundation.config import ConfigError
from foundation.jobs import run_workload
from foundation.report import REPORT_HTML
from foundation.studies.sweep.config import load_sweep_config
from foundation.studies.sweep.runner import SweepError
from foundation.studies.sweep.study import (
    RESOLVED_NAME,
    prepare_sweep,
    sweep_workload,
    write_sweep_report,
)

EPILOG = """examples:
  foundation sweep --config configs/sweeps/tiny.yaml
      prepare the nested data subsets, run every pending point one after another, fit, write OUT_DIR/report/
  foundation sweep --config configs/sweeps/scaling_cpu.yaml --workers 2
      two points side by side (one core each); then the prediction beyond the grid (written to
      OUT_DIR/prediction.json before its point runs), that point, and the report
  foundation sweep --config configs/sweeps/small.yaml data.source=runs/data/real-teacher
      the same with a dotted override of the sweep config
  foundation sweep --config configs/sweeps/small.yaml --retry xs-D1000-S600-seed0
      rerun one failed point alone (--retry failed: every failed point), then refit
  foundation sweep --config configs/sweeps/small.yaml --launcher slurm --cluster NAME
      one Slurm array task per point to run (run_point), then the fits and report in a job after them
  foundation sweep --config configs/sweeps/small.yaml --only-report
      refit and rewrite the report from the finished points
A finished point (OUT_DIR/points/ID/sweep_point.json with the point's config hash) is never rerun; a failed one
(sweep_failed.json) is reported and rerun only with --retry. Exit status 1 when any point has failed."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "sweep",
        help="scaling-law sweeps: grids of pre-training runs, power-law fits, report",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="Run a grid over model size, data size (nested subsets by structure_id) "
        "and training budget as the config's design says (data_scaling: each "
        "point to convergence; iso_flop: matched compute budgets), then the fits "
        "valid for that design, and a prediction beyond the grid checked against "
        "its run, into OUT_DIR/report/ (report.html, report.md, results.json).",
    )
    parser.add_argument("--config", required=True, help="a sweep config (configs/sweeps/*.yaml)")
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the sweep config"
    )
    parser.add_argument(
        "--launcher",
        choices=["local"],
        default="local",
        help="local: points run on this machine, each in a fresh process (--workers at a time)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="with the local launcher: points run K at a time, the cores shared among them (default 1)",
    )
    parser.add_argument(
        "--retry",
        action="append",
        default=[],
        metavar="POINT",
        help="rerun this failed point (repeatable; 'failed' for all failed points) and nothing else",
    )
    parser.add_argument(
        "--only-report", action="store_true", help="run nothing; refit and rewrite the report"
    )
    add_cluster_options(parser)
    parser.set_defaults(func=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except (ConfigError, SweepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def prediction_line(prediction: dict) -> str:
    """One line: the prediction beyond the grid and, once its point has run, the measurement beside it."""
    if prediction.get("refused"):
        return f"no prediction: {prediction['refused']}"
    lo, hi = prediction["interval"]
    measured = prediction.get("comparison", {}).get("measured")
    seen = (
        "not run yet"
        if measured is None
        else f"measured {measured:.4g} ({'inside' if prediction['comparison']['inside'] else 'outside'} the interval)"
    )
    return (
        f"prediction ({prediction['law']}) for {', '.join(prediction['point_ids'])}: {prediction['loss']:.4g} "
        f"[{lo:.4g}, {hi:.4g}]; {seen}"
    )


def _run(args: argparse.Namespace) -> int:
    profile = take_profile(args) if on_cluster(args) and not args.only_report else None
    config = load_sweep_config(args.config, args.overrides)
    command = " ".join(
        [
            "foundation sweep --config",
            shlex.quote(args.config),
            *(shlex.quote(o) for o in args.overrides),
        ]
    )
    if args.only_report:
        prepare_sweep(config)
        summary = write_sweep_report(str(Path(config.out_dir) / RESOLVED_NAME), command)
    else:
        if args.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {args.workers}")
        workload = sweep_workload(config, retry=args.retry, command=command, workers=args.workers)
        print(
            f"sweep {config.name}: {workload.info['points']} points ({len(workload.items)} to run) under {config.out_dir}"
        )
        if profile is None:
            summary = run_workload(workload, workers=args.workers).final
        else:  # one array task per point to run, then the fits and report after them
            summary = submit_and_follow(args, profile, workload, config.out_dir)
            if summary is None:
                return 0
    print(
        f"{summary['done']} done, {len(summary['failed'])} failed, {len(summary['pending'])} pending; "
        f"report: {summary['paths'][REPORT_HTML]}"
    )
    if summary.get("prediction"):
        print(prediction_line(summary["prediction"]))
    for failure in summary["failed"]:
        print(
            f"FAILED {failure['point_id']}: {failure['error']}  (rerun: foundation sweep --config {args.config} "
            f"--retry {failure['point_id']})",
            file=sys.stderr,
        )
    return 1 if summary["failed"] else 0
