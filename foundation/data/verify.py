"""Dataset integrity: every shard's checksum and every record's decoding, against the manifest."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from foundation.data.codec import RecordDecodeError, decode_frame
from foundation.data.lmdb_store import LmdbShard
from foundation.data.manifest import Manifest, ShardInfo
from foundation.data.wds_store import iter_wds_raw
from foundation.files import sha256_file


@dataclass
class VerifyReport:
    shards_checked: int = 0
    records_checked: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _records_of(path: Path, info: ShardInfo):
    if info.container == "lmdb":
        shard = LmdbShard(path)
        try:
            for i in range(info.num_frames):
                yield str(i), shard.raw(i)
        finally:
            shard.close()
    else:
        yield from iter_wds_raw(path)


def verify_shard(directory: Path, info: ShardInfo) -> tuple[int, list[str]]:
    """Check one shard: file present, sha256, record count, and that every record decodes."""
    path = directory / info.path
    if not path.exists():
        return 0, [f"{info.path}: shard file is missing"]
    digest = sha256_file(path)
    if digest != info.sha256:
        return 0, [f"{info.path}: checksum mismatch (manifest {info.sha256[:12]}..., file {digest[:12]}...): "
                   "the shard is corrupt or truncated"]
    errors, count = [], 0
    try:
        for key, raw in _records_of(path, info):
            try:
                frame = decode_frame(raw)
                frame.validate()
            except (RecordDecodeError, ValueError) as exc:
                errors.append(f"{info.path}: record {key}: {exc}")
            count += 1
    except Exception as exc:  # an unreadable container (lmdb.Error, tar error) names the shard
        errors.append(f"{info.path}: cannot read shard: {exc}")
    if not errors and count != info.num_frames:
        errors.append(f"{info.path}: holds {count} records, manifest says {info.num_frames}")
    return count, errors


def verify_dataset(directory: str | os.PathLike, progress: Callable[[ShardInfo], None] | None = None) -> VerifyReport:
    """Verify every shard of a dataset; the report lists each error with its shard and record."""
    directory = Path(directory)
    manifest = Manifest.load(directory)
    report = VerifyReport()
    for info in manifest.shards:
        count, errors = verify_shard(directory, info)
        report.shards_checked += 1
        report.records_checked += count
        report.errors.extend(errors)
        if progress:
            progress(info)
    return report
