"""`foundation train`: pre-train (or resume) a potential with DeepSpeed, in this process or under torchrun."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
from torch.distributed.run import get_args_parser as torchrun_parser
from torch.distributed.run import run as torchrun

from foundation.cli.cluster import add_cluster_options, follow_resumable, on_cluster, take_profile
from foundation.jobs import job_folder
from foundation.slurm.executor import select_cluster
from foundation.slurm.profiles import ClusterProfile
from foundation.slurm.resumable import submit_resumable
from foundation.train.config import TrainRunConfig, resolve_run_config, write_run_config
from foundation.train.runner import TrainTask, run_training

EPILOG = """examples:
  foundation train --config configs/pretrain/efs_derivative.yaml
  foundation train --config configs/pretrain/efs_derivative.yaml data.path=runs/data/demo train.max_steps=200 run_dir=runs/train/efs
  foundation train --config configs/pretrain/denoise_derivative.yaml --launcher torchrun --nproc-per-node 2 run_dir=runs/train/dn
  foundation train --resume runs/train/efs                        continue a run from its newest checkpoint
overrides are dotted key=value pairs of the config (data.path, train.max_steps, run_dir, engine.zero_stage, ...).
A run directory with a checkpoint resumes automatically; resuming with another data path or model needs
--allow-config-change. SIGUSR2/SIGTERM checkpoint and stop: the command then exits 75 (rerun it to resume).
A non-finite loss stops training with an error naming the step and the frames (exit 2)."""
# sysexits EX_TEMPFAIL: stopped on request (SIGTERM/SIGUSR2) before the planned steps
STOPPED_EXIT = 75


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="pre-train a potential with DeepSpeed (local, torchrun; resumable)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    p.add_argument(
        "--config",
        help="a configs/pretrain/*.yaml recipe (default with --resume: RUN_DIR/config.yaml)",
    )
    p.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. train.max_steps=100",
    )
    p.add_argument(
        "--launcher",
        choices=("local", "torchrun"),
        default="local",
        help="local: this process (world of one, or one rank when WORLD_SIZE is set); torchrun: spawn "
        "--nproc-per-node processes on this machine",
    )
    p.add_argument(
        "--nproc-per-node", type=int, default=1, help="processes for --launcher torchrun"
    )
    p.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR (its config.yaml unless --config)",
    )
    p.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume even though the data path or model differs from RUN_DIR/config.yaml (logged)",
    )
    add_cluster_options(p)
    p.set_defaults(func=run)


def resolve(args: argparse.Namespace) -> TrainRunConfig:
    return resolve_run_config(args.config, args.overrides, args.resume)


def run(args: argparse.Namespace) -> int:
    if on_cluster(args):
        return _submit(args)
    config = resolve(args)  # fail early, before any process is spawned
    if args.launcher == "torchrun":
        return _torchrun(args)
    if args.nproc_per_node != 1:
        print("--nproc-per-node needs --launcher torchrun", file=sys.stderr)
        return 2
    summary = run_training(config, allow_config_change=args.allow_config_change)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary, indent=1, default=str))
    return exit_code(summary)


def exit_code(summary: dict) -> int:
    """0 for a run that ended (its planned steps, or early stopping); STOPPED_EXIT for one stopped on request."""
    if not summary.get("stopped"):
        return 0
    if int(os.environ.get("RANK", "0")) == 0:
        print(
            f"stopped at step {summary['step']} on request (exit {STOPPED_EXIT}); run the same command "
            "again to resume",
            file=sys.stderr,
        )
    return STOPPED_EXIT


def submit_training(
    launcher: str,
    profile: ClusterProfile,
    config_path: str | None,
    overrides: Sequence[str] = (),
    run_dir: str | None = None,
) -> Any:
    """Submit (or resubmit) a training run as one job of profile.nodes x tasks_per_node ranks that resumes from
    RUN_DIR on every (re)start; returns the submitit Job. Logs: RUN_DIR/slurm/JOBID_RANK_log.*"""
    if launcher == "slurm":
        select_cluster(profile, profile.nodes)  # a job the cluster cannot run writes nothing
    resolved = write_run_config(config_path, overrides, run_dir)
    run_dir = resolved.parent.resolve()
    task = TrainTask(str(run_dir), str(resolved.resolve()))
    return submit_resumable(
        launcher, profile, job_folder(run_dir), task, name="train", kind="train"
    )


def _submit(args: argparse.Namespace) -> int:
    profile = take_profile(args)
    job = submit_training(args.launcher, profile, args.config, args.overrides, args.resume)
    run_dir = job.paths.folder.parent
    return follow_resumable(args, job, job_folder(run_dir), run_dir)


def _torchrun(args: argparse.Namespace) -> int:
    """torchrun's launcher in this process: each rank prints its own error (one line for a user error), so a failed
    rank ends here as one line too, instead of torchrun's ChildFailedError traceback and summary."""
    debug = getattr(args, "debug", False)
    command = [
        "--standalone",
        f"--nproc-per-node={args.nproc_per_node}",
        "-m",
        "foundation.cli.main",
        *(["--debug"] if debug else []),
        "train",
        "--launcher",
        "local",
    ]
    if args.config:
        command += ["--config", args.config]
    if args.resume:
        command += ["--resume", args.resume]
    if args.allow_config_change:
        command += ["--allow-config-change"]
    elastic = logging.getLogger("torch.distributed.elastic")
    level = elastic.level
    if not debug:
        elastic.setLevel(
            logging.CRITICAL
        )  # its "failed (exitcode: 2)" lines repeat what the ranks said
    try:
        torchrun(torchrun_parser().parse_args(command + list(args.overrides)))
    except ChildFailedError as exc:
        if debug:
            raise
        codes = [failure.exitcode for failure in exc.failures.values() if failure.exitcode > 0]
        if codes and set(codes) == {STOPPED_EXIT}:
            return STOPPED_EXIT  # every rank stopped on request and said so
        print(
            f"error: training under torchrun failed ({len(exc.failures)} of {args.nproc_per_node} ranks); the ranks' "
            f"own messages are above",
            file=sys.stderr,
        )
        return (
            min(codes) if codes else 1
        )  # the others may have been ended by torchrun (negative: a signal)
    finally:
        elastic.setLevel(level)
    return 0
