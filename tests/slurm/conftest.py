"""The local Slurm clusters (slurm/local_cluster.sh): the one-node cluster, started once per session when it is not
up and left up; the two-node cluster in network namespaces, brought up for the tests that need it and taken down
after them (it runs beside the one-node cluster: its own slurm.conf, ports and state)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from foundation.slurm.profiles import ClusterProfile, load_profile

from tests.conftest import REPO, require
from tests.train.helpers import make_dataset, tiny_config

SCRIPT = REPO / "slurm" / "local_cluster.sh"
STEPS = 40  # optimizer steps of every training run in these tests


def _cluster_up(*options: str) -> bool:
    return (
        subprocess.run(["bash", str(SCRIPT), "status", *options], capture_output=True).returncode
        == 0
    )


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A running one-node cluster; skips without root (it installs packages and runs daemons as root)."""
    if _cluster_up():
        return
    if os.geteuid() != 0:
        pytest.skip(
            "the local Slurm cluster needs root (bash slurm/local_cluster.sh up installs and starts it)"
        )
    proc = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    require(
        proc.returncode == 0 and _cluster_up(),
        f"bash slurm/local_cluster.sh up failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}",
    )


@pytest.fixture(scope="session")
def slurm_workdir(tmp_path_factory) -> Path:
    """A scratch directory for jobs: the tests' tmp dirs live on this machine, which is also the only node."""
    return tmp_path_factory.mktemp("slurm")


def torchrun_reference(workdir: Path, name: str, **sections) -> tuple[Path, Path]:
    """(config, run_dir): a tiny SchNet trained on real MPtrj frames for STEPS steps by a 2-process torchrun on
    this host, `sections` updating the config (tiny_config); the dataset is shared by every reference."""
    data = workdir / "train-data"
    if not data.exists():
        make_dataset(data)
    config, reference = workdir / f"{name}.yaml", workdir / name
    train = {"max_steps": STEPS, "log_every": 2, "val_every": 20, "checkpoint_every": 4}
    config.write_text(yaml.safe_dump(tiny_config(data, reference, train=train, **sections)))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "foundation.cli.main",
            "train",
            "--config",
            str(config),
            "--launcher",
            "torchrun",
            "--nproc-per-node",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    return config, reference


@pytest.fixture(scope="session")
def trained_run(slurm_cluster, slurm_workdir) -> tuple[Path, Path]:
    """(config, run_dir): ZeRO-2, the uninterrupted reference of the Slurm runs, and the checkpoint the eval
    arrays evaluate."""
    return torchrun_reference(slurm_workdir, "torchrun", engine={"zero_stage": 2})


@pytest.fixture(scope="session")
def zero1_run(slurm_workdir) -> tuple[Path, Path]:
    """(config, run_dir): ZeRO-1 with one DataLoader worker per rank."""
    return torchrun_reference(
        slurm_workdir, "torchrun-zero1", engine={"zero_stage": 1}, data={"num_workers": 1}
    )


@pytest.fixture(scope="session")
def two_node_cluster() -> Iterator[ClusterProfile]:
    """The two-node cluster (`local_cluster.sh up --nodes 2`: fnode1 and fnode2, each slurmd in its own network
    namespace) and its profile local-2node; taken down at the end when this session brought it up."""
    require(
        os.geteuid() == 0, "the two-node Slurm cluster needs root (network namespaces, daemons)"
    )
    was_up = _cluster_up("--nodes", "2")
    if not was_up:
        proc = subprocess.run(
            ["bash", str(SCRIPT), "up", "--nodes", "2"], capture_output=True, text=True, timeout=900
        )
        require(
            proc.returncode == 0 and _cluster_up("--nodes", "2"),
            f"bash slurm/local_cluster.sh up --nodes 2 failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n"
            f"{proc.stderr[-2000:]}",
        )
    yield load_profile("local-2node")
    if not was_up:
        subprocess.run(
            ["bash", str(SCRIPT), "down", "--nodes", "2"], check=True, capture_output=True
        )


@pytest.fixture
def on_two_nodes(two_node_cluster, monkeypatch) -> ClusterProfile:
    """The two-node cluster's profile, with this process's Slurm commands pointed at it for one test only
    (SLURM_CONF is restored afterwards, so the one-node tests reach their own cluster)."""
    monkeypatch.setenv("SLURM_CONF", two_node_cluster.slurm_conf)
    return two_node_cluster
