"""`foundation sweep`: a scaling-law sweep (grid of pre-training runs), its fits and its report."""

from __future__ import annotations

import argparse
import shlex
import sys

EPILOG = """examples:
  foundation sweep --config configs/sweeps/tiny.yaml
      prepare the nested data subsets, run every pending point one after another, fit, write OUT_DIR/report/
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
    parser = sub.add_parser("sweep", help="scaling-law sweeps: grids of pre-training runs, power-law fits, report",
                            formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
                            description="Run a grid over model size, data size (nested subsets by structure_id) "
                                        "and training budget, then fit L(N), L(D), L(N,D) and the compute "
                                        "frontier into OUT_DIR/report/ (report.html, report.md, results.json).")
    parser.add_argument("--config", required=True, help="a sweep config (configs/sweeps/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="dotted overrides of the sweep config")
    parser.add_argument("--launcher", choices=["local"], default="local",
                        help="local: points run one after another, each in a fresh process")
    parser.add_argument("--retry", action="append", default=[], metavar="POINT",
                        help="rerun this failed point (repeatable; 'failed' for all failed points) and nothing else")
    parser.add_argument("--only-report", action="store_true", help="run nothing; refit and rewrite the report")
    from foundation.slurm.cli import add_cluster_options  # --launcher slurm|submitit-local, --cluster (imported lazily)

    add_cluster_options(parser)
    parser.set_defaults(func=run_sweep_command)


def run_sweep_command(args: argparse.Namespace) -> int:
    from foundation.config import ConfigError
    from foundation.studies.sweep.runner import SweepError

    try:
        return _run(args)
    except (ConfigError, SweepError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    from foundation.studies.scaling.report import write_scaling_report
    from foundation.studies.sweep.config import load_sweep_config
    from foundation.studies.sweep.runner import run_local
    from foundation.studies.sweep.study import prepare_sweep, sweep_results

    if args.launcher in ("slurm", "submitit-local") and not args.only_report:
        from foundation.slurm.cli import launch  # one array task per point to run, then --only-report after them

        return launch("sweep", args)
    config = load_sweep_config(args.config, args.overrides)
    points = prepare_sweep(config)
    print(f"sweep {config.name}: {len(points)} points under {config.out_dir}")
    if not args.only_report:
        run_local(points, retry=args.retry)
    command = " ".join(["foundation sweep --config", shlex.quote(args.config),
                        *(shlex.quote(o) for o in args.overrides)])
    results = sweep_results(config, points, command)
    paths = write_scaling_report(results, f"{config.out_dir}/report", n_boot=config.fit.n_boot, seed=config.fit.seed)
    print(f"{len(results['points'])} done, {len(results['failed'])} failed, {len(results['pending'])} pending; "
          f"report: {paths['report.html']}")
    for failure in results["failed"]:
        print(f"FAILED {failure['point_id']}: {failure['error']}  (rerun: foundation sweep --config {args.config} "
              f"--retry {failure['point_id']})", file=sys.stderr)
    return 1 if results["failed"] else 0
