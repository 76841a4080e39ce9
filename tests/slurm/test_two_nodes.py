"""Training across two Slurm nodes (slurm/local_cluster.sh up --nodes 2: fnode1 and fnode2, each in its own network
namespace): DeepSpeed ZeRO-1/2 against torchrun on one host, a node lost mid-run, a frozen node, and preemption."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from foundation.slurm.executor import recorded_jobs

from foundation.cli.main import main
from foundation.cli.train import submit_training
from foundation.train.checkpoint import latest_checkpoint
from tests.slurm.conftest import STEPS
from tests.slurm.helpers import (
    assert_same_weights,
    job_field,
    placements,
    train_losses,
    wait_for_checkpoint,
    wait_for_final_state,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

NODES = {"fnode1": "10.213.0.11", "fnode2": "10.213.0.12"}
TIMEOUT_S = 20  # engine.collective_timeout_s of the runs that lose a node


def assert_one_rank_per_node(run_dir: Path, job_id: str, starts: int = 1) -> None:
    """Rank 0 ran on fnode1 and rank 1 on fnode2 (each from its node's address), `starts` times, and both met at
    fnode1's namespace address, not at loopback."""
    where = placements(run_dir, job_id)
    assert sorted(where) == [0, 1]
    for rank, host in enumerate(NODES):
        assert len(where[rank]) == starts
        for start in where[rank]:
            assert (start["host"], start["addr"], start["node"]) == (host, NODES[host], str(rank))
            assert (start["master"], start["master_addr"]) == ("fnode1", NODES["fnode1"])


def rank_processes(node: str) -> list[int]:
    """The training ranks running in a node's network namespace (not its slurmd or slurmstepd)."""
    pids = subprocess.run(
        ["ip", "netns", "pids", node], capture_output=True, text=True, check=True
    ).stdout.split()
    ranks = []
    for pid in map(int, pids):
        try:
            if b"submitit.core._submit" in Path(f"/proc/{pid}/cmdline").read_bytes():
                ranks.append(pid)
        except FileNotFoundError:
            pass
    assert ranks, f"no training rank runs on {node}"
    return ranks


def assert_nothing_half_written(run_dir: Path) -> None:
    """Every checkpoint directory is complete (no .tmp- left), `latest` names one, every metrics line parses."""
    root = run_dir / "checkpoints"
    assert not list(root.glob(".tmp-*")) and not list(run_dir.glob(".tmp-*"))
    assert (root / (root / "latest").read_text().strip()).is_dir()
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        json.loads(line)


@pytest.mark.parametrize("stage", [1, 2])
def test_two_node_training_matches_torchrun(
    stage, on_two_nodes, zero1_run, trained_run, slurm_workdir, monkeypatch, capsys
):
    config, reference = zero1_run if stage == 1 else trained_run
    run_dir = slurm_workdir / f"two-node-zero{stage}"
    code = main(
        [
            "train",
            "--config",
            str(config),
            "--launcher",
            "slurm",
            "--cluster",
            "local-2node",
            "--wait",
            f"run_dir={run_dir}",
            "cluster.nodes=2",
        ]
    )
    assert code == 0
    (job,) = recorded_jobs(run_dir / "slurm")
    assert_one_rank_per_node(run_dir, job["job_id"])
    assert job_field(job["job_id"], "NodeList") == "fnode[1-2]"
    # one rank per node, so the per-rank logs are per-node logs
    assert {p.name for p in (run_dir / "slurm").glob(f"{job['job_id']}_*_log.err")} == {
        f"{job['job_id']}_0_log.err",
        f"{job['job_id']}_1_log.err",
    }
    assert train_losses(run_dir) == pytest.approx(train_losses(reference), rel=1e-6)
    assert_same_weights(run_dir, reference)
    wait_for_final_state(job["job_id"])
    monkeypatch.delenv("SLURM_CONF")  # `foundation status` asks the cluster that jobs.jsonl names
    capsys.readouterr()
    assert main(["status", str(run_dir)]) == 0
    assert f"job {job['job_id']}" in (status := capsys.readouterr().out) and "COMPLETED" in status


def test_node_lost_mid_run_fails_the_job_and_resumes_to_the_same_weights(
    on_two_nodes, trained_run, slurm_workdir
):
    config, reference = trained_run
    run_dir = slurm_workdir / "node-lost"
    overrides = [f"engine.collective_timeout_s={TIMEOUT_S}"]
    job = submit_training("slurm", on_two_nodes, config, overrides, run_dir=run_dir)
    wait_for_checkpoint(run_dir, 4, job)
    for pid in rank_processes("fnode2"):
        os.kill(pid, signal.SIGKILL)
    wait_for_final_state(job.job_id)
    # a killed rank is a failed step (srun --kill-on-bad-exit ends its peer): the job fails, it is not requeued
    assert (job_field(job.job_id, "JobState"), job_field(job.job_id, "Restarts")) == ("FAILED", "0")
    stopped_at = latest_checkpoint(run_dir)
    assert stopped_at is not None and int(stopped_at.name.split("-")[1]) < STEPS
    assert_nothing_half_written(run_dir)
    # the node is back: the same run directory, resubmitted on both nodes
    resumed = submit_training("slurm", on_two_nodes, None, run_dir=run_dir)
    assert [s["step"] for s in resumed.results()] == [STEPS, STEPS]
    assert f"resumed from {stopped_at}" in (run_dir / "train.log").read_text()
    assert_one_rank_per_node(run_dir, resumed.job_id)
    assert_nothing_half_written(run_dir)
    assert train_losses(run_dir) == train_losses(reference)
    assert_same_weights(run_dir, reference, exact=True)


def test_a_frozen_node_ends_the_job_after_the_collective_timeout(
    on_two_nodes, trained_run, slurm_workdir
):
    """A node that stops answering without closing its connections (SIGSTOP: a hung host or a cut cable): its
    peer gives up after engine.collective_timeout_s instead of waiting forever, and the job fails."""
    config, _ = trained_run
    run_dir = slurm_workdir / "node-frozen"
    overrides = [f"engine.collective_timeout_s={TIMEOUT_S}"]
    job = submit_training("slurm", on_two_nodes, config, overrides, run_dir=run_dir)
    wait_for_checkpoint(run_dir, 4, job)
    for pid in rank_processes("fnode2"):
        os.kill(pid, signal.SIGSTOP)
    wait_for_final_state(job.job_id, deadline_s=600)
    assert job_field(job.job_id, "JobState") == "FAILED"
    log = (run_dir / "slurm" / f"{job.job_id}_0_log.err").read_text()
    assert f"Timed out waiting {TIMEOUT_S * 1000}ms" in log
    assert_nothing_half_written(run_dir)


@pytest.mark.parametrize("how", ["time-limit signal", "scontrol requeue"])
def test_preempted_two_node_job_checkpoints_once_and_resumes_on_both_nodes(
    how, on_two_nodes, trained_run, slurm_workdir
):
    config, reference = trained_run
    run_dir = slurm_workdir / f"preempted-{how.replace(' ', '-')}"
    job = submit_training("slurm", on_two_nodes, config, run_dir=run_dir)
    wait_for_checkpoint(run_dir, 4, job)
    if how == "scontrol requeue":
        subprocess.run(["scontrol", "requeue", job.job_id], check=True)
    else:
        job._interrupt(
            timeout=True
        )  # scancel --signal USR2: what Slurm sends signal_delay_s before the limit
    assert [s["step"] for s in job.results()] == [STEPS, STEPS]
    assert job_field(job.job_id, "Restarts") == "1"
    log = (run_dir / "train.log").read_text().splitlines()
    stops = [i for i, line in enumerate(log) if "stop requested" in line]
    resumes = [i for i, line in enumerate(log) if "resumed from" in line]
    assert len(stops) == 1 and len(resumes) == 1
    # one checkpoint of the whole job at the stop step (every rank writing its own shard into it), which both
    # nodes resumed from
    step = int(log[stops[0]].rsplit(" ", 1)[1])
    saved = run_dir / "checkpoints" / f"step-{step:08d}"
    assert [line for line in log[stops[0] : resumes[0]] if " checkpoint " in line] == [
        log[stops[0] + 1]
    ]
    assert log[stops[0] + 1].endswith(f" checkpoint {saved}")
    assert f"resumed from {saved} (step {step}," in log[resumes[0]]
    assert_one_rank_per_node(run_dir, job.job_id, starts=2)
    assert_same_weights(run_dir, reference)


def test_more_nodes_than_the_cluster_has_is_one_line_and_writes_nothing(
    on_two_nodes, trained_run, slurm_workdir, capsys
):
    config, _ = trained_run
    run_dir = slurm_workdir / "three-nodes"
    args = [
        "--launcher",
        "slurm",
        "--cluster",
        "local-2node",
        f"run_dir={run_dir}",
        "cluster.nodes=3",
    ]
    assert main(["train", "--config", str(config), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cluster.nodes=3" in err and "(2, from sinfo)" in err
    assert not run_dir.exists()
