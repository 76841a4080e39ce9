"""`open_dataset`: a prepared dataset (or one split of it) as a sequence of Frames.

Opening checks each shard of the selection against the manifest (path inside the dataset directory, file size);
reading checks each shard's record count and each record's checksum and atom count, so corruption is an error
naming shard and record instead of a wrong label or an oversized batch."""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from foundation.data.lmdb_store import LmdbShard
from foundation.data.manifest import Manifest
from foundation.data.remote import TransferPolicy, check_location, is_url, join, runs_program
from foundation.data.schema import Frame
from foundation.data.shard_files import ShardError, check_shard_file, shard_path
from foundation.data.wds_store import decode_record, iter_wds_raw


class FrameDataset(Sequence):
    """Frames of a prepared dataset in manifest order; LMDB gives random access, WebDataset streams.

    `directory` is a local dataset directory or a URL (data/remote.py: http(s)://, file://, a granted pipe:...,
    its manifest at URL/manifest.json); `shard_url_base` reads the shards from there instead (the manifest's
    relative paths joined to it). Both pass data/remote.py's check_location. Remote shards are WebDataset only
    (LMDB needs local files); their size and sha256 are checked against the manifest as they stream, with
    `transfer`'s bounded waits, and a remote shard is read whole before any of its frames is given out. Indexing a
    WebDataset split reads one shard's records at a time (tar shards are sequential) and decodes only the frames
    asked for: the loader workers of a split each use a share of every shard."""

    def __init__(
        self,
        directory: str | os.PathLike,
        split: str | None = None,
        container: str | None = None,
        shard_url_base: str | None = None,
        transfer: TransferPolicy | None = None,
    ):
        bases = [str(b) for b in (directory, shard_url_base) if b is not None]
        for base in bases:
            check_location(base)
        self.granted = tuple(b for b in bases if runs_program(b))  # carried to loader workers
        remote = is_url(directory) or shard_url_base is not None
        self.directory = str(directory) if is_url(directory) else Path(directory)
        self.transfer = transfer or TransferPolicy()
        self.remote = remote
        self.manifest = Manifest.load(self.directory, self.transfer)
        if split is not None and split not in self.manifest.splits:
            raise KeyError(
                f"{self.directory}: no split {split!r}; the dataset has {self.manifest.splits}"
            )
        self.container = container or (
            "wds" if remote and "wds" in self.manifest.containers else self.manifest.containers[0]
        )
        if self.container not in self.manifest.containers:
            raise KeyError(
                f"{self.directory}: no {self.container!r} shards; it has {self.manifest.containers}"
            )
        self.split = split
        self.shard_infos = self.manifest.shards_of(self.container, split)
        if remote:
            if self.container != "wds":
                raise ValueError(
                    f"{shard_url_base or directory}: shards at a URL are read as WebDataset only "
                    f"(container wds), not {self.container!r}"
                )
            base = shard_url_base or str(directory)
            self.shard_paths = [join(base, s.path) for s in self.shard_infos]
        else:
            self.shard_paths = [shard_path(self.directory, s.path) for s in self.shard_infos]
            for path, info in zip(self.shard_paths, self.shard_infos):
                check_shard_file(path, info)
        self._natoms = self.manifest.atoms_per_frame(self.container, split)
        self._offsets = np.cumsum([0] + [s.num_frames for s in self.shard_infos]).tolist()
        self._lmdb: list[LmdbShard] | None = None
        self._wds_cache: tuple[int, list[bytes]] | None = None  # one shard's record bytes

    def __getstate__(self) -> dict:
        """Pickled (for loader workers) without the shard cache: each process reads its own shards."""
        return {**self.__dict__, "_wds_cache": None}

    @property
    def natoms(self) -> np.ndarray:
        """Atoms per frame, from the manifest."""
        return self._natoms

    def __len__(self) -> int:
        return self._offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """(shard number, index within that shard) of a dataset index."""
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} frames")
        shard = bisect.bisect_right(self._offsets, index) - 1
        return shard, index - self._offsets[shard]

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        shard, local = self.locate(int(index))
        if self.container == "lmdb":
            if self._lmdb is None:
                self._lmdb = [
                    LmdbShard(p, s.num_frames) for p, s in zip(self.shard_paths, self.shard_infos)
                ]
            frame = self._lmdb[shard][local]
        else:
            if self._wds_cache is None or self._wds_cache[0] != shard:
                self._wds_cache = (shard, [raw for _, raw in self._records(shard)])
            frame = decode_record(self.shard_paths[shard], local, self._wds_cache[1][local])
        return self._as_listed(frame, shard, local)

    def __iter__(self) -> Iterator[Frame]:
        if self.container == "wds":
            for shard in range(len(self.shard_infos)):
                frames = self._stream(shard)
                if self.remote:  # verified whole (size, sha256) before any of its frames is used
                    frames = list(frames)
                for local, frame in enumerate(frames):
                    yield self._as_listed(frame, shard, local)
        else:
            for i in range(len(self)):
                yield self[i]

    def _records(self, shard: int) -> Iterator[tuple[int, bytes]]:
        info = self.shard_infos[shard]
        return iter_wds_raw(
            self.shard_paths[shard], info.num_frames, info, self.transfer, self.granted
        )

    def _stream(self, shard: int) -> Iterator[Frame]:
        path = self.shard_paths[shard]
        return (decode_record(path, index, raw) for index, raw in self._records(shard))

    def _as_listed(self, frame: Frame, shard: int, local: int) -> Frame:
        """The frame, once its atom count is the manifest's (samplers plan batches from the manifest's counts)."""
        listed = int(self._natoms[self._offsets[shard] + local])
        if frame.natoms != listed:
            raise ShardError(
                f"{self.shard_paths[shard]}: record {local} has {frame.natoms} atoms, the manifest says "
                f"{listed}: refused (batches are planned from the manifest's counts)"
            )
        return frame


def open_dataset(
    directory: str | os.PathLike,
    split: str | None = None,
    container: str | None = None,
    shard_url_base: str | None = None,
    transfer: TransferPolicy | None = None,
) -> FrameDataset:
    """Open a prepared dataset (a directory or a URL): `len`, indexing and iteration give Frames (fields as in
    DESIGN.md)."""
    return FrameDataset(
        directory,
        split=split,
        container=container,
        shard_url_base=shard_url_base,
        transfer=transfer,
    )
