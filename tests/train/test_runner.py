"""One training run per run directory, with real processes: while a two-rank torchrun run holds RUN_DIR, a second
(also two ranks) is refused naming the owner (rank 0), one line per process; once that run is killed, a new one takes the lock
over with a message and trains. A full disk ends the run with one line naming the device and the checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from foundation.locking import LOCK_NAME
from tests.train.helpers import tiny_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return env


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (the torchrun launcher and its ranks)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                found += [int(entry.name)] + _descendants(int(entry.name))
        except OSError:
            pass
    return found


def _train(config: Path, run_dir: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "foundation.cli.main",
        "train",
        "--config",
        str(config),
        f"run_dir={run_dir}",
        *extra,
    ]


def test_a_second_run_on_a_run_dir_is_refused_and_a_killed_runs_lock_taken_over(
    tmp_path, train_data
):
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            tiny_config(
                train_data, tmp_path / "unused", train={"max_steps": 2, "checkpoint_every": 1000}
            )
        )
    )
    run_dir = tmp_path / "run"
    lock = run_dir / LOCK_NAME
    owner = None
    first = subprocess.Popen(
        _train(
            config,
            run_dir,
            "train.max_steps=100000",
            "--launcher",
            "torchrun",
            "--nproc-per-node",
            "2",
        ),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        end = time.monotonic() + 600  # only keeps a broken run from hanging the suite
        while not (lock.exists() and lock.read_text().strip()):
            assert first.poll() is None and time.monotonic() < end, (
                "the first run never took its lock"
            )
            time.sleep(0.01)
        owner = json.loads(lock.read_text())["pid"]  # rank 0, a child of the torchrun launcher
        assert owner != first.pid
        os.kill(owner, signal.SIGSTOP)
        second = subprocess.run(
            _train(config, run_dir, "--launcher", "torchrun", "--nproc-per-node", "2"),
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert second.returncode != 0
        lines = (
            second.stderr.strip().splitlines()
        )  # a line per rank that had its say, then the launcher's
        assert all(line.startswith("error: ") for line in lines), second.stderr
        assert (
            lines[0].startswith(f"error: {run_dir}")
            and f"error: {run_dir} is in use by pid {owner}" in second.stderr
        )
        assert lines[-1].startswith("error: training under torchrun failed")
    finally:  # every rank dies without a word (a SIGTERM would make rank 0 checkpoint and release the lock)
        for pid in _descendants(first.pid):
            os.kill(pid, signal.SIGKILL)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    third = subprocess.run(
        _train(config, run_dir), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert third.returncode == 0, third.stderr[-3000:]
    assert f"taking over the stale lock of pid {owner}" in third.stderr
    assert (run_dir / "last").is_dir() and not lock.exists()


def test_a_full_disk_while_training_is_one_line_naming_device_and_file(tmp_path, train_data, tmpfs):
    # 64 KiB: the config, logs and TensorBoard fit, the first checkpoint does not (torch.save on its own reports it
    # as "basic_ios::clear: iostream error" or "unexpected pos", with a traceback)
    mount = tmpfs(tmp_path / "small", "size=64k")
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(tiny_config(train_data, mount / "run", train={"max_steps": 2}))
    )
    done = subprocess.run(
        _train(config, mount / "run"),
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert (
        last
        == f"error: no space left on tmpfs (mounted on {mount}) writing {mount / 'run/checkpoints'}/.tmp-step-00000002"
    )
    assert "Traceback" not in done.stderr and "iostream" not in done.stderr
