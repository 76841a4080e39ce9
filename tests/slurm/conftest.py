"""The local Slurm cluster (slurm/local_cluster.sh), started once per session when it is not up, left up."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, require

SCRIPT = REPO / "slurm" / "local_cluster.sh"


def _cluster_up() -> bool:
    return subprocess.run(["bash", str(SCRIPT), "status"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    """A running one-node cluster; skips without root (it installs packages and runs daemons as root)."""
    if _cluster_up():
        return
    if os.geteuid() != 0:
        pytest.skip("the local Slurm cluster needs root (bash slurm/local_cluster.sh up installs and starts it)")
    proc = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True, timeout=900)
    require(proc.returncode == 0 and _cluster_up(),
            f"bash slurm/local_cluster.sh up failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")


@pytest.fixture(scope="session")
def slurm_workdir(tmp_path_factory) -> Path:
    """A scratch directory for jobs: the tests' tmp dirs live on this machine, which is also the only node."""
    return tmp_path_factory.mktemp("slurm")
