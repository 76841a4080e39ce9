"""`--launcher slurm|submitit-local` and `--cluster NAME` for `foundation train|prep|eval|sweep`, and their dispatch.

A command module calls `add_cluster_options(parser)` inside its register() and, when `args.launcher` is one of
CLUSTER_LAUNCHERS, hands over with `return launch("train", args)`; both are imported inside those functions, so
the library never imports a launcher. `cluster.KEY=VALUE` arguments override the chosen profile.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

CLUSTER_LAUNCHERS = ("slurm", "submitit-local")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Extend the parser's --launcher choices with slurm/submitit-local and add --cluster and --wait."""
    for action in parser._actions:
        if action.dest == "launcher" and action.choices is not None:
            action.choices = tuple(action.choices) + CLUSTER_LAUNCHERS
            action.help = (action.help or "") + ("; slurm: submit to Slurm through submitit (see --cluster); "
                                                  "submitit-local: the same jobs as processes on this machine")
    parser.add_argument("--cluster", default="local", metavar="NAME",
                        help="cluster profile configs/cluster/NAME.yaml or a YAML path (default local); override "
                             "its fields with cluster.KEY=VALUE arguments, e.g. cluster.time_min=30")
    parser.add_argument("--wait", action="store_true",
                        help="with --launcher slurm: wait for the jobs to end and print their result "
                             "(submitit-local always waits)")


def launch(kind: str, args: argparse.Namespace) -> int:
    """Submit the `kind` command ("train", "prep", "eval", "sweep" or "ablation") described by parsed CLI arguments."""
    from foundation.slurm.profiles import load_profile, split_overrides

    positional = "inputs" if kind == "prep" else "overrides"  # where cluster.KEY=VALUE arguments land
    cluster_overrides, rest = split_overrides(list(getattr(args, positional)))
    setattr(args, positional, rest)
    profile = load_profile(args.cluster, cluster_overrides)
    wait = args.wait or args.launcher == "submitit-local"
    return {"train": _train, "prep": _prep, "eval": _eval, "sweep": _sweep, "ablation": _ablation}[kind](args, profile, wait)


def _announce(jobs: list[Any], folder: Any, status_dir: Any) -> None:
    ids = ", ".join(str(job.job_id) for job in jobs)
    print(f"submitted {ids}; logs in {folder}; follow with: foundation status {status_dir}", file=sys.stderr)


def _train(args: argparse.Namespace, profile: Any, wait: bool) -> int:
    from foundation.slurm.executor import job_folder
    from foundation.slurm.train_job import submit_training

    job = submit_training(args.launcher, profile, args.config, args.overrides, run_dir=args.resume)
    run_dir = job.paths.folder.parent
    _announce([job], job_folder(run_dir), run_dir)
    if wait:
        summary = job.results()[0]
        print(json.dumps(summary, indent=1, default=str))
    return 0


def _prep(args: argparse.Namespace, profile: Any, wait: bool) -> int:
    from foundation.data_prep.pipeline import format_summary
    from foundation.cli.prep import build_config
    from foundation.slurm.arrays import prep_job_folder, submit_prep

    launcher, args.launcher = args.launcher, None  # PrepConfig.launcher is in-process execution: keep its default
    config = build_config(args)
    chunks, merge = submit_prep(launcher, profile, config)
    _announce(chunks[:1] + [merge], prep_job_folder(config.out), config.out)
    if wait:
        print(format_summary(merge.result(), config.out))
    return 0


def _eval(args: argparse.Namespace, profile: Any, wait: bool) -> int:
    from foundation.evals.config import SuiteConfig
    from foundation.config import load_config
    from foundation.slurm.arrays import submit_eval

    suite = load_config(SuiteConfig, args.suite, args.overrides)
    command = "foundation " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["eval"] else ""
    units, reducer = submit_eval(args.launcher, profile, args.out, args.checkpoint, suite, command=command)
    _announce(units[:1] + [reducer], f"{args.out}/slurm", args.out)
    if wait:
        for name, path in sorted(reducer.result().items()):
            print(f"{name}: {path}")
    return 0


def _sweep(args: argparse.Namespace, profile: Any, wait: bool) -> int:
    from foundation.studies.sweep.config import load_sweep_config
    from foundation.slurm.arrays import submit_sweep

    points, report = submit_sweep(args.launcher, profile, args.config, args.overrides, retry=args.retry)
    out_dir = load_sweep_config(args.config, args.overrides).out_dir
    _announce(points[:1] + [report], f"{out_dir}/slurm", out_dir)
    return int(report.result()) if wait else 0


def _ablation(args: argparse.Namespace, profile: Any, wait: bool) -> int:
    from foundation.studies.ablation import load_ablation
    from foundation.slurm.arrays import submit_ablation

    runs, finish = submit_ablation(args.launcher, profile, load_ablation(args.config, args.overrides),
                                   workers=args.workers)
    out_dir = load_ablation(args.config, args.overrides).out_dir
    _announce(runs[:1] + [finish], f"{out_dir}/slurm", out_dir)
    if wait:
        for name, path in sorted(finish.result().items()):
            print(f"{name}: {path}")
    return 0
