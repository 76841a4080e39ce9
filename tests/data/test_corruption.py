"""Readers catch corruption on read, without a sha256 pass: a flipped bit fails the record's checksum, a truncated
LMDB shard is refused before it is mapped (no SIGBUS: proven in a subprocess, beside a control that does die of
SIGBUS), a truncated tar or one holding a link or a gap is an error naming shard and record (never a shifted
record), record counts and atom counts must agree with the manifest, and shard paths must stay inside the
dataset directory, in open_dataset and in the training loaders alike."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from foundation.data.codec import RecordDecodeError, encode_frame
from foundation.data.dataset import open_dataset
from foundation.data.lmdb_store import LmdbShard
from foundation.data.manifest import Manifest, encode_natoms
from foundation.data.shard_files import ShardError
from foundation.data.wds_store import member_name
from foundation.data.writer import write_dataset
from foundation.files import sha256_file
from foundation.train.config import DataConfig
from foundation.train.datasets import BatchBuilder
from foundation.train.loader import build_split_loader

from .helpers import full_frame

FRAMES = [full_frame(i, natoms=4) for i in range(24)]


@pytest.fixture()
def dataset(tmp_path):
    """train: shards of 8 (3 per container), both containers, frames full_frame(0..23)."""
    write_dataset(tmp_path, {"train": FRAMES}, containers=("lmdb", "wds"), shard_size=8)
    return tmp_path


def edit_shard_entry(dataset, relpath, **fields):
    """Change one shard's manifest entry; sha256 and size follow the file as it now is (a consistent manifest)."""
    manifest = json.loads((dataset / "manifest.json").read_text())
    for shard in manifest["shards"]:
        if shard["path"] == relpath:
            shard.update(
                sha256=sha256_file(dataset / relpath),
                size=(dataset / relpath).stat().st_size,
                **fields,
            )
    (dataset / "manifest.json").write_text(json.dumps(manifest))


def read_all(dataset, container):
    return list(open_dataset(dataset, container=container))


def python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "container, relpath", [("lmdb", "lmdb/train-00001.lmdb"), ("wds", "wds/train-00001.tar")]
)
def test_a_flipped_bit_in_a_position_is_an_error_naming_shard_and_record(
    dataset, container, relpath
):
    path = dataset / relpath
    data = bytearray(path.read_bytes())
    at = (
        bytes(data).index(FRAMES[8 + 3].positions.tobytes()) + 7
    )  # record 3 of shard 1: positions[0, 0], top byte
    data[at] ^= (
        0x40  # an exponent bit: 1.485 would become ~1e-77 (what the issue saw train silently)
    )
    path.write_bytes(bytes(data))
    edit_shard_entry(dataset, relpath)  # even a manifest re-made to match the file does not hide it
    named = re.escape(str(path))
    with pytest.raises(
        RecordDecodeError, match=rf"{named}: record 3: checksum mismatch .*the record is corrupt"
    ):
        open_dataset(dataset, container=container)[8 + 3]
    with pytest.raises(RecordDecodeError, match=rf"{named}: record 3: checksum mismatch"):
        read_all(dataset, container)
    # its neighbour reads: a tar shard's records are decoded one by one as they are asked for, like LMDB's
    assert open_dataset(dataset, container=container)[8 + 2].same_as(FRAMES[8 + 2])


@pytest.mark.parametrize("keep", [1 / 3, 0.9, "all but one page"])
def test_a_truncated_lmdb_shard_is_refused_without_sigbus(dataset, keep):
    path = dataset / "lmdb/train-00002.lmdb"
    size = path.stat().st_size
    cut = (
        size - 4096 if keep == "all but one page" else int(size * keep) // 4096 * 4096
    )  # whole pages lost
    path.write_bytes(path.read_bytes()[:cut])
    control = python(
        f"import lmdb\nenv = lmdb.open({str(path)!r}, subdir=False, readonly=True, lock=False)\n"
        "with env.begin() as txn:\n    [bytes(v) for _, v in txn.cursor()]"
    )
    assert control.returncode == -signal.SIGBUS  # what reading it unchecked does: the process dies
    opened = python(
        f"from foundation.data.dataset import open_dataset\nlist(open_dataset({str(dataset)!r}))"
    )
    assert opened.returncode == 1, opened.stderr  # an exception, not a signal
    assert f"ShardError: {path}: " in opened.stderr and "the shard is truncated" in opened.stderr
    edit_shard_entry(
        dataset, "lmdb/train-00002.lmdb"
    )  # a manifest made to match: LMDB's own header refuses it
    alone = python(
        f"from foundation.data.dataset import open_dataset\nlist(open_dataset({str(dataset)!r}))"
    )
    assert alone.returncode == 1, alone.stderr
    assert (
        f"ShardError: {path}: truncated LMDB shard" in alone.stderr
        and "refused before any page is read" in alone.stderr
    )


def test_an_lmdb_shard_cut_inside_its_header_is_refused(dataset):
    path = dataset / "lmdb/train-00000.lmdb"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(
        ShardError, match=f"{re.escape(str(path))}: not a readable LMDB shard, corrupt or truncated"
    ):
        LmdbShard(path)[0]


def test_lmdb_record_counts_must_agree_with_the_manifest(dataset):
    edit_shard_entry(
        dataset, "lmdb/train-00000.lmdb", num_frames=5, num_atoms=20, natoms=encode_natoms([4] * 5)
    )
    with pytest.raises(
        ShardError,
        match="train-00000.lmdb: LMDB holds 8 records, its meta entry says 8, the manifest 5",
    ):
        open_dataset(dataset)[0]


