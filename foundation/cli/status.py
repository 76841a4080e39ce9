"""`foundation status DIR`: job state, step, last checkpoint and recent throughput of a run launched with
--launcher slurm or submitit-local (training run directory, eval output directory, or prepared dataset)."""

from __future__ import annotations

import argparse
import errno
import json
import os
import time
from pathlib import Path
from typing import Any

from foundation.data.manifest import MANIFEST_NAME, Manifest
from foundation.data_prep.pipeline import WORK_NAME, prep_job_folder
from foundation.evals.suite import UNITS_DIR
from foundation.jobs import job_folder
from foundation.report import REPORT_HTML
from foundation.slurm.executor import job_state, recorded_jobs
from foundation.train.checkpoint import latest_checkpoint
from foundation.train.run_layout import CHECKPOINT_STATE, RunLayout

EPILOG = """examples:
  foundation status runs/train/efs        jobs, step, last checkpoint, atoms/s of a training run
  foundation status runs/eval/quick       the unit array and reducer of an eval run
  foundation status runs/data/mptrj       the chunk array and merge job of a data-prep run (OUT.slurm/)
  foundation status runs/train/efs --json the same as JSON"""


THROUGHPUT_WINDOW = 5  # train events averaged for the recent throughput


def job_folders(directory: str | os.PathLike) -> list[Path]:
    """Where a run's job files are: RUN_DIR/slurm (training, eval) or OUT.slurm beside a prepared dataset."""
    return [f for f in (job_folder(directory), prep_job_folder(directory)) if f.is_dir()]


def training_progress(run_dir: Path) -> dict[str, Any] | None:
    """Step, last checkpoint and recent throughput of a training run directory (None if it is not one)."""
    layout = RunLayout(run_dir)
    metrics = layout.metrics_log
    if not metrics.exists() and not layout.checkpoints.is_dir():
        return None
    events = (
        [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        if metrics.exists()
        else []
    )
    train = [e for e in events if e.get("kind") == "train"]
    info: dict[str, Any] = {"step": max((e["step"] for e in events), default=0)}
    latest = latest_checkpoint(run_dir)
    if latest is not None:
        info["checkpoint"] = str(latest)
        info["checkpoint_age_s"] = time.time() - (latest / CHECKPOINT_STATE).stat().st_mtime
    recent = train[-THROUGHPUT_WINDOW:]
    if recent:
        rates = [e["atoms_per_s"] for e in recent if e.get("atoms_per_s") is not None]
        if rates:
            info["atoms_per_s"] = sum(rates) / len(rates)
        step_times = [e["step_time_s"] for e in recent if e.get("step_time_s")]
        if step_times:  # the loop's own timing: not diluted by a restart between two log lines
            info["steps_per_s"] = len(step_times) / sum(step_times)
        elif len(recent) > 1 and recent[-1]["time"] > recent[0]["time"]:
            info["steps_per_s"] = (recent[-1]["step"] - recent[0]["step"]) / (
                recent[-1]["time"] - recent[0]["time"]
            )
        info["last_event_age_s"] = time.time() - recent[-1]["time"]
    return info


def other_progress(directory: Path) -> list[str]:
    """Data-prep and eval progress lines, from the files those jobs leave."""
    lines = []
    if (directory / MANIFEST_NAME).exists():
        manifest = Manifest.load(directory)
        lines.append(
            f"dataset complete: {manifest.num_frames()} frames in {len(manifest.shards)} shards"
        )
    elif (directory / WORK_NAME).is_dir():
        done = len(list((directory / WORK_NAME).glob("chunk-*.done")))
        lines.append(f"data prep in progress: {done} chunks done")
    if (directory / UNITS_DIR).is_dir():
        lines.append(f"eval units finished: {len(list((directory / UNITS_DIR).rglob('*.json')))}")
        if (directory / REPORT_HTML).exists():
            lines.append(f"report: {directory / REPORT_HTML}")
    return lines


def collect_status(directory: str | os.PathLike) -> dict[str, Any]:
    """Everything `foundation status` prints, as data."""
    directory = Path(directory)
    jobs = []
    for folder in job_folders(directory):
        for entry in recorded_jobs(folder):
            jobs.append({**entry, "state": job_state(entry, folder), "folder": str(folder)})
    return {
        "directory": str(directory),
        "jobs": jobs,
        "training": training_progress(directory),
        "other": other_progress(directory),
    }


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def format_status(status: dict[str, Any]) -> str:
    lines = [f"{status['directory']}"]
    if not status["jobs"]:
        lines.append("  no submitted jobs recorded (run with --launcher slurm or submitit-local)")
    for job in status["jobs"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["submitted_at"]))
        lines.append(
            f"  job {job['job_id']:<10} {job['kind']:<6} {job['launcher']}/{job['cluster']}  "
            f"submitted {when}  state {job['state']}"
        )
    train = status["training"]
    if train is not None:
        lines.append(f"  step {train['step']}")
        if "checkpoint" in train:
            lines.append(
                f"  last checkpoint {train['checkpoint']} ({_age(train['checkpoint_age_s'])})"
            )
        else:
            lines.append("  no complete checkpoint yet")
        if "atoms_per_s" in train or "steps_per_s" in train:
            parts = [
                f"{train['atoms_per_s']:.0f} atoms/s" if "atoms_per_s" in train else "",
                f"{train['steps_per_s']:.2f} steps/s" if "steps_per_s" in train else "",
            ]
            lines.append(
                f"  recent throughput {' '.join(p for p in parts if p)} "
                f"(last log {_age(train['last_event_age_s'])})"
            )
    lines += [f"  {line}" for line in status["other"]]
    if status["jobs"]:
        lines.append(f"  logs: {status['jobs'][-1]['folder']}/JOBID_RANK_log.out|err")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "status",
        help="state of a run's Slurm/submitit jobs, its step, checkpoint and throughput",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
    )
    p.add_argument(
        "directory",
        metavar="DIR",
        help="a training run directory, eval --out or prep --out directory",
    )
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not os.path.isdir(args.directory):
        raise FileNotFoundError(errno.ENOENT, "no such directory", args.directory)
    status = collect_status(args.directory)
    print(json.dumps(status, indent=1, default=str) if args.json else format_status(status))
    return 0
