"""`foundation data verify` catches a flipped byte, a truncated shard and a pickle record, naming shard and record,
and does not trust the manifest: atom counts and record counts are compared with the records themselves, records
and shard files the manifest leaves out are found, and shard paths that leave the dataset directory are refused."""

import json
import os
import pickle
import subprocess
import sys

import lmdb
import pytest

from foundation.data.dataset import open_dataset
from foundation.data.lmdb_store import record_key
from foundation.data.manifest import Manifest, encode_natoms
from foundation.data.verify import verify_dataset
from foundation.data.writer import write_dataset
from foundation.files import sha256_file

from .helpers import full_frame

CLI = [sys.executable, "-m", "foundation.cli.main"]


@pytest.fixture()
def dataset(tmp_path):
    frames = [full_frame(i, natoms=4) for i in range(30)]
    write_dataset(
        tmp_path,
        {"train": frames[:20], "val": frames[20:]},
        containers=("lmdb", "wds"),
        shard_size=8,
    )
    return tmp_path


def verify(path):
    return subprocess.run(CLI + ["data", "verify", str(path)], capture_output=True, text=True)


def problems(path) -> str:
    """verify_dataset's errors, one per line (the CLI prints the same lines; the tests above run the CLI)."""
    report = verify_dataset(path)
    assert not report.ok
    return "\n".join(report.errors)


