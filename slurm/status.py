"""`foundation status DIR`: the jobs submitted for a run (state from Slurm through submitit's sacct query) and the
run's progress: training step, last complete checkpoint, recent throughput; data-prep chunks; eval units."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from foundation.slurm.arrays import prep_job_folder
from foundation.slurm.executor import job_folder, recorded_jobs

THROUGHPUT_WINDOW = 5  # train events averaged for the recent throughput


def job_folders(directory: str | os.PathLike) -> list[Path]:
    """Where a run's job files are: RUN_DIR/slurm (training, eval) or OUT.slurm beside a prepared dataset."""
    return [f for f in (job_folder(directory), prep_job_folder(directory)) if f.is_dir()]


def job_state(entry: dict[str, Any], folder: Path) -> str:
    """The scheduler's state of a recorded job (the first task of an array)."""
    if entry["launcher"] != "slurm":
        done = (folder / f"{entry['job_id']}_0_result.pkl").exists()
        return "FINISHED" if done else "NO RESULT (running, stopped or killed; submitit-local)"
    try:
        from submitit.slurm.slurm import SlurmJob

        return SlurmJob(folder=folder, job_id=str(entry["job_id"])).state
    except Exception as exc:  # no Slurm reachable from here: say so instead of failing
        return f"UNKNOWN ({type(exc).__name__}: {exc})"


def training_progress(run_dir: Path) -> dict[str, Any] | None:
    """Step, last checkpoint and recent throughput of a training run directory (None if it is not one)."""
    metrics = run_dir / "metrics.jsonl"
    if not metrics.exists() and not (run_dir / "checkpoints").is_dir():
        return None
    from foundation.train.checkpoint import latest_checkpoint

    events = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.exists() else []
    train = [e for e in events if e.get("kind") == "train"]
    info: dict[str, Any] = {"step": max((e["step"] for e in events), default=0)}
    latest = latest_checkpoint(run_dir)
    if latest is not None:
        info["checkpoint"] = str(latest)
        info["checkpoint_age_s"] = time.time() - (latest / "state.json").stat().st_mtime
    recent = train[-THROUGHPUT_WINDOW:]
    if recent:
        rates = [e["atoms_per_s"] for e in recent if e.get("atoms_per_s") is not None]
        if rates:
            info["atoms_per_s"] = sum(rates) / len(rates)
        step_times = [e["step_time_s"] for e in recent if e.get("step_time_s")]
        if step_times:  # the loop's own timing: not diluted by a restart between two log lines
            info["steps_per_s"] = len(step_times) / sum(step_times)
        elif len(recent) > 1 and recent[-1]["time"] > recent[0]["time"]:
            info["steps_per_s"] = (recent[-1]["step"] - recent[0]["step"]) / (recent[-1]["time"] - recent[0]["time"])
        info["last_event_age_s"] = time.time() - recent[-1]["time"]
    return info


def other_progress(directory: Path) -> list[str]:
    """Data-prep and eval progress lines, from the files those jobs leave."""
    lines = []
    if (directory / "manifest.json").exists():
        from foundation.data.manifest import Manifest

        manifest = Manifest.load(directory)
        lines.append(f"dataset complete: {manifest.num_frames()} frames in {len(manifest.shards)} shards")
    elif (directory / "_work").is_dir():
        done = len(list((directory / "_work").glob("chunk-*.done")))
        lines.append(f"data prep in progress: {done} chunks done")
    if (directory / "units").is_dir():
        lines.append(f"eval units finished: {len(list((directory / 'units').rglob('*.json')))}")
        if (directory / "report.html").exists():
            lines.append(f"report: {directory / 'report.html'}")
    return lines


def collect_status(directory: str | os.PathLike) -> dict[str, Any]:
    """Everything `foundation status` prints, as data."""
    directory = Path(directory)
    jobs = []
    for folder in job_folders(directory):
        for entry in recorded_jobs(folder):
            jobs.append({**entry, "state": job_state(entry, folder), "folder": str(folder)})
    return {"directory": str(directory), "jobs": jobs, "training": training_progress(directory),
            "other": other_progress(directory)}


def _age(seconds: float) -> str:
    return f"{seconds:.0f} s ago" if seconds < 120 else f"{seconds / 60:.0f} min ago"


def format_status(status: dict[str, Any]) -> str:
    lines = [f"{status['directory']}"]
    if not status["jobs"]:
        lines.append("  no submitted jobs recorded (run with --launcher slurm or submitit-local)")
    for job in status["jobs"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(job["submitted_at"]))
        lines.append(f"  job {job['job_id']:<10} {job['kind']:<6} {job['launcher']}/{job['cluster']}  "
                     f"submitted {when}  state {job['state']}")
    train = status["training"]
    if train is not None:
        lines.append(f"  step {train['step']}")
        if "checkpoint" in train:
            lines.append(f"  last checkpoint {train['checkpoint']} ({_age(train['checkpoint_age_s'])})")
        else:
            lines.append("  no complete checkpoint yet")
        if "atoms_per_s" in train or "steps_per_s" in train:
            parts = [f"{train['atoms_per_s']:.0f} atoms/s" if "atoms_per_s" in train else "",
                     f"{train['steps_per_s']:.2f} steps/s" if "steps_per_s" in train else ""]
            lines.append(f"  recent throughput {' '.join(p for p in parts if p)} "
                         f"(last log {_age(train['last_event_age_s'])})")
    lines += [f"  {line}" for line in status["other"]]
    if status["jobs"]:
        lines.append(f"  logs: {status['jobs'][-1]['folder']}/JOBID_RANK_log.out|err")
    return "\n".join(lines)
