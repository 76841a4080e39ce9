"""Data prep as a Slurm array (one task per chunk) plus a merge job: the same dataset as a local run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from foundation.data.verify import verify_dataset
from tests.conftest import FIXTURES

pytestmark = pytest.mark.slurm


def prep(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "foundation.cli.main", "prep", *args],
        capture_output=True,
        text=True,
        check=True,
    )


def shards(directory) -> list[tuple]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return [(s["path"], s["split"], s["num_frames"], s["sha256"]) for s in manifest["shards"]]


def test_prep_array_gives_the_local_dataset(slurm_cluster, slurm_workdir):
    source = str(FIXTURES / "dft" / "alexandria-sample.xyz")  # 160 real DFT frames -> 4 chunks
    local, cluster = slurm_workdir / "prep-local", slurm_workdir / "prep-slurm"
    options = ["--chunk-frames", "40", "--shard-size", "50", "--container", "both", "--no-progress"]
    prep(source, "--out", str(local), *options)
    run = prep(
        source,
        "cluster.array.time_min=5",
        "--out",
        str(cluster),
        *options,
        "--launcher",
        "slurm",
        "--cluster",
        "local",
        "--wait",
    )
    assert (
        "4 chunks (4 already done)" in run.stdout
    )  # the merge job found every chunk done by the array
    assert shards(cluster) == shards(local) and len(shards(local)) >= 4
    assert verify_dataset(cluster).ok
    jobs = slurm_workdir / "prep-slurm.slurm"
    assert len(list(jobs.glob("*_*_0_log.out"))) == 4  # one log per array task
    assert not list(cluster.rglob("*.pkl"))  # submitit's job files stay outside the dataset
