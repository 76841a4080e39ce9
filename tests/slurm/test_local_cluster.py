"""slurm/local_cluster.sh refuses bad input with one line and starts nothing."""

from __future__ import annotations

import os
import shutil
import subprocess

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
