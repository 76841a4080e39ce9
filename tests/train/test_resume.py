"""Exact resume: a run killed with SIGKILL at a random moment and resumed ends with bit-identical weights to an
uninterrupted run (CPU, fp32), in one process and in two (torchrun, gloo). Two processes with one micro-batch
each also match one process accumulating the same two micro-batches (losses within float tolerance)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.train.helpers import tiny_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
MAX_STEPS = 10


def _command(config: Path, nproc: int, run_dir: Path) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "foundation.cli.main",
        "train",
        "--config",
        str(config),
        f"run_dir={run_dir}",
    ]
    return cmd + (["--launcher", "torchrun", "--nproc-per-node", str(nproc)] if nproc > 1 else [])


def _env(threads: int = 1) -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(OMP_NUM_THREADS=str(threads), PYTHONPATH=str(REPO))
    return env


def _run(config: Path, nproc: int, run_dir: Path, threads: int = 1) -> None:
    done = subprocess.run(
        _command(config, nproc, run_dir),
        cwd=REPO,
        env=_env(threads),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]


def _run_and_kill(
    config: Path, nproc: int, run_dir: Path, rng: random.Random, threads: int = 1
) -> int:
    """Start a run, SIGKILL its whole process group (launcher and ranks) as soon as it has logged a random
    step past its first checkpoint; return the step of the newest complete checkpoint it left."""
    proc = subprocess.Popen(
        _command(config, nproc, run_dir),
        cwd=REPO,
        env=_env(threads),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    target = rng.randint(3, MAX_STEPS - 3)
    latest, metrics = run_dir / "checkpoints" / "latest", run_dir / "metrics.jsonl"
    try:
        while not (latest.exists() and metrics.exists() and _logged_step(metrics) >= target):
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    step = int(latest.read_text().strip().split("-")[1])
    assert step < MAX_STEPS, "the run finished before it was killed"
    return step


def _logged_step(metrics: Path) -> int:
    lines = metrics.read_text().splitlines()
    return max((json.loads(line)["step"] for line in lines if line.endswith("}")), default=0)


def _weights(run_dir: Path) -> dict:
    return load_file(str(run_dir / "last" / "model.safetensors"))


def _config(tmp: Path, data: Path, **engine) -> Path:
    cfg = tiny_config(
        data,
        tmp / "unused",
        engine={"ema_decay": 0.0, **engine},  # EMA 0: exports = the weights
        train={
            "max_steps": MAX_STEPS,
            "checkpoint_every": 2,
            "val_every": 4,
            "log_every": 1,
            "keep_checkpoints": 2,
        },
    )
    path = tmp / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "nproc, zero_stage", [(1, 0), (2, 2)], ids=["one-process", "two-processes"]
)
def test_sigkill_and_resume_is_bit_exact(tmp_path, train_data, nproc, zero_stage):
    config = _config(tmp_path, train_data, zero_stage=zero_stage, grad_accum=1)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    _run(config, nproc, reference)
    killed_at = _run_and_kill(config, nproc, resumed, random.Random())
    _run(config, nproc, resumed)  # resumes automatically from the newest complete checkpoint
    log = (resumed / "train.log").read_text()
    assert f"resumed from {resumed / 'checkpoints'}" in log and f"step {killed_at}" in log
    # metrics.jsonl of the resumed run reads as one uninterrupted run with the very same losses
    assert _train_losses(resumed) == _train_losses(reference)
    ref, res = _weights(reference), _weights(resumed)
    assert ref.keys() == res.keys()
    for name in ref:
        assert ref[name].equal(res[name]), (
            f"{name} differs after kill -9 at step {killed_at} and resume"
        )
    if nproc == 2:
        _compare_with_one_process_accumulating(tmp_path, train_data, reference)


def test_with_several_threads_resume_matches_to_within_float_reordering(tmp_path, train_data):
    """Bit-exact resume is promised for one thread per process; a run killed and resumed with several threads
    (intra-op reductions split differently) matches the uninterrupted one-thread run to float tolerance."""
    config = _config(tmp_path, train_data, zero_stage=0, grad_accum=1)
    reference, resumed = tmp_path / "reference", tmp_path / "resumed"
    _run(config, 1, reference, threads=1)
    killed_at = _run_and_kill(config, 1, resumed, random.Random(), threads=2)
    _run(config, 1, resumed, threads=2)
    assert f"step {killed_at}" in (resumed / "train.log").read_text()
    reference_losses, resumed_losses = _train_losses(reference), _train_losses(resumed)
    assert (
        [s for s, _ in resumed_losses]
        == [s for s, _ in reference_losses]
        == list(range(1, MAX_STEPS + 1))
    )
    for (step, a), (_, b) in zip(reference_losses, resumed_losses):
        assert b == pytest.approx(a, rel=1e-4, abs=1e-7), (
            f"step {step}: one thread {a}, resumed on two threads {b}"
        )
    ref, res = _weights(reference), _weights(resumed)
    for name in ref:
        torch.testing.assert_close(
            res[name], ref[name], rtol=1e-4, atol=1e-6, msg=lambda m: f"{name}: {m}"
        )


def _train_losses(run_dir: Path) -> list[tuple[int, float]]:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(e["step"], e["loss"]) for e in events if e["kind"] == "train"]


def _compare_with_one_process_accumulating(tmp: Path, data: Path, two_proc_run: Path) -> None:
    """The same global batches (2 micro-batches per step): 2 ranks x 1 vs 1 rank x 2 accumulated."""
    (tmp / "one").mkdir()
    config = _config(tmp / "one", data, zero_stage=0, grad_accum=2)
    one = tmp / "one" / "run"
    _run(config, 1, one)
    two_losses, one_losses = _train_losses(two_proc_run), _train_losses(one)
    assert [s for s, _ in two_losses] == [s for s, _ in one_losses] == list(range(1, MAX_STEPS + 1))
    for (step, a), (_, b) in zip(two_losses, one_losses):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-7), (
            f"step {step}: two processes {a}, one process {b}"
        )
