"""Cluster profiles, overrides, rendezvous ports and `foundation status` on files alone (no cluster needed)."""

from __future__ import annotations

import json
import time

import pytest

from foundation.cli.main import main
from foundation.config import ConfigError
from foundation.slurm.dist_env import rendezvous_port
from foundation.slurm.profiles import load_profile, sbatch_option, split_overrides


def test_shipped_profiles_load_and_overrides_apply():
    local = load_profile("local")
    assert (local.partition, local.world_size, local.array.parallelism) == ("debug", 2, 2)
    gpu = load_profile("example-gpu", ["time_min=30", "nodes=2", "array.gpus_per_task=1"])
    assert (gpu.time_min, gpu.world_size, gpu.array.gpus_per_task) == (30, 8, 1)
    assert gpu.tasks_per_node == gpu.gpus_per_node  # one rank per GPU


def test_profile_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="no cluster profile 'nope'"):
        load_profile("nope")
    with pytest.raises(ConfigError, match="unknown key 'partitoin'"):
        load_profile("local", ["partitoin=gpu"])
    with pytest.raises(ConfigError, match="one task per GPU"):
        load_profile("example-gpu", ["tasks_per_node=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("extra_sbatch: ['exclusive']\n")
    with pytest.raises(ConfigError, match="must look like '--key=value'"):
        load_profile(str(bad))


def test_sbatch_lines_and_cluster_overrides():
    assert sbatch_option("#SBATCH --gres=gpu:a100:4") == ("gres", "gpu:a100:4")
    assert sbatch_option("--exclusive") == ("exclusive", True)
    assert split_overrides(["cluster.nodes=4", "train.max_steps=5"]) == (["nodes=4"], ["train.max_steps=5"])


def test_rendezvous_port_is_shared_by_a_job_and_changes_on_restart():
    assert rendezvous_port("4711") == rendezvous_port("4711")
    assert rendezvous_port("4711", 1) != rendezvous_port("4711", 0)
    assert rendezvous_port("12_3") != rendezvous_port("12_4")
    assert all(20000 <= rendezvous_port(str(j), r) < 40000 for j in range(0, 100000, 997) for r in range(3))


def test_status_reports_step_checkpoint_and_throughput(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "slurm").mkdir(parents=True)
    (run / "slurm" / "jobs.jsonl").write_text(json.dumps(
        {"job_id": "123", "kind": "train", "launcher": "submitit-local", "cluster": "local",
         "submitted_at": time.time()}) + "\n")
    (run / "slurm" / "123_0_result.pkl").write_bytes(b"")
    now = time.time()
    events = [{"kind": "train", "step": s, "time": now - 100 + s, "atoms_per_s": 500.0} for s in (10, 20, 30)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    step = run / "checkpoints" / "step-00000030"
    step.mkdir(parents=True)
    (step / "state.json").write_text("{}")
    (run / "checkpoints" / "latest").write_text("step-00000030")
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "job 123" in out and "FINISHED" in out and "step 30" in out
    assert "step-00000030" in out and "500 atoms/s" in out and "1.00 steps/s" in out
