"""Array jobs spread over the two-node cluster (a prep array, an eval array): the same results as on one node."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import FIXTURES
from tests.slurm.helpers import job_field

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def cli(*args: str) -> subprocess.CompletedProcess:
    run = subprocess.run(
        [sys.executable, "-m", "foundation.cli.main", *args], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return run


def array_nodes(job_folder: Path) -> set[str]:
    """The nodes the array tasks whose logs are in `job_folder` ran on (ARRAYID_INDEX_0_log.out)."""
    nodes = set()
    for log in job_folder.glob("*_*_0_log.out"):
        array_id, index = log.name.split("_")[:2]
        nodes.add(job_field(f"{array_id}_{index}", "NodeList"))
    return nodes


def shards(directory: Path) -> list[tuple]:
    manifest = json.loads((directory / "manifest.json").read_text())
    return [(s["path"], s["split"], s["num_frames"], s["sha256"]) for s in manifest["shards"]]


def test_prep_array_over_two_nodes_gives_the_one_node_dataset(on_two_nodes, slurm_workdir):
    source = str(FIXTURES / "dft" / "alexandria-sample.xyz")  # 160 real DFT frames -> 4 chunks
    local, cluster = slurm_workdir / "prep-one-node", slurm_workdir / "prep-two-nodes"
    options = ["--chunk-frames", "40", "--shard-size", "50", "--no-progress"]
    cli("prep", source, "--out", str(local), *options)
    cli(
        "prep",
        source,
        "--out",
        str(cluster),
        *options,
        "--launcher",
        "slurm",
        "--cluster",
        "local-2node",
        "--wait",
    )
    assert shards(cluster) == shards(local) and len(shards(local)) >= 4
    assert array_nodes(slurm_workdir / "prep-two-nodes.slurm") == {"fnode1", "fnode2"}


def unit_results(out: Path) -> dict[str, dict]:
    """Each unit's result (OUT/units/TASK/KEY.json) without its timing and output path, by TASK/KEY."""
    results = {}
    for path in (out / "units").glob("*/*.json"):
        result = json.loads(path.read_text())
        del result["wall_seconds"], result["unit"]
        results[f"{path.parent.name}/{path.stem}"] = result
    return results


def test_eval_array_over_two_nodes_gives_the_one_node_results(
    on_two_nodes, trained_run, slurm_workdir
):
    _, run_dir = trained_run
    suite = slurm_workdir / "eval-two-nodes.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "two-nodes",
                "data_root": str(FIXTURES),
                "seeds": [0],
                "tasks": [
                    {"name": "eos", "kind": "dcdft_eos", "elements": ["Cu", "Al"]},
                    {"name": "frames", "kind": "zeroshot", "split": "val"},
                ],
            }
        )
    )
    local, cluster = slurm_workdir / "eval-one-node", slurm_workdir / "eval-two-nodes"
    common = ["eval", "--checkpoint", str(run_dir), "--suite", str(suite)]
    cli(*common, "--out", str(local))
    cli(*common, "--out", str(cluster), "--launcher", "slurm", "--cluster", "local-2node", "--wait")
    assert unit_results(cluster) == unit_results(local) and len(unit_results(local)) == 2
    assert array_nodes(cluster / "slurm") == {"fnode1", "fnode2"}
