"""Sharded LMDB container: one single-file LMDB environment per shard, keys are zero-padded indices.

Writers build the environment in a scratch file, then copy it compacted (deterministic bytes) to a temporary
name and rename it into place. Readers open read-only without a lock file, lazily and once per process, so
DataLoader workers that fork get their own environment.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterable

import lmdb

from foundation.data.codec import RecordDecodeError, decode_frame, encode_frame
from foundation.data.schema import SCHEMA_VERSION, Frame
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
        env = lmdb.open(os.path.join(scratch, "data.mdb"), subdir=False, map_size=_INITIAL_MAP_SIZE,
                        lock=False, sync=False, metasync=False, meminit=True)
        count = 0
        try:
            for frame in frames:
                _put_growing(env, record_key(count), encode_frame(frame))
                count += 1
            _put_growing(env, META_KEY, json.dumps({"num_frames": count, "schema_version": SCHEMA_VERSION},
                                                   sort_keys=True).encode())
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
    key = os.path.realpath(path)
    entry = _OPEN.get(key)
    if entry is not None and entry[0] == os.getpid():
        return entry[1]
    if entry is not None:  # inherited from the parent: LMDB handles must not cross fork
        entry[1].close()
    env = lmdb.open(key, subdir=False, readonly=True, lock=False, readahead=False, meminit=False)
    _OPEN[key] = (os.getpid(), env)
    return env


def close_readonly(path: str | os.PathLike) -> None:
    """Close this process's environment for a shard, if open."""
    entry = _OPEN.pop(os.path.realpath(path), None)
    if entry is not None and entry[0] == os.getpid():
        entry[1].close()


class LmdbShard:
    """Read-only random access to one shard; the environment opens lazily in each process."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._len: int | None = None

    def _environment(self) -> lmdb.Environment:
        return open_readonly(self.path)

    def __len__(self) -> int:
        if self._len is None:
            meta = self.meta()
            self._len = int(meta["num_frames"])
        return self._len

    def meta(self) -> dict:
        with self._environment().begin() as txn:
            raw = txn.get(META_KEY)
        if raw is None:
            raise RecordDecodeError(f"{self.path}: shard has no {META_KEY.decode()} entry")
        return json.loads(raw)

    def raw(self, index: int) -> bytes:
        with self._environment().begin() as txn:
            value = txn.get(record_key(index))
        if value is None:
            raise IndexError(f"{self.path}: no record {index}")
        return value

    def __getitem__(self, index: int) -> Frame:
        try:
            return decode_frame(self.raw(index))
        except RecordDecodeError as exc:
            raise RecordDecodeError(f"{self.path}: record {index}: {exc}") from None

    def close(self) -> None:
        close_readonly(self.path)
