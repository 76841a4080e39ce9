"""Cluster profiles, overrides and rendezvous ports (no cluster needed)."""

from __future__ import annotations

import pytest
from foundation.slurm.dist_env import rendezvous_port
from foundation.slurm.executor import select_cluster
from foundation.slurm.profiles import load_profile, sbatch_option, split_overrides

from foundation.config import ConfigError


def test_shipped_profiles_load_and_overrides_apply():
    local = load_profile("local")
    assert (local.partition, local.world_size, local.array.parallelism) == ("debug", 2, 2)
    gpu = load_profile("example-gpu", ["time_min=30", "nodes=2", "array.gpus_per_task=1"])
    assert (gpu.time_min, gpu.world_size, gpu.array.gpus_per_task) == (30, 8, 1)
    assert gpu.tasks_per_node == gpu.gpus_per_node  # one rank per GPU
    two = load_profile("local-2node")
    assert (two.nodes, two.tasks_per_node, two.slurm_conf) == (
        2,
        1,
        "/tmp/foundation-slurm-2node/slurm.conf",
    )


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


def test_a_profile_naming_a_missing_slurm_conf_is_refused(tmp_path):
    profile = load_profile("local-2node", [f"slurm_conf={tmp_path / 'slurm.conf'}"])
    with pytest.raises(
        ConfigError, match=r"slurm_conf .*slurm.conf does not exist \(is that cluster up\?\)"
    ):
        select_cluster(profile, nodes=2)


def test_sbatch_lines_and_cluster_overrides():
    assert sbatch_option("#SBATCH --gres=gpu:a100:4") == ("gres", "gpu:a100:4")
    assert sbatch_option("--exclusive") == ("exclusive", True)
    assert split_overrides(["cluster.nodes=4", "train.max_steps=5"]) == (
        ["nodes=4"],
        ["train.max_steps=5"],
    )


def test_rendezvous_port_is_shared_by_a_job_and_changes_on_restart():
    assert rendezvous_port("4711") == rendezvous_port("4711")
    assert rendezvous_port("4711", 1) != rendezvous_port("4711", 0)
    assert rendezvous_port("12_3") != rendezvous_port("12_4")
    assert all(
        20000 <= rendezvous_port(str(j), r) < 40000 for j in range(0, 100000, 997) for r in range(3)
    )
