"""WebDataset container: POSIX tar shards with one member `KEY.frame` per record (the record encoding).

Tars are written deterministically (fixed mtime, owner and order) so a rerun gives the same checksum. Streams
shuffle at the shard level and split shards across ranks and loader workers without duplicates.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from foundation.data.codec import RecordDecodeError, decode_frame, encode_frame
from foundation.data.schema import Frame
from foundation.files import atomic_path

EXTENSION = "frame"


def write_wds_shard(path: str | os.PathLike, frames: Iterable[Frame]) -> int:
    """Write frames to one tar shard at `path`; return the number written."""
    count = 0
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for frame in frames:
            payload = encode_frame(frame)
            info = tarfile.TarInfo(f"{count:010d}.{EXTENSION}")
            info.size, info.mtime, info.mode = len(payload), 0, 0o444
            tar.addfile(info, io.BytesIO(payload))
            count += 1
    return count


def iter_wds_raw(path: str | os.PathLike) -> Iterator[tuple[str, bytes]]:
    """Stream (key, record bytes) from one tar shard; a truncated or corrupt tar raises naming the shard."""
    try:
        with tarfile.open(path, "r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                key, _, ext = member.name.partition(".")
                if ext != EXTENSION:
                    raise RecordDecodeError(f"{path}: member {member.name!r} is not a .{EXTENSION} record")
                fh = tar.extractfile(member)
                yield key, fh.read()
    except tarfile.TarError as exc:
        raise RecordDecodeError(f"{path}: corrupt or truncated tar shard ({exc})") from None


def iter_wds_shard(path: str | os.PathLike) -> Iterator[Frame]:
    """Stream decoded frames from one tar shard."""
    for key, raw in iter_wds_raw(path):
        try:
            yield decode_frame(raw)
        except RecordDecodeError as exc:
            raise RecordDecodeError(f"{path}: record {key}: {exc}") from None


def shards_for_worker(shards: Sequence[str], *, rank: int, world_size: int, worker: int, num_workers: int,
                      epoch: int, seed: int, shuffle: bool) -> list[str]:
    """The shards one loader worker of one rank reads this epoch: a shuffled order, dealt round-robin."""
    order = list(shards)
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    slot, slots = rank * num_workers + worker, world_size * num_workers
    return order[slot::slots]
