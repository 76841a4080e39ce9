"""One writer per dataset directory, with real processes: a second `foundation prep` into the same --out is refused
naming the first, an array task cannot run a chunk that another process is running, a killed prep's lock is taken
over, and killing a prep with --workers ends its workers (also one killed while they start). prep_config.yaml is
never missing from a complete set."""

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

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
INPUTS = sorted(str(p) for p in (FIXTURES / "dft").glob("*.xyz"))
OPTIONS = ["--chunk-frames", "20", "--neighbour-sample", "1", "--no-progress"]


def _prep(out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "foundation.cli.main",
        "prep",
        *INPUTS,
        "--out",
        str(out),
        *OPTIONS,
        *extra,
    ]


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def _wait_for(condition, what: str, process: subprocess.Popen, deadline: float = 300.0) -> None:
    """Poll until condition() holds (the deadline only keeps a broken run from hanging the suite)."""
    end = time.monotonic() + deadline
    while not condition():
        assert process.poll() is None, f"the prep ended before {what}"
        assert time.monotonic() < end, f"gave up waiting for {what}"
        time.sleep(0.005)


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_second_prep_is_refused_and_a_killed_ones_lock_is_taken_over(tmp_path):
    out = tmp_path / "out"
    first = subprocess.Popen(
        _prep(out), cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        # a chunk's lock file exists a moment before it names its owner: wait for the name, then freeze
        _wait_for(lambda: first.pid in _chunk_owners(out), "a chunk started", first)
        first.send_signal(signal.SIGSTOP)  # frozen while it holds the directory and one chunk
        second = subprocess.run(
            _prep(out), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600
        )
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert (
            lines[-1].startswith(f"error: {out} is in use by pid {first.pid} on host ")
            and len(lines) == 1
        )

        busy = next(
            (out / WORK_NAME).glob("chunk-*.lock")
        )  # an array task of that very chunk is refused too
        task = next(
            t
            for t in plan_chunks(
                prep_config(INPUTS, out, chunk_frames=20, neighbour_sample=1.0), out / WORK_NAME
            )
            if busy.name == f"{t.directory.name}.lock"
        )
        with pytest.raises(
            DirectoryLocked, match=f"chunk {task.index} of {out} is in use by pid {first.pid}"
        ):
            run_chunk(task)
    finally:
        first.kill()  # kill -9: it leaves its lock files behind
        first.wait()
    assert (out / LOCK_NAME).exists()
    third = subprocess.run(
        _prep(out), cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600
    )
    assert third.returncode == 0, third.stderr[-2000:]
    assert (
        f"taking over the stale lock of pid {first.pid}" in third.stderr
        and "no longer running" in third.stderr
    )
    assert (out / MANIFEST_NAME).exists() and not (out / LOCK_NAME).exists()


def _chunk_owners(out: Path) -> dict[int, Path]:
    """pid -> the completion marker of the chunk whose lock that process holds."""
    owners = {}
    for lock in (out / WORK_NAME).glob("chunk-*.lock"):
        try:
            owners[int(lock.read_text().split('"pid": ')[1].split(",")[0])] = lock.with_suffix(
                ".done"
            )
        except (OSError, IndexError, ValueError):
            pass
    return owners


def _resume_and_wait_for_exit(workers) -> None:
    """Let frozen workers run again and give them a while to end (the deadline only bounds a broken run)."""
    for pid in workers:
        os.kill(pid, signal.SIGCONT)
    end = time.monotonic() + 120
    while any(_alive(pid) for pid in workers) and time.monotonic() < end:
        time.sleep(0.05)


def test_killing_prep_ends_its_workers_mid_chunk(tmp_path):
    out = tmp_path / "out"
    parent = subprocess.Popen(
        _prep(out, "--workers", "2"),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers: dict[int, Path] = {}
    try:

        def freeze_the_ones_inside_chunks() -> bool:
            """Each worker is frozen as soon as it is seen inside a chunk, so an orphan would have a chunk left to
            finish (and a frozen one keeps the prep from ending while the other is caught)."""
            children = _children(parent.pid)
            for pid, marker in _chunk_owners(out).items():
                if pid in children and pid not in workers:
                    os.kill(pid, signal.SIGSTOP)
                    workers[pid] = marker
            return len(workers) == 2

        _wait_for(freeze_the_ones_inside_chunks, "two workers were inside chunks", parent)
    finally:
        parent.kill()
        parent.wait()
    _resume_and_wait_for_exit(workers)
    assert not any(_alive(pid) for pid in workers), (
        f"workers {list(workers)} outlived their killed parent"
    )
    assert not any(marker.exists() for marker in workers.values()), (
        "a worker went on to finish its chunk"
    )


def _starting_workers(parent: int) -> list[int]:
    """Children of `parent` that are spawned multiprocessing workers (still importing, or running)."""
    found = []
    for pid in _children(parent):
        try:
            if b"spawn_main" in (Path("/proc") / str(pid) / "cmdline").read_bytes():
                found.append(pid)
        except OSError:
            pass
    return found


def test_a_worker_whose_parent_dies_while_it_starts_does_no_work(tmp_path):
    out = tmp_path / "out"
    parent = subprocess.Popen(
        _prep(out, "--workers", "2"),
        cwd=REPO,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:  # caught while importing, before it could ask the kernel to end it with its parent
        _wait_for(lambda: _starting_workers(parent.pid), "a worker process started", parent)
        workers = _starting_workers(parent.pid)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
    finally:
        parent.kill()
        parent.wait()
    _resume_and_wait_for_exit(workers)
    assert not any(_alive(pid) for pid in workers), (
        f"workers {workers} outlived their killed parent"
    )
    assert not list((out / WORK_NAME).glob("chunk-*.done")), "an orphaned worker ran a chunk"


def test_prep_config_is_written_before_the_manifest(tmp_path, monkeypatch):
    config = prep_config(INPUTS[:1], tmp_path / "out")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # the merge is where the manifest is written

    monkeypatch.setattr(pipeline, "merge", killed)
    with pytest.raises(KeyboardInterrupt):
        run_prep(config)
    assert (tmp_path / "out" / CONFIG_NAME).exists() and not (
        tmp_path / "out" / MANIFEST_NAME
    ).exists()
    monkeypatch.undo()
    run_prep(config)
    (
        tmp_path / "out" / CONFIG_NAME
    ).unlink()  # a set written by an older version killed before its config
    again = run_prep(config)
    assert again.report is not None and (tmp_path / "out" / CONFIG_NAME).exists()
