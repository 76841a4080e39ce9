"""One writer per dataset directory, with real processes: a second `foundation prep` into the same --out is refused
naming the first, an array task cannot run a chunk that another process is running, a killed prep's lock is taken
over. prep_config.yaml is never missing from a complete set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from foundation.data_prep import pipeline
from foundation.data_prep.chunks import plan_chunks, run_chunk
from foundation.data_prep.pipeline import CONFIG_NAME, WORK_NAME, run_prep
from foundation.data.manifest import MANIFEST_NAME
from foundation.locking import LOCK_NAME, DirectoryLocked
from tests.conftest import FIXTURES

from .helpers import prep_config

REPO = Path(__file__).resolve().parents[2]
INPUTS = sorted(str(p) for p in (FIXTURES / "dft").glob("*.xyz"))
OPTIONS = ["--chunk-frames", "20", "--neighbour-sample", "1", "--no-progress"]


def _prep(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "foundation.cli.main", "prep", *INPUTS, "--out", str(out), *OPTIONS, *extra]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _wait_for(condition, what: str, process: subprocess.Popen, deadline: float = 300.0) -> None:
    """Poll until condition() holds (the deadline only keeps a broken run from hanging the suite)."""
    end = time.monotonic() + deadline
    while not condition():
        assert process.poll() is None, f"the prep ended before {what}"
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.005)


def test_a_second_prep_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(_prep(out), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(lambda: any((out / WORK_NAME).glob("chunk-*.lock")), "a chunk started", first)
        first.send_signal(signal.SIGSTOP)  # frozen while it holds the directory and one chunk
        second = subprocess.run(_prep(out), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert lines[-1].startswith(f"error: {out} is in use by pid {first.pid} on host ") and len(lines) == 1

        busy = next((out / WORK_NAME).glob("chunk-*.lock"))  # an array task of that very chunk is refused too
        task = next(t for t in plan_chunks(prep_config(INPUTS, out, chunk_frames=20, neighbour_sample=1.0),
                                           out / WORK_NAME) if busy.name == f"{t.directory.name}.lock")
        with pytest.raises(DirectoryLocked, match=f"chunk {task.index} of {out} is in use by pid {first.pid}"):
            run_chunk(task)
    finally:
        first.kill()  # kill -9: it leaves its lock files behind
        first.wait()
    assert (out / LOCK_NAME).exists()
    third = subprocess.run(_prep(out), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"taking over the stale lock of pid {first.pid}" in third.stderr and "no longer running" in third.stderr
    assert (out / MANIFEST_NAME).exists() and not (out / LOCK_NAME).exists()


def test_prep_config_is_written_before_the_manifest(tmp_path, monkeypatch):
    config = prep_config(INPUTS[:1], tmp_path / "out")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the merge is where the manifest is written
    monkeypatch.setattr(pipeline, "merge", killed)
    with pytest.raises(KeyboardInterrupt):
        run_prep(config)
    assert (tmp_path / "out" / CONFIG_NAME).exists() and not (tmp_path / "out" / MANIFEST_NAME).exists()
    monkeypatch.undo()
    run_prep(config)
    (tmp_path / "out" / CONFIG_NAME).unlink()  # a set written by an older version killed before its config
    again = run_prep(config)
    assert again.report is not None and (tmp_path / "out" / CONFIG_NAME).exists()
