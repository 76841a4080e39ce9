"""`--launcher slurm|submitit-local`, `--cluster NAME` and `--wait` for the commands that can run on a cluster,
and the few lines that hand a workload to the launcher.

A command builds its workload the same way for every launcher: a foundation.jobs.Workload (prep, eval, sweep,
ablation) or a foundation.jobs.Resumable task (train). Locally it runs it here; with a cluster launcher it passes
it to foundation.slurm (`submit_and_follow` below, or slurm.resumable.submit_resumable), which knows the workload
only as that description.
`cluster.KEY=VALUE` arguments override the chosen profile.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from foundation.jobs import Workload
from foundation.slurm import arrays
from foundation.slurm.profiles import ClusterProfile, load_profile, split_overrides

CLUSTER_LAUNCHERS = ("slurm", "submitit-local")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Extend the parser's --launcher choices with slurm/submitit-local and add --cluster and --wait."""
    for action in parser._actions:
        if action.dest == "launcher" and action.choices is not None:
            action.choices = tuple(action.choices) + CLUSTER_LAUNCHERS
            action.help = (action.help or "") + (
                "; slurm: submit to Slurm through submitit (see --cluster); "
                "submitit-local: the same jobs as processes on this machine"
            )
    parser.add_argument(
        "--cluster",
        default="local",
        metavar="NAME",
        help="cluster profile configs/cluster/NAME.yaml or a YAML path (default local); override "
        "its fields with cluster.KEY=VALUE arguments, e.g. cluster.time_min=30",
    )
    parser.add_argument(
        "--wait",
        action="store_true",
        help="with --launcher slurm: wait for the jobs to end and print their result "
        "(submitit-local always waits)",
    )


def on_cluster(args: argparse.Namespace) -> bool:
    """Whether the command was asked to run through a cluster launcher."""
    return getattr(args, "launcher", None) in CLUSTER_LAUNCHERS


def take_profile(args: argparse.Namespace, positional: str = "overrides") -> ClusterProfile:
    """Remove cluster.KEY=VALUE arguments from args.<positional> and load the --cluster profile with them."""
    cluster_overrides, rest = split_overrides(list(getattr(args, positional)))
    setattr(args, positional, rest)
    return load_profile(args.cluster, cluster_overrides)


def waits(args: argparse.Namespace) -> bool:
    """submitit-local has no scheduler to hand the jobs to: it always waits."""
    return args.wait or args.launcher == "submitit-local"


def _announce(jobs: list[Any], folder: Any, status_dir: Any) -> None:
    ids = ", ".join(str(job.job_id) for job in jobs)
    print(
        f"submitted {ids}; logs in {folder}; follow with: foundation status {status_dir}",
        file=sys.stderr,
    )


def submit_and_follow(
    args: argparse.Namespace,
    profile: ClusterProfile,
    workload: Workload,
    status_dir: str | os.PathLike,
) -> Any:
    """Submit a workload as an array plus its follow-up; returns the follow-up's result when waiting, else None."""
    jobs, final = arrays.submit_workload(args.launcher, profile, workload)
    _announce(jobs[:1] + [final], workload.folder, status_dir)
    return final.result() if waits(args) else None


def follow_resumable(
    args: argparse.Namespace, job: Any, folder: str | os.PathLike, status_dir: str | os.PathLike
) -> int:
    """Say where a submitted resumable job logs; when waiting, print its result as JSON."""
    _announce([job], folder, status_dir)
    if waits(args):
        print(json.dumps(job.results()[0], indent=1, default=str))
    return 0
