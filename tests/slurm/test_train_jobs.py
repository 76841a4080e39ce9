"""Training on the local Slurm cluster: a 2-task DeepSpeed ZeRO-2 job against torchrun, `scontrol requeue` and
`scancel` in the middle of a run, and resuming a cancelled run with the submitit-local launcher."""

from __future__ import annotations

import subprocess

import pytest
from foundation.slurm.profiles import load_profile

from foundation.cli.main import main
from foundation.cli.train import submit_training
from foundation.train.checkpoint import latest_checkpoint
from tests.slurm.conftest import STEPS
from tests.slurm.helpers import (
    assert_same_weights,
    job_field,
    train_losses,
    wait_for_checkpoint,
    wait_for_final_state,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


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
