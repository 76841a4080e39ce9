"""Streamed shards are verified and transfers are bounded (data/transfer.py), against real servers on 127.0.0.1:
another dataset's tar under a shard's name, two shards swapped, a server that never answers, one that stalls
after its headers and 8 KB."""

from __future__ import annotations

import shutil

import pytest

from foundation.data.dataset import open_dataset
from foundation.data.manifest import Manifest
from foundation.data.remote import RemoteError, TransferPolicy, read_bytes
from foundation.data.shard_files import ShardError
from foundation.data.writer import write_dataset
from tests.http_server import serve, stalling

from .helpers import full_frame

FAST = TransferPolicy(stall_timeout=0.3, retries=1, backoff=0.01)


def _dataset(directory, first: int, natoms: int = 4):
    frames = [full_frame(first + i, natoms=natoms) for i in range(24)]
    write_dataset(directory, {"train": frames}, containers=("wds",), shard_size=8)
    return directory


def _shards(directory) -> list[str]:
    return [s.path for s in Manifest.load(directory).shards_of("wds")]


def test_another_datasets_tar_under_the_right_name_is_refused(tmp_path):
    served = _dataset(tmp_path / "served" / "ds", 0)
    other = _dataset(tmp_path / "other", 100)  # same shapes: the same size, other frames
    shard = _shards(served)[1]
    assert (other / shard).stat().st_size == (served / shard).stat().st_size
    shutil.copy(other / shard, served / shard)
    with serve(tmp_path / "served") as url:
        frames = open_dataset(f"{url}/ds", transfer=FAST)
        with pytest.raises(
            ShardError, match=rf"{url}/ds/{shard}: .*shard {shard}: sha256 .*refused"
        ):
            frames[8]  # the first frame of the replaced shard: no frame of it is given out
        assert frames[0].frame_id == full_frame(0, natoms=4).frame_id


def test_a_tar_of_another_size_is_refused_before_its_first_record(tmp_path):
    served = _dataset(tmp_path / "served" / "ds", 0)
    other = _dataset(tmp_path / "other", 100, natoms=64)
    shard = _shards(served)[0]
    shutil.copy(other / shard, served / shard)
    with serve(tmp_path / "served") as url:
        with pytest.raises(
            ShardError, match=rf"{url}/ds/{shard}: .*announces \d+ bytes, the manifest lists"
        ):
            list(open_dataset(f"{url}/ds", transfer=FAST))


def test_two_swapped_shards_are_refused(tmp_path):
    served = _dataset(tmp_path / "ds", 0)
    first, second = (served / s for s in _shards(served)[:2])
    data = first.read_bytes()
    first.write_bytes(second.read_bytes())
    second.write_bytes(data)
    with serve(tmp_path) as url:
        with pytest.raises(ShardError, match=rf"{url}/ds/{_shards(served)[0]}: .*sha256"):
            list(open_dataset(f"{url}/ds", transfer=FAST))


def test_a_server_that_never_answers_is_an_error_naming_the_url(caplog):
    with stalling(b"", sent=None) as url:
        with pytest.raises(
            RemoteError, match=rf"{url}/ds/manifest.json: no byte for 0.3 s.*2 attempts"
        ):
            read_bytes(f"{url}/ds/manifest.json", FAST)
    assert any("retry 1 of 1" in r.message for r in caplog.records)


def test_a_transfer_that_stalls_after_8_kb_is_an_error_naming_the_url(tmp_path):
    served = _dataset(tmp_path / "ds", 0)
    shard = _shards(served)[0]
    body = (served / shard).read_bytes()
    with serve(tmp_path) as manifest_url, stalling(body, sent=8192) as url:
        frames = open_dataset(f"{manifest_url}/ds", shard_url_base=url, transfer=FAST)
        with pytest.raises(ShardError, match=rf"{url}/{shard}: record 0: no byte for 0.3 s"):
            list(frames)


def test_a_bad_policy_is_refused():
    with pytest.raises(ValueError, match="stall_timeout must be > 0"):
        TransferPolicy(stall_timeout=0)
