"""What the Slurm tests check in a run directory and ask the scheduler: weights, losses, checkpoints, job fields,
and where each rank ran."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from foundation.train.checkpoint import latest_checkpoint

PLACEMENT = re.compile(
    r"rank (\d+) of (\d+) \(node (\d+), local rank (\d+)\) on host (\S+) \((\S+)\); "
    r"rendezvous (\S+):(\d+) \((\S+)\)"
)


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "last" / "model.safetensors")


def assert_same_weights(run_dir: Path, reference: Path, exact: bool = False) -> None:
    """The final weights of two runs agree to float reordering (rtol 1e-6, atol 1e-7), or bit for bit."""
    got, want = weights(run_dir), weights(reference)
    assert got.keys() == want.keys()
    for key in want:
        if exact:
            assert torch.equal(got[key], want[key]), f"{key} differs"
        else:
            torch.testing.assert_close(
                got[key], want[key], rtol=1e-6, atol=1e-7, msg=f"{key} differs"
            )


def train_losses(run_dir: Path) -> dict[int, float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {e["step"]: e["loss"] for e in map(json.loads, lines) if e["kind"] == "train"}


def wait_for_checkpoint(run_dir: Path, step: int, job, deadline_s: float = 600) -> None:
    """Block until a complete checkpoint at `step` or later exists (a guard against hangs, not a timing check)."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        latest = latest_checkpoint(run_dir)
        if latest is not None and int(latest.name.split("-")[1]) >= step:
            return
        assert not job.done(), f"job {job.job_id} ended before step {step}: {job.stderr()}"
        time.sleep(0.1)
    raise AssertionError(f"no checkpoint at step {step} in {run_dir} after {deadline_s} s")


def wait_for_final_state(job_id: str, deadline_s: float = 120) -> None:
    end = time.monotonic() + deadline_s
    while job_field(job_id, "JobState") in ("RUNNING", "COMPLETING", "PENDING", "REQUEUED"):
        assert time.monotonic() < end, f"job {job_id} still {job_field(job_id, 'JobState')}"
        time.sleep(0.2)


def job_field(job_id: str, name: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", str(job_id)], capture_output=True, text=True
    ).stdout
    fields = dict(part.split("=", 1) for part in out.split() if "=" in part)
    return fields.get(name, "")


def placements(run_dir: Path, job_id: str) -> dict[int, list[dict[str, str]]]:
    """Per rank, every start of it in the job (a requeued job appends to the same log): host, address, rendezvous
    (foundation.slurm.dist_env.placement's line)."""
    found: dict[int, list[dict[str, str]]] = {}
    for log in sorted((run_dir / "slurm").glob(f"{job_id}_*_log.err")):
        for match in PLACEMENT.finditer(log.read_text()):
            rank, world, node, local, host, addr, master, port, master_addr = match.groups()
            found.setdefault(int(rank), []).append(
                {
                    "node": node,
                    "host": host,
                    "addr": addr,
                    "master": master,
                    "master_addr": master_addr,
                }
            )
    return found
