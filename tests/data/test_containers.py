"""LMDB and WebDataset shards hold the same records, bit for bit; real frames go through both."""

import os
import pickle

import numpy as np
import pytest
import webdataset

from foundation.data.codec import decode_frame
from foundation.data.dataset import open_dataset
from foundation.data.lmdb_store import LmdbShard, write_lmdb_shard
from foundation.data.wds_store import iter_wds_shard, shards_for_worker, write_wds_shard
from foundation.data.writer import write_dataset

from .helpers import full_frame, minimal_frame, real_frames


@pytest.fixture(scope="module")
def mixed_frames():
    return [full_frame(i, natoms=1 + i % 7) for i in range(20)] + [
        minimal_frame(i) for i in range(3)
    ]


def test_every_field_round_trips_through_both_containers(tmp_path, mixed_frames):
    write_lmdb_shard(tmp_path / "a.lmdb", mixed_frames)
    write_wds_shard(tmp_path / "a.tar", mixed_frames)
    shard = LmdbShard(tmp_path / "a.lmdb")
    assert len(shard) == len(mixed_frames)
    from_lmdb = [shard[i] for i in range(len(shard))]
    from_wds = list(iter_wds_shard(tmp_path / "a.tar"))
    for original, a, b in zip(mixed_frames, from_lmdb, from_wds, strict=True):
        assert a.same_as(original) and b.same_as(original)


def test_lmdb_reader_opens_read_only_without_lock_file(tmp_path, mixed_frames):
    write_lmdb_shard(tmp_path / "a.lmdb", mixed_frames)
    os.chmod(tmp_path / "a.lmdb", 0o444)
    assert LmdbShard(tmp_path / "a.lmdb")[3].same_as(mixed_frames[3])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.lmdb"
    ]  # no -lock file, no scratch left behind


def test_lmdb_map_grows_beyond_initial_size(tmp_path):
    big = [
        full_frame(i, natoms=20_000) for i in range(2)
    ]  # ~2.4 MB each... times enough to pass 64 MiB
    big = big * 20
    write_lmdb_shard(tmp_path / "big.lmdb", big)
    assert LmdbShard(tmp_path / "big.lmdb")[39].same_as(big[39])


def test_lmdb_shard_reopens_after_fork(tmp_path, mixed_frames):
    write_lmdb_shard(tmp_path / "a.lmdb", mixed_frames)
    shard = LmdbShard(tmp_path / "a.lmdb")
    shard[0]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must open its own environment, not reuse the parent's
        from foundation.data.lmdb_store import _OPEN

        ok = (
            shard[5].same_as(mixed_frames[5])
            and _OPEN[os.path.realpath(shard.path)][0] == os.getpid()
        )
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"


def test_writes_are_deterministic(tmp_path, mixed_frames):
    for name in ("x", "y"):
        write_lmdb_shard(tmp_path / f"{name}.lmdb", mixed_frames)
        write_wds_shard(tmp_path / f"{name}.tar", mixed_frames)
    assert (tmp_path / "x.lmdb").read_bytes() == (tmp_path / "y.lmdb").read_bytes()
    assert (tmp_path / "x.tar").read_bytes() == (tmp_path / "y.tar").read_bytes()


def test_webdataset_library_reads_our_shards(tmp_path, mixed_frames):
    write_wds_shard(tmp_path / "a.tar", mixed_frames)
    samples = list(
        webdataset.WebDataset(str(tmp_path / "a.tar"), shardshuffle=False, empty_check=False)
    )
    assert len(samples) == len(mixed_frames)
    for sample, original in zip(samples, mixed_frames):
        assert decode_frame(sample["frame"]).same_as(original)


def test_shards_split_across_ranks_and_workers_without_duplicates():
    shards = [f"s{i}" for i in range(13)]
    for epoch in range(3):
        dealt = [
            shards_for_worker(
                shards,
                rank=r,
                world_size=2,
                worker=w,
                num_workers=3,
                epoch=epoch,
                seed=7,
                shuffle=True,
            )
            for r in range(2)
            for w in range(3)
        ]
        flat = [s for part in dealt for s in part]
        assert sorted(flat) == sorted(shards)
    orders = {
        tuple(
            shards_for_worker(
                shards, rank=0, world_size=1, worker=0, num_workers=1, epoch=e, seed=7, shuffle=True
            )
        )
        for e in range(4)
    }
    assert len(orders) > 1  # shard order reshuffles each epoch


def test_real_frames_identical_through_lmdb_and_webdataset(tmp_path):
    frames = real_frames(per_file=40)
    train, val = frames[::2], frames[1::2]
    manifest = write_dataset(
        tmp_path, {"train": train, "val": val}, containers=("lmdb", "wds"), shard_size=17
    )
    assert manifest.containers == ["lmdb", "wds"]
    for split, originals in (("train", train), ("val", val)):
        lmdb_view = open_dataset(tmp_path, split=split, container="lmdb")
        wds_view = open_dataset(tmp_path, split=split, container="wds")
        assert len(lmdb_view) == len(wds_view) == len(originals)
        np.testing.assert_array_equal(lmdb_view.natoms, [f.natoms for f in originals])
        for original, a, b in zip(originals, lmdb_view, wds_view, strict=True):
            assert a.same_as(original) and b.same_as(original)
        assert wds_view[len(originals) - 1].same_as(originals[-1])
    everything = open_dataset(tmp_path)
    assert len(everything) == len(frames) and everything[-1].frame_id == val[-1].frame_id
    with pytest.raises(KeyError, match="no split 'test'"):
        open_dataset(tmp_path, split="test")


def test_a_dataset_sent_to_loader_workers_leaves_its_cached_shard_behind(tmp_path, mixed_frames):
    """Loader workers get the dataset pickled; the parent's cached WebDataset shard stays in the parent."""
    write_dataset(tmp_path, {"train": mixed_frames}, containers=("wds",), shard_size=10)
    dataset = open_dataset(tmp_path, split="train", container="wds")
    assert dataset[3].same_as(mixed_frames[3]) and dataset._wds_cache is not None
    copy = pickle.loads(pickle.dumps(dataset))
    assert copy._wds_cache is None and dataset._wds_cache is not None
    assert all(a.same_as(b) for a, b in zip(copy, mixed_frames, strict=True))
