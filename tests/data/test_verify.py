"""`foundation data verify` catches a flipped byte, a truncated shard and a pickle record, naming shard and record."""

import json
import pickle
import subprocess
import sys

import lmdb
import pytest

from foundation.data.lmdb_store import record_key
from foundation.data.manifest import Manifest
from foundation.data.writer import write_dataset
from foundation.files import sha256_file

from .helpers import full_frame

CLI = [sys.executable, "-m", "foundation.cli.main"]


@pytest.fixture()
def dataset(tmp_path):
    frames = [full_frame(i, natoms=4) for i in range(30)]
    write_dataset(tmp_path, {"train": frames[:20], "val": frames[20:]}, containers=("lmdb", "wds"), shard_size=8)
    return tmp_path


def verify(path):
    return subprocess.run(CLI + ["data", "verify", str(path)], capture_output=True, text=True)


def test_clean_dataset_verifies(dataset):
    result = verify(dataset)
    assert result.returncode == 0, result.stderr
    assert "OK: 10 shards, 60 records" in result.stdout


@pytest.mark.parametrize("container,relpath", [("lmdb", "lmdb/train-00001.lmdb"), ("wds", "wds/val-00000.tar")])
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
    assert relpath in result.stderr and "corrupt or truncated" in result.stderr


def test_pickle_record_is_caught_even_with_a_matching_checksum(dataset):
    """A stranger's shard with a pickle inside and a manifest updated to match: caught at decode, named."""
    relpath = "lmdb/train-00000.lmdb"
    env = lmdb.open(str(dataset / relpath), subdir=False, lock=False)
    with env.begin(write=True) as txn:
        txn.put(record_key(3), pickle.dumps({"numbers": [1, 2]}))
    env.close()
    manifest = json.loads((dataset / "manifest.json").read_text())
    for shard in manifest["shards"]:
        if shard["path"] == relpath:
            shard["sha256"] = sha256_file(dataset / relpath)
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    result = verify(dataset)
    assert result.returncode == 1
    assert f"{relpath}: record 3: payload looks like a Python pickle" in result.stderr


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
    assert manifest.num_frames("train") == 20 and manifest.atoms_per_frame("wds", "val").tolist() == [4] * 10


def test_no_temporary_files_left(dataset):
    leftovers = [p for p in dataset.rglob("*") if ".tmp" in p.name or ".build-" in p.name]
    assert leftovers == []
