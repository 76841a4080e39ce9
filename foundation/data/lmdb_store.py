"""Sharded LMDB container: one single-file LMDB environment per shard, keys are zero-padded indices.

Writers build the environment in a scratch file, then copy it compacted (deterministic bytes) to a temporary
name and rename it into place. Readers open read-only without a lock file, lazily and once per process, so
DataLoader workers that fork get their own environment. A file shorter than its own LMDB header says is refused
before any page is touched (reading a memory-mapped page past the end of a file kills the process with SIGBUS),
and a shard's record count must agree with its meta entry, LMDB's own entry count and the manifest.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import lmdb

from foundation.data.codec import RecordDecodeError, decode_frame, encode_frame
from foundation.data.schema import SCHEMA_VERSION, Frame
from foundation.data.shard_files import ShardError
from foundation.files import atomic_path

META_KEY = b"__meta__"
_INITIAL_MAP_SIZE = 64 << 20


def record_key(index: int) -> bytes:
    return b"%010d" % index


def write_lmdb_shard(path: str | os.PathLike, frames: Iterable[Frame]) -> int:
    """Write frames to one LMDB shard file at `path`; return the number of frames written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.name}.build-") as scratch:
        env = lmdb.open(
            os.path.join(scratch, "data.mdb"),
            subdir=False,
            map_size=_INITIAL_MAP_SIZE,
            lock=False,
            sync=False,
            metasync=False,
            meminit=True,
        )
        count = 0
        try:
            for frame in frames:
                _put_growing(env, record_key(count), encode_frame(frame))
                count += 1
            _put_growing(
                env,
                META_KEY,
                json.dumps(
                    {"num_frames": count, "schema_version": SCHEMA_VERSION}, sort_keys=True
                ).encode(),
            )
            with atomic_path(path) as tmp, open(tmp, "wb") as fh:
                fh.flush()
                env.copyfd(fh.fileno(), compact=True)
        finally:
            env.close()
    return count


def _put_growing(env: lmdb.Environment, key: bytes, value: bytes) -> None:
    while True:
        try:
            with env.begin(write=True) as txn:
                txn.put(key, value)
            return
        except lmdb.MapFullError:
            env.set_mapsize(env.info()["map_size"] * 2)


# One read-only environment per shard file per process (LMDB forbids opening a file twice in one process).
_OPEN: dict[str, tuple[int, lmdb.Environment]] = {}


def open_readonly(path: str | os.PathLike) -> lmdb.Environment:
    """The process's read-only environment for a shard; one inherited through fork is closed and reopened."""
    return _readonly(os.path.realpath(path), path)


def _readonly(key: str, path: str | os.PathLike) -> lmdb.Environment:
    """open_readonly for a path already resolved (`key`: its realpath, which costs a stat per component)."""
    entry = _OPEN.get(key)
    if entry is not None and entry[0] == os.getpid():
        return entry[1]
    if entry is not None:  # inherited from the parent: LMDB handles must not cross fork
        entry[1].close()
    env = _open_whole(key, path)
    _OPEN[key] = (os.getpid(), env)
    return env


def _open_whole(real: str, path: str | os.PathLike) -> lmdb.Environment:
    """Open read-only; refuse a file shorter than the pages its header counts (they would SIGBUS when read)."""
    try:
        env = lmdb.open(
            real, subdir=False, readonly=True, lock=False, readahead=False, meminit=False
        )
    except lmdb.Error as exc:
        reason = str(exc).removeprefix(f"{real}: ")
        raise ShardError(
            f"{path}: not a readable LMDB shard, corrupt or truncated ({reason})"
        ) from None
    needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
    actual = os.path.getsize(real)
    if actual < needed:
        env.close()
        raise ShardError(
            f"{path}: truncated LMDB shard ({actual} bytes, its header counts {needed}); refused "
            "before any page is read"
        )
    return env


def close_readonly(path: str | os.PathLike) -> None:
    """Close this process's environment for a shard, if open."""
    entry = _OPEN.pop(os.path.realpath(path), None)
    if entry is not None and entry[0] == os.getpid():
        entry[1].close()


def read_meta(env: lmdb.Environment, path: str | os.PathLike) -> dict:
    """The shard's __meta__ entry ({"num_frames", "schema_version"})."""
    with env.begin() as txn:
        raw = txn.get(META_KEY)
    if raw is None:
        raise ShardError(f"{path}: shard has no {META_KEY.decode()} entry")
    try:
        meta = json.loads(raw)
        int(meta["num_frames"])
    except (ValueError, TypeError, KeyError):
        raise ShardError(
            f"{path}: malformed {META_KEY.decode()} entry {bytes(raw[:80])!r}"
        ) from None
    return meta


def check_record_count(
    env: lmdb.Environment, path: str | os.PathLike, expected: int | None = None
) -> int:
    """The shard's record count, once its meta entry, LMDB's own entry count and `expected` (the manifest's)
    agree; ShardError naming all three otherwise."""
    declared, held = int(read_meta(env, path)["num_frames"]), env.stat()["entries"] - 1
    if declared != held or expected not in (None, held):
        raise ShardError(
            f"{path}: LMDB holds {held} records, its meta entry says {declared}"
            + (f", the manifest {expected}" if expected is not None else "")
        )
    return held


def iter_records(env: lmdb.Environment, path: str | os.PathLike) -> Iterator[tuple[int, bytes]]:
    """(index, record bytes) of every record in key order, counted or not; a key that is not the next record
    index (a gap, a foreign key) raises ShardError naming shard and key."""
    expected = 0
    with env.begin() as txn:
        for key, value in txn.cursor():
            if key == META_KEY:
                continue
            if key != record_key(expected):
                raise ShardError(
                    f"{path}: key {bytes(key[:40])!r} where record {expected} was expected"
                )
            yield expected, bytes(value)
            expected += 1


class LmdbShard:
    """Read-only random access to one shard; the environment opens lazily in each process, and its record count
    is checked (against `num_frames`, the manifest's, when given) the first time each process opens it."""

    def __init__(self, path: str | os.PathLike, num_frames: int | None = None):
        self.path = Path(path)
        self._expected = num_frames
        self._len: int | None = None
        self._checked_in: int | None = None  # pid of the process that checked the counts
        self._real = os.path.realpath(self.path)  # resolved once, not on every read

    def _environment(self) -> lmdb.Environment:
        env = _readonly(self._real, self.path)
        if self._checked_in != os.getpid():
            self._len = check_record_count(env, self.path, self._expected)
            self._checked_in = os.getpid()
        return env

    def __len__(self) -> int:
        if self._len is None:
            self._environment()
        return self._len

    def meta(self) -> dict:
        return read_meta(self._environment(), self.path)

    def raw(self, index: int) -> bytes:
        with self._environment().begin() as txn:
            value = txn.get(record_key(index))
        if value is None:
            if 0 <= index < len(self):
                raise ShardError(f"{self.path}: record {index} is missing")
            raise IndexError(f"{self.path}: no record {index}")
        return value

    def __getitem__(self, index: int) -> Frame:
        try:
            return decode_frame(self.raw(index))
        except RecordDecodeError as exc:
            raise RecordDecodeError(f"{self.path}: record {index}: {exc}") from None

    def close(self) -> None:
        close_readonly(self.path)
