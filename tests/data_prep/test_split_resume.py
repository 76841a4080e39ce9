"""Splits by structure_id hash are stable when data is added; a killed `foundation prep` resumes to the same
shards as an uninterrupted run (whatever the worker count)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from foundation.data_prep.dedup import first_occurrences, structure_key
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.split import assign_split

from foundation.data.dataset import open_dataset
from tests.conftest import FIXTURES

from .helpers import prep_config, read_records, shard_checksums

REPO = Path(__file__).resolve().parents[2]


def _head_frames(source: Path, target: Path, count: int) -> Path:
    lines, out, i = source.read_text().splitlines(keepends=True), [], 0
    for _ in range(count):
        n = int(lines[i])
        out.append("".join(lines[i : i + n + 2]))
        i += n + 2
    target.write_text("".join(out))
    return target


def _membership(directory) -> dict[str, tuple[str, str]]:
    return {
        f.frame_id: (split, f.structure_id)
        for split in ("train", "val", "test")
        for f in open_dataset(directory, split=split, container="lmdb")
    }


@pytest.mark.shared_data
def test_adding_frames_moves_no_old_frame(shared_data, tmp_path):
    teacher = (
        shared_data / "teacher" / "teacher-chgnet-part1.extxyz"
    )  # relaxations: many frames per structure
    small = _head_frames(teacher, tmp_path / "small.extxyz", 300)
    large = _head_frames(teacher, tmp_path / "large.extxyz", 900)
    ratios = {"train": 0.6, "val": 0.2, "test": 0.2}
    run_prep(prep_config([small], tmp_path / "a", split=ratios, frame_key="index"))
    before = _membership(tmp_path / "a")
    # same file name, more frames: the old frames keep their ids (FILE:INDEX)
    (tmp_path / "grown").mkdir()
    grown = large.rename(tmp_path / "grown" / "small.extxyz")
    run_prep(prep_config([grown], tmp_path / "b", split=ratios, frame_key="index"))
    after = _membership(tmp_path / "b")
    assert len(after) > len(before) > 200
    assert all(after[frame_id] == where for frame_id, where in before.items())
    for membership in (before, after):
        splits_of = {}
        for split, structure in membership.values():
            splits_of.setdefault(structure, set()).add(split)
        assert all(len(s) == 1 for s in splits_of.values())  # no structure_id in two splits
        assert len({s for s, _ in membership.values()}) == 3


def test_split_assignment_is_a_pure_function_of_the_id():
    ratios = {"train": 0.8, "val": 0.1, "test": 0.1}
    ids = [f"mp-{i}" for i in range(4000)]
    first = [assign_split(i, ratios) for i in ids]
    assert first == [assign_split(i, ratios) for i in ids]
    assert abs(first.count("train") / len(ids) - 0.8) < 0.03
    assert [assign_split(i, ratios, salt="x") for i in ids] != first


def test_dedup_keeps_the_first_of_identical_frames():
    frames = [
        r.frame for r in read_records(FIXTURES / "dft" / "mpf-alkali-TP-sample.xyz", "extxyz")
    ][:5]
    import numpy as np

    keys = np.frombuffer(
        b"".join(structure_key(f, 1e-5) for f in frames + frames[1:3]), np.uint8
    ).reshape(-1, 16)
    first, owner = first_occurrences(keys)
    assert first.tolist() == [True] * 5 + [False, False] and owner[5:].tolist() == [1, 2]
    moved = frames[0]
    moved.positions = moved.positions + 1e-3
    assert structure_key(moved, 1e-5) != structure_key(frames[1], 1e-5)


def _prep(inputs, out, *extra) -> list[str]:
    return [
        sys.executable,
        "-m",
        "foundation.cli.main",
        "prep",
        *map(str, inputs),
        "--out",
        str(out),
        "--chunk-frames",
        "40",
        "--shard-size",
        "100",
        "--container",
        "both",
        "--no-progress",
        *extra,
    ]


def test_kill_and_resume_gives_the_same_shards(tmp_path):
    # 327 real frames in four files and an OUTCAR: 10 chunks of at most 40 frames
    inputs = [*sorted((FIXTURES / "dft").glob("*.xyz")), FIXTURES / "vasp" / "outcar" / "OUTCAR_5"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    reference = tmp_path / "reference"
    first = subprocess.run(
        _prep(inputs, reference, "--workers", "2"), env=env, capture_output=True, text=True
    )
    assert first.returncode == 0, first.stderr[-3000:]

    out = tmp_path / "resumed"
    proc = subprocess.Popen(
        _prep(inputs, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    marker = out / "_work" / "chunk-00000.done"
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert marker.exists() and not (out / "manifest.json").exists(), (
        "the run finished before it could be killed"
    )
    done_before = len(list((out / "_work").glob("chunk-*.done")))

    rerun = subprocess.run(_prep(inputs, out), env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"({done_before} already done)" in rerun.stdout, rerun.stdout
    assert shard_checksums(out) == shard_checksums(reference)
    assert (out / "quarantine.jsonl").read_bytes() == (reference / "quarantine.jsonl").read_bytes()
