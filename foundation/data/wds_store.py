"""WebDataset container: POSIX tar shards with one member `KEY.frame` per record (the record encoding).

Tars are written deterministically (fixed mtime, owner and order) so a rerun gives the same checksum. Readers
accept only regular-file members named 0000000000.frame, 0000000001.frame, ... in order, so a link, a missing or
foreign member, or a truncated tar is an error naming shard and record, never a shifted record. Shards are read
through data/remote.py's open_stream: local files and URLs take the same checks; a shard streamed from a URL is
also hashed as it streams and compared with the manifest's size and sha256 (data/transfer.py).
Streams shuffle at the shard level and split shards across ranks and loader workers without duplicates.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from foundation.data.codec import RecordDecodeError, decode_frame, encode_frame
from foundation.data.manifest import ShardInfo
from foundation.data.remote import RemoteError, TransferPolicy, explain, is_url, open_stream
from foundation.data.schema import Frame
from foundation.data.shard_files import ShardError
from foundation.data.transfer import VerifiedStream
from foundation.files import atomic_path

EXTENSION = "frame"


def write_wds_shard(path: str | os.PathLike, frames: Iterable[Frame]) -> int:
    """Write frames to one tar shard at `path`; return the number written."""
    count = 0
    with atomic_path(path) as tmp, tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
        for frame in frames:
            payload = encode_frame(frame)
            info = tarfile.TarInfo(member_name(count))
            info.size, info.mtime, info.mode = len(payload), 0, 0o444
            tar.addfile(info, io.BytesIO(payload))
            count += 1
    return count


def member_name(index: int) -> str:
    return f"{index:010d}.{EXTENSION}"


def iter_wds_raw(
    path: str | os.PathLike,
    num_frames: int | None = None,
    listed: ShardInfo | None = None,
    policy: TransferPolicy | None = None,
    granted: Sequence[str] = (),
) -> Iterator[tuple[int, bytes]]:
    """Stream (record index, record bytes) from one tar shard: a local path or a URL (data/remote.py). With
    `num_frames` (the manifest's count) a shard holding more or fewer records raises; a malformed or truncated
    tar, or a failed transfer, raises ShardError naming shard and record. A URL with its manifest entry `listed`
    is verified as it streams (size before the first record when the server sends it, sha256 at the end): a
    mismatch raises ShardError naming the URL and the shard."""
    index = 0
    try:
        stream = open_stream(str(path), policy, granted)
        if listed is not None and is_url(path):
            stream = VerifiedStream(
                stream, f"{path}: shard {listed.path}", listed.size, listed.sha256
            )
    except RemoteError as exc:
        raise ShardError(f"{path}: shard cannot be opened ({exc})") from None
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    raise ShardError(
                        f"{path}: record {index}: member {member.name!r} is a {_kind(member)}; tar "
                        "shards hold only regular files"
                    )
                if member.name != member_name(index):
                    raise ShardError(
                        f"{path}: record {index}: member {member.name!r} where {member_name(index)!r} "
                        "was expected (records missing, reordered or foreign)"
                    )
                if num_frames is not None and index >= num_frames:
                    raise ShardError(
                        f"{path}: record {index}: more records than the {num_frames} the manifest lists"
                    )
                yield index, tar.extractfile(member).read()
                index += 1
        if isinstance(stream, VerifiedStream):
            stream.finish()
        stream.close()  # a stream from a command or a server reports its failure here
    except (
        tarfile.TarError
    ) as exc:  # the bytes ended or broke: a failed transfer is the better explanation
        failure = _transfer_failure(stream)
        if failure is not None:
            raise ShardError(
                f"{path}: record {index}: the shard could not be read to the end: {failure}"
            ) from None
        raise ShardError(
            f"{path}: record {index}: corrupt or truncated tar shard ({exc})"
        ) from None
    except RemoteError as exc:
        raise ShardError(f"{path}: record {index}: {explain(str(path), exc)}") from None
    except OSError as exc:
        raise ShardError(
            f"{path}: record {index}: the shard could not be read to the end: "
            f"{explain(str(path), exc)}"
        ) from None
    finally:
        _transfer_failure(stream)
    if num_frames is not None and index != num_frames:
        raise ShardError(
            f"{path}: ends after {index} records, the manifest lists {num_frames}: the shard is "
            "truncated"
        )


def _transfer_failure(stream: Any) -> str | None:
    """Close the stream; a command or server that failed (it may end the bytes before its exit status is known)
    says why, in words; None when it did not fail. Closing an already closed stream is a no-op."""
    try:
        stream.close()
    except OSError as exc:
        return explain(getattr(stream, "name", ""), exc)
    return None


def _kind(member: tarfile.TarInfo) -> str:
    if member.issym():
        return f"symbolic link to {member.linkname!r}"
    if member.islnk():
        return f"hard link to {member.linkname!r}"
    return "directory" if member.isdir() else "special file"


def iter_wds_shard(
    path: str | os.PathLike,
    num_frames: int | None = None,
    listed: ShardInfo | None = None,
    policy: TransferPolicy | None = None,
    granted: Sequence[str] = (),
) -> Iterator[Frame]:
    """Stream decoded frames from one tar shard (the arguments as for iter_wds_raw)."""
    for index, raw in iter_wds_raw(path, num_frames, listed, policy, granted):
        yield decode_record(path, index, raw)


def decode_record(path: str | os.PathLike, index: int, raw: bytes) -> Frame:
    """Record `index` of the shard at `path` as a Frame; bytes that do not decode raise RecordDecodeError naming
    shard and record."""
    try:
        return decode_frame(raw)
    except RecordDecodeError as exc:
        raise RecordDecodeError(f"{path}: record {index}: {exc}") from None


def shards_for_worker(
    shards: Sequence[str],
    *,
    rank: int,
    world_size: int,
    worker: int,
    num_workers: int,
    epoch: int,
    seed: int,
    shuffle: bool,
) -> list[str]:
    """The shards one loader worker of one rank reads this epoch: a shuffled order, dealt round-robin."""
    order = list(shards)
    if shuffle:
        random.Random(seed * 1_000_003 + epoch).shuffle(order)
    slot, slots = rank * num_workers + worker, world_size * num_workers
    return order[slot::slots]
