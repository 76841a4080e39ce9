"""WebDataset shards streamed from URLs: a real HTTP server on 127.0.0.1 (started and stopped by each test) and
pipe: commands granted on the command line give exactly the local records; a missing shard, a cut-off response and a
flipped bit are errors naming the shard's URL (and the record)."""

from __future__ import annotations

import shutil

import pytest

from foundation.data.codec import RecordDecodeError, encode_frame
from foundation.data.dataset import open_dataset
from foundation.data.manifest import Manifest
from foundation.data.remote import (
    TransferPolicy,
    UnsafeLocation,
    grant_command_line,
    is_url,
    join,
)
from foundation.data.shard_files import ShardError
from foundation.data.writer import write_dataset
from tests.http_server import serve

from .helpers import full_frame

FRAMES = [full_frame(i, natoms=4) for i in range(24)]


@pytest.fixture()
def dataset(tmp_path):
    """train: 3 shards of 8 in both containers."""
    write_dataset(tmp_path / "ds", {"train": FRAMES}, containers=("lmdb", "wds"), shard_size=8)
    return tmp_path / "ds"


def _records(frames) -> list[bytes]:
    return [encode_frame(f) for f in frames]


def _first_shard(dataset) -> str:
    return Manifest.load(dataset).shards_of("wds")[0].path


def test_a_dataset_at_an_http_url_reads_as_the_local_one(dataset):
    local = _records(open_dataset(dataset, container="wds"))
    with serve(dataset.parent) as url:
        remote = open_dataset(f"{url}/ds")  # manifest and shards over http; wds chosen by itself
        assert remote.container == "wds" and remote.shard_paths[0].startswith(url)
        assert _records(remote) == local
        assert _records(open_dataset(dataset, "train", "wds", shard_url_base=f"{url}/ds")) == local
        assert (
            remote[13].frame_id == FRAMES[13].frame_id
        )  # random access within the plan's order works too


def test_a_pipe_command_with_a_path_placeholder(dataset):
    base = f"pipe:cat {dataset}/{{path}}"
    with grant_command_line([f"data.shard_url_base={base}"], allow=True):
        frames = open_dataset(dataset, container="wds", shard_url_base=base)
        assert frames.shard_paths[0] == f"pipe:cat {dataset}/{_first_shard(dataset)}"
        assert _records(frames) == _records(FRAMES)
    assert _records(frames) == _records(
        FRAMES
    )  # a dataset opened under the grant keeps it (workers)
    with pytest.raises(UnsafeLocation, match="honoured only on your own command line"):
        open_dataset(
            dataset, container="wds", shard_url_base=base
        )  # the grant ended with the block


def test_a_missing_shard_is_an_error_naming_it(dataset, tmp_path):
    with serve(tmp_path) as url:  # the manifest is local, the shards are not on the server
        frames = open_dataset(dataset, container="wds", shard_url_base=f"{url}/elsewhere")
        with pytest.raises(
            ShardError, match=rf"{url}/elsewhere/{_first_shard(dataset)}: .*HTTP 404"
        ):
            list(frames)
        with pytest.raises(FileNotFoundError, match=rf"{url}/nothing/manifest.json"):
            open_dataset(f"{url}/nothing")


def test_a_cut_off_response_is_an_error_naming_the_shard(dataset, caplog):
    shard = _first_shard(dataset)
    with serve(dataset.parent, truncate=(f"ds/{shard}",)) as url:
        with pytest.raises(
            ShardError, match=rf"{url}/ds/{shard}: record \d+: .*truncated.* after 3 attempts"
        ):
            list(open_dataset(f"{url}/ds", transfer=TransferPolicy(retries=2, backoff=0.01)))
    assert [r.message.count("retry") for r in caplog.records] == [1, 1]  # each retry logged


def test_a_flipped_bit_fails_the_record_checksum_over_http(dataset, tmp_path):
    served = tmp_path / "served"
    shutil.copytree(dataset, served)
    shard = served / _first_shard(dataset)
    data = bytearray(shard.read_bytes())
    data[512 + 40] ^= 0x01  # inside record 0's payload (after its 512-byte tar header)
    shard.write_bytes(bytes(data))
    with serve(tmp_path) as url:
        with pytest.raises(
            RecordDecodeError, match=rf"{url}/served/{_first_shard(dataset)}: record 0"
        ):
            list(open_dataset(f"{url}/served"))


def test_lmdb_is_local_only_and_manifest_paths_cannot_escape(dataset):
    with pytest.raises(ValueError, match="WebDataset only"):
        open_dataset(dataset, container="lmdb", shard_url_base="http://127.0.0.1:1/ds")
    for bad in ("../x.tar", "/etc/passwd", "a.tar; rm -rf ~", "a/../../b.tar"):
        with pytest.raises(ValueError, match="not a plain relative path"):
            join("pipe:cat /data/{path}", bad)
    assert is_url("http://h/ds") and is_url("pipe:cat x") and not is_url(str(dataset))