def edit_shard_entry(dataset, relpath, **fields):
    """Change one shard's manifest entry (a stranger's or a careless manifest); sha256 and size follow the file."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    for shard in manifest["shards"]:
        if shard["path"] == relpath:
            if (dataset / relpath).is_file():
                shard.update(
                    sha256=sha256_file(dataset / relpath), size=(dataset / relpath).stat().st_size
                )
            shard.update(fields)
    (dataset / "manifest.json").write_text(json.dumps(manifest))


def list_fewer_frames(dataset, relpath, keep):
    """The manifest lists only the first `keep` frames of a shard, consistently (counts, atoms)."""
    edit_shard_entry(
        dataset, relpath, num_frames=keep, num_atoms=4 * keep, natoms=encode_natoms([4] * keep)
    )


def test_clean_dataset_verifies(dataset):
    result = verify(dataset)
    assert result.returncode == 0, result.stderr
    assert "OK: 10 shards, 60 records" in result.stdout


@pytest.mark.parametrize(
    "container,relpath", [("lmdb", "lmdb/train-00001.lmdb"), ("wds", "wds/val-00000.tar")]
)
def test_flipped_byte_is_caught(dataset, container, relpath):
    path = dataset / relpath
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    result = verify(dataset)
    assert result.returncode == 1
    assert f"{relpath}: checksum mismatch" in result.stderr


@pytest.mark.parametrize("relpath", ["lmdb/train-00002.lmdb", "wds/train-00000.tar"])
def test_truncated_shard_is_caught(dataset, relpath):
    path = dataset / relpath
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    result = verify(dataset)
    assert result.returncode == 1
    assert f"{relpath}: {path.stat().st_size} bytes, the manifest says" in result.stderr
    assert "the shard is truncated" in result.stderr
    assert (
        "corrupt or truncated" in result.stderr
    )  # and reading it on fails naming it (LMDB refused, tar cut short)


def test_pickle_record_is_caught_even_with_a_matching_checksum(dataset):
    """A stranger's shard with a pickle inside and a manifest updated to match: caught at decode, named."""
    relpath = "lmdb/train-00000.lmdb"
    env = lmdb.open(str(dataset / relpath), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        txn.put(record_key(3), pickle.dumps({"numbers": [1, 2]}))
    env.close()
    edit_shard_entry(dataset, relpath)
    result = verify(dataset)
    assert result.returncode == 1
    assert f"{relpath}: record 3: payload looks like a Python pickle" in result.stderr
    assert (
        "checksum mismatch" not in result.stderr and "bytes, the manifest says" not in result.stderr
    )


def test_a_manifest_understating_atoms_per_frame_is_caught(dataset):
    """Samplers plan batches from the manifest's atom counts: an understated count means oversized batches."""
    relpath = "lmdb/train-00001.lmdb"
    edit_shard_entry(dataset, relpath, num_atoms=8 * 2, natoms=encode_natoms([2] * 8))
    errors = problems(dataset)
    for record in range(8):
        assert f"{relpath}: record {record}: 4 atoms, the manifest says 2" in errors


@pytest.mark.parametrize("relpath", ["lmdb/train-00000.lmdb", "wds/train-00001.tar"])
def test_a_manifest_listing_fewer_frames_is_caught(dataset, relpath):
    list_fewer_frames(dataset, relpath, keep=5)
    errors = problems(dataset)
    assert (
        f"{relpath}: holds 8 records, the manifest lists 5; readers never see the records it leaves out"
        in errors
    )


def test_records_beyond_the_lmdb_meta_count_are_caught(dataset):
    """A record slipped into a shard (meta entry and manifest untouched): LMDB's own entry count betrays it."""
    relpath = "lmdb/val-00001.lmdb"  # 2 records
    env = lmdb.open(str(dataset / relpath), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        txn.put(record_key(2), txn.get(record_key(0)))
    env.close()
    edit_shard_entry(dataset, relpath)
    errors = problems(dataset)
    assert f"{relpath}: LMDB holds 3 records, its meta entry says 2" in errors
    assert f"{relpath}: holds 3 records, the manifest lists 2" in errors


def test_a_shard_file_the_manifest_does_not_list_is_caught(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["shards"] = [s for s in manifest["shards"] if s["path"] != "wds/val-00001.tar"]
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    errors = problems(dataset)
    assert "wds/val-00001.tar: shard file not listed in the manifest" in errors


@pytest.mark.parametrize("evil", ["../../../../../../../../etc/passwd", "/etc/passwd", "symlink"])
def test_shard_paths_leaving_the_dataset_directory_are_refused(dataset, evil):
    relpath = "wds/val-00000.tar"
    if evil == "symlink":  # the listed name is inside, the file it leads to is not
        (dataset / relpath).unlink()
        os.symlink("/etc/passwd", dataset / relpath)
        evil = relpath
    else:
        edit_shard_entry(dataset, relpath, path=evil)
    errors = problems(dataset)
    assert f"{evil}: the shard path leaves the dataset directory" in errors


def test_missing_shard_is_caught(dataset):
    (dataset / "wds/val-00001.tar").unlink()
    result = verify(dataset)
    assert result.returncode == 1 and "wds/val-00001.tar: shard file is missing" in result.stderr


def test_stats_prints_counts_and_elements(dataset):
    result = subprocess.run(CLI + ["data", "stats", str(dataset)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "train" in result.stdout and "20 frames" in result.stdout and "elements" in result.stdout


def test_manifest_round_trips(dataset):
    manifest = Manifest.load(dataset)
    assert manifest.splits == ["train", "val"]
    assert (
        manifest.num_frames("train") == 20
        and manifest.atoms_per_frame("wds", "val").tolist() == [4] * 10
    )


def test_a_version_1_manifest_without_shard_sizes_still_opens_and_verifies(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["manifest_version"] = 1
    for shard in manifest["shards"]:
        del shard["size"]
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    assert [s.size for s in Manifest.load(dataset).shards] == [None] * 10
    assert len(list(open_dataset(dataset, container="wds"))) == 30 and verify_dataset(dataset).ok
    manifest["manifest_version"] = 2  # from version 2 on, a size is required
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError, match="manifest.json: shard lmdb/train-00000.lmdb: no size in bytes"
    ):
        Manifest.load(dataset)


def test_no_temporary_files_left(dataset):
    leftovers = [p for p in dataset.rglob("*") if ".tmp" in p.name or ".build-" in p.name]
    assert leftovers == []