@pytest.mark.parametrize("cut", ["between records", "inside a record"])
def test_a_truncated_tar_is_an_error_naming_shard_and_record(dataset, cut):
    path = dataset / "wds/train-00000.tar"
    data = path.read_bytes()
    end_of_record_4 = data.index(encode_frame(FRAMES[4])) + len(encode_frame(FRAMES[4]))
    end = -(-end_of_record_4 // 512) * 512 if cut == "between records" else end_of_record_4 - 100
    path.write_bytes(data[:end])
    with pytest.raises(
        ShardError,
        match=f"{re.escape(str(path))}: .* bytes, the manifest says {len(data)}: the "
        "shard is truncated",
    ):
        open_dataset(dataset, container="wds")
    edit_shard_entry(
        dataset, "wds/train-00000.tar"
    )  # a manifest made to match: the stream itself refuses it
    expected = (
        "ends after 5 records, the manifest lists 8: the shard is truncated"
        if cut == "between records"
        else "record 4: corrupt or truncated tar shard"
    )
    with pytest.raises(ShardError, match=f"{re.escape(str(path))}: {re.escape(expected)}"):
        read_all(dataset, "wds")
    with pytest.raises(ShardError, match=f"{re.escape(str(path))}: {re.escape(expected)}"):
        open_dataset(dataset, container="wds")[6]  # never an IndexError, never another frame


def _rewrite_tar(path, members):
    """A tar of (name, payload bytes | ("symlink", target)) in order, as a stranger could make it."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, payload in members:
            info = tarfile.TarInfo(name)
            if isinstance(payload, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, payload[1]
                tar.addfile(info)
            else:
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


@pytest.mark.parametrize("flaw", ["symlink", "missing record", "foreign member"])
def test_a_tar_with_a_link_or_a_gap_is_refused_naming_shard_and_record(dataset, flaw):
    relpath, path = "wds/train-00001.tar", dataset / "wds/train-00001.tar"
    members = [(member_name(i), encode_frame(FRAMES[8 + i])) for i in range(8)]
    if flaw == "symlink":
        members.insert(2, ("extra", ("symlink", "/etc/passwd")))
        expected = "record 2: member 'extra' is a symbolic link to '/etc/passwd'; tar shards hold only regular files"
    elif flaw == "missing record":
        del members[3]
        expected = f"record 3: member '{member_name(4)}' where '{member_name(3)}' was expected"
    else:
        members.insert(5, ("notes.txt", b"hello"))
        expected = f"record 5: member 'notes.txt' where '{member_name(5)}' was expected"
    _rewrite_tar(path, members)
    edit_shard_entry(dataset, relpath)
    with pytest.raises(ShardError, match=f"{re.escape(str(path))}: {re.escape(expected)}"):
        read_all(dataset, "wds")
    with pytest.raises(ShardError, match=f"{re.escape(str(path))}: {re.escape(expected)}"):
        open_dataset(dataset, container="wds")[8 + 7]


def _loader(dataset, container):
    data = DataConfig(path=str(dataset), container=container, max_atoms=16, num_workers=0)
    return build_split_loader(
        data, "train", BatchBuilder(4.0), rank=0, world_size=1, grad_accum=1, seed=0, train=True
    )


@pytest.mark.parametrize("container", ["lmdb", "wds"])
def test_an_understated_atom_count_never_reaches_a_training_batch(dataset, container):
    """The issue's case: batches planned from a manifest saying 2 atoms per frame got twice the atoms."""
    relpath = f"{container}/train-00000.{'lmdb' if container == 'lmdb' else 'tar'}"
    edit_shard_entry(dataset, relpath, num_atoms=16, natoms=encode_natoms([2] * 8))
    with pytest.raises(
        ShardError,
        match=rf"{re.escape(str(dataset / relpath))}: record \d has 4 atoms, the manifest "
        "says 2: refused",
    ):
        for _ in _loader(dataset, container).loader(epoch=0):
            pass


@pytest.mark.parametrize("evil", ["../../../../../../../../etc/passwd", "/etc/passwd", "symlink"])
@pytest.mark.parametrize("container", ["lmdb", "wds"])
def test_shard_paths_outside_the_dataset_are_refused_on_open(dataset, evil, container):
    relpath = f"{container}/train-00001.{'lmdb' if container == 'lmdb' else 'tar'}"
    if evil == "symlink":
        (dataset / relpath).unlink()
        os.symlink("/etc/passwd", dataset / relpath)
    else:
        manifest = json.loads((dataset / "manifest.json").read_text())
        next(s for s in manifest["shards"] if s["path"] == relpath)["path"] = evil
        (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ShardError, match="outside the dataset directory; refused"):
        open_dataset(dataset, container=container)
    with pytest.raises(ShardError, match="outside the dataset directory; refused"):
        _loader(dataset, container)


def test_a_manifest_that_contradicts_itself_is_refused_at_load(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["shards"][1]["natoms"] = encode_natoms(np.full(7, 4))
    (dataset / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        ValueError,
        match="manifest.json: shard lmdb/train-00001.lmdb: 8 frames and 32 atoms, but "
        "atoms per frame lists 7 frames holding 28 atoms",
    ):
        Manifest.load(dataset)
