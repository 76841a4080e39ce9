"""The local Slurm cluster (slurm/local_cluster.sh), started once per session when it is not up, left up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, require
from tests.train.helpers import make_dataset, tiny_config

SCRIPT = REPO / "slurm" / "local_cluster.sh"
STEPS = 40  # optimizer steps of every training run in these tests


def _cluster_up() -> bool:
    return subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0


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


@pytest.fixture(scope="session")
def trained_run(slurm_cluster, slurm_workdir) -> tuple[Path, Path]:
    """(config, run_dir): a tiny SchNet trained with DeepSpeed ZeRO-2 on real MPtrj frames by a 2-process
    torchrun: the uninterrupted reference of the Slurm runs, and the checkpoint the eval array evaluates."""
    data = make_dataset(slurm_workdir / "train-data")
    config = slurm_workdir / "zero2.yaml"
    reference = slurm_workdir / "torchrun"
    cfg = tiny_config(
        data,
        reference,
        engine={"zero_stage": 2},
        train={"max_steps": STEPS, "log_every": 2, "val_every": 20, "checkpoint_every": 4},
    )
    config.write_text(yaml.safe_dump(cfg))
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
