"""Training on the local Slurm cluster: a 2-task DeepSpeed ZeRO-2 job against torchrun, `scontrol requeue` and
`scancel` in the middle of a run, and resuming a cancelled run with the submitit-local launcher."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch
from foundation.slurm.profiles import load_profile
from safetensors.torch import load_file

from foundation.cli.main import main
from foundation.cli.train import submit_training
from foundation.train.checkpoint import latest_checkpoint
from tests.slurm.conftest import STEPS

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "last" / "model.safetensors")


def assert_same_weights(run_dir: Path, reference: Path) -> None:
    got, want = weights(run_dir), weights(reference)
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], rtol=1e-6, atol=1e-7, msg=f"{key} differs")


def train_losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {e["step"]: e["loss"] for e in map(json.loads, lines) if e["kind"] == "train"}


def wait_for_checkpoint(run_dir: Path, step: int, job, deadline_s: float = 600) -> None:
    """Block until a complete checkpoint at `step` or later exists (a guard against hangs, not a timing check)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        latest = latest_checkpoint(run_dir)
        if latest is not None and int(latest.name.split("-")[1]) >= step:
            return
        assert not job.done(), f"job {job.job_id} ended before step {step}: {job.stderr()}"
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint at step {step} in {run_dir} after {deadline_s} s")


def wait_for_final_state(job_id: str, deadline_s: float = 120) -> None:
    end = time.monotonic() + deadline_s
    while job_field(job_id, "JobState") in ("RUNNING", "COMPLETING", "PENDING", "REQUEUED"):
        assert time.monotonic() < end, f"job {job_id} still {job_field(job_id, 'JobState')}"
        time.sleep(0.2)


def job_field(job_id: str, name: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True
    ).stdout
    fields = dict(part.split("=", 1) for part in out.split() if "=" in part)
    return fields.get(name, "")


def test_zero2_job_matches_torchrun(trained_run, slurm_workdir, capsys):
    config, reference = trained_run
    run_dir = slurm_workdir / "zero2"
    job = submit_training("slurm", load_profile("local"), config, run_dir=run_dir)
    summaries = job.results()
    assert [s["step"] for s in summaries] == [STEPS, STEPS] and not any(
        s["stopped"] for s in summaries
    )
    assert train_losses(run_dir) == pytest.approx(train_losses(reference), rel=1e-6)
    assert_same_weights(run_dir, reference)
    # the run directory: one log per rank, the resolved config, checkpoints and TensorBoard events
    assert {p.name for p in (run_dir / "slurm").glob(f"{job.job_id}_*_log.out")} == {
        f"{job.job_id}_0_log.out",
        f"{job.job_id}_1_log.out",
    }
    assert (run_dir / "config.yaml").is_file() and any((run_dir / "tb").iterdir())
    assert latest_checkpoint(run_dir).name == f"step-{STEPS:08d}"
    wait_for_final_state(
        job.job_id
    )  # the tasks have written their results; the job itself may still be ending
    assert main(["status", str(run_dir)]) == 0
    status = capsys.readouterr().out
    assert f"job {job.job_id}" in status and "COMPLETED" in status and f"step {STEPS}" in status


def test_scontrol_requeue_resumes_to_the_same_weights(trained_run, slurm_workdir):
    config, reference = trained_run
    run_dir = slurm_workdir / "requeued"
    job = submit_training("slurm", load_profile("local"), config, run_dir=run_dir)
    wait_for_checkpoint(run_dir, 4, job)
    subprocess.run(["scontrol", "requeue", job.job_id], check=True)
    assert [s["step"] for s in job.results()] == [STEPS, STEPS]
    assert job_field(job.job_id, "Restarts") == "1"
    log = (run_dir / "train.log").read_text()
    assert "stop requested" in log and "resumed from" in log
    assert_same_weights(run_dir, reference)


def test_scancel_leaves_a_run_that_resumes_cleanly(trained_run, slurm_workdir):
    config, reference = trained_run
    run_dir = slurm_workdir / "cancelled"
    profile = load_profile("local")
    job = submit_training("slurm", profile, config, run_dir=run_dir)
    wait_for_checkpoint(run_dir, 4, job)
    subprocess.run(["scancel", job.job_id], check=True)
    wait_for_final_state(job.job_id)
    assert job_field(job.job_id, "JobState") == "CANCELLED"
    stopped_at = latest_checkpoint(run_dir)
    assert stopped_at is not None and int(stopped_at.name.split("-")[1]) < STEPS
    # resubmitted with nothing but the run directory, on this machine through submitit-local
    resumed = submit_training("submitit-local", profile, None, run_dir=run_dir)
    assert [s["step"] for s in resumed.results()] == [STEPS, STEPS]
    assert f"resumed from {stopped_at}" in (run_dir / "train.log").read_text()
    assert_same_weights(run_dir, reference)
