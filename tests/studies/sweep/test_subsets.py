"""Nested training subsets by structure_id: supersets of each other, whole structures, val untouched."""

from __future__ import annotations

import numpy as np
import pytest
from foundation.studies.sweep.subsets import nested_selection, structure_order, write_nested_subsets

from foundation.data.dataset import open_dataset
from foundation.data.manifest import Manifest
from foundation.data.writer import write_dataset
from tests.data.helpers import full_frame


def test_selection_is_nested_and_keeps_structures_whole():
    rng = np.random.default_rng(0)
    ids = [f"s{k}" for k in rng.integers(0, 40, 300)]  # ~7 frames per structure, shuffled
    sel = nested_selection(ids, [20, 80, 200, 300], seed=3)
    for small, large in ((20, 80), (80, 200), (200, 300)):
        assert set(sel[small]) < set(sel[large])
    for size, index in sel.items():
        assert len(index) >= size
        chosen = {ids[i] for i in index}
        assert all(
            ids[i] not in chosen for i in set(range(300)) - set(index)
        )  # no structure cut in two
        # the smallest prefix: dropping the last structure in the order would fall below the target
        last = [s for s in structure_order(ids, 3) if s in chosen][-1]
        assert len(index) - ids.count(last) < size
    assert len(sel[300]) == 300
    assert (
        nested_selection(ids, [80], seed=4)[80].tolist() != sel[80].tolist()
    )  # the seed changes the order


def test_selection_rejects_sizes_beyond_the_split():
    with pytest.raises(ValueError, match="outside 1..3"):
        nested_selection(["a", "b", "c"], [4])


def test_written_subsets_are_datasets_with_the_full_val_split(tmp_path):
    frames = [
        full_frame(seed=i) for i in range(40)
    ]  # structure_id = struct-{i // 2}: two frames each
    write_dataset(
        tmp_path / "src",
        {"train": frames[:30], "val": frames[30:]},
        element_references={"H": -1.0},
        statistics={"energy_std": 2.0},
    )
    subsets = write_nested_subsets(
        tmp_path / "src", tmp_path / "subsets", [5, 12], seed=0, progress=False
    )
    assert [s.target for s in subsets] == [5, 12]
    small, large = (open_dataset(s.path, split="train") for s in subsets)
    assert {f.frame_id for f in small} < {f.frame_id for f in large}
    assert [s.frames for s in subsets] == [len(small), len(large)] == [6, 12]
    val = open_dataset(subsets[0].path, split="val")
    assert [f.frame_id for f in val] == [f.frame_id for f in frames[30:]]
    assert all(f.same_as(g) for f, g in zip(val, frames[30:]))
    manifest = Manifest.load(subsets[1].path)
    assert manifest.element_references == {"H": -1.0} and manifest.extra["subset"]["frames"] == 12
    # a second call reuses what is there (same provenance), a changed seed rewrites it
    before = (tmp_path / "subsets" / "D5" / "manifest.json").stat().st_mtime_ns
    write_nested_subsets(tmp_path / "src", tmp_path / "subsets", [5], seed=0, progress=False)
    assert (tmp_path / "subsets" / "D5" / "manifest.json").stat().st_mtime_ns == before
    write_nested_subsets(tmp_path / "src", tmp_path / "subsets", [5], seed=1, progress=False)
    assert Manifest.load(tmp_path / "subsets" / "D5").extra["subset"]["seed"] == 1
