"""slurm/local_cluster.sh refuses bad input with one line and starts nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import require
from tests.slurm.conftest import SCRIPT

pytestmark = pytest.mark.slurm


def cluster_script(*args: str, user: str | None = None) -> subprocess.CompletedProcess:
    command = ["bash", str(SCRIPT), *args]
    if user:
        command = ["runuser", "-u", user, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


@pytest.mark.parametrize("nodes", ["0", "9", "two"])
def test_a_node_count_out_of_range_is_one_line(nodes):
    run = cluster_script("up", "--nodes", nodes)
    assert run.returncode == 2
    assert run.stderr.strip() == (
        f"local_cluster.sh: --nodes must be a number from 1 to 8, got '{nodes}'"
    )


def test_without_root_up_says_so_and_makes_no_namespace():
    require(os.geteuid() == 0 and shutil.which("runuser") is not None, "needs root and runuser")
    before = namespaces()
    run = cluster_script("up", "--nodes", "2", user="nobody")
    assert run.returncode == 1
    assert (
        run.stderr.strip().startswith("local_cluster.sh: needs root")
        and "network namespaces" in run.stderr
    )
    assert len(run.stderr.strip().splitlines()) == 1
    assert namespaces() == before


def test_a_second_multi_node_cluster_is_refused_and_the_first_keeps_running(two_node_cluster):
    before = namespaces()
    run = cluster_script("up", "--nodes", "3")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "local_cluster.sh: network bridge fnode-br exists already (a multi-node local cluster is up, or its "
        "remains: bash slurm/local_cluster.sh down --nodes N)"
    ]
    assert namespaces() == before and "fnode3" not in before
    state = os.environ.get("FOUNDATION_SLURM_STATE", "/tmp/foundation-slurm")
    assert not Path(f"{state}-3node").exists()  # refused before anything was written
    assert cluster_script("status", "--nodes", "2").returncode == 0
