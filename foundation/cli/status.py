"""`foundation status DIR`: job state, step, last checkpoint and recent throughput of a run launched with
--launcher slurm or submitit-local (training run directory, eval output directory, or prepared dataset)."""

from __future__ import annotations

import argparse
import errno
import json
import os

EPILOG = """examples:
  foundation status runs/train/efs        jobs, step, last checkpoint, atoms/s of a training run
  foundation status runs/eval/quick       the unit array and reducer of an eval run
  foundation status runs/data/mptrj       the chunk array and merge job of a data-prep run (OUT.slurm/)
  foundation status runs/train/efs --json the same as JSON"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="state of a run's Slurm/submitit jobs, its step, checkpoint and throughput",
                       formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    p.add_argument("directory", metavar="DIR", help="a training run directory, eval --out or prep --out directory")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from foundation.slurm.status import collect_status, format_status

    if not os.path.isdir(args.directory):
        raise FileNotFoundError(errno.ENOENT, "no such directory", args.directory)
    status = collect_status(args.directory)
    print(json.dumps(status, indent=1, default=str) if args.json else format_status(status))
    return 0
