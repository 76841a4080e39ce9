"""Dataset integrity without trusting the manifest: every shard path stays inside the dataset directory, every
shard's size and sha256 match, every record in the file (listed or not) decodes with its checksum, validates, and
has the atom count the manifest gives it, each shard holds exactly the records listed, and no shard file is
left out of the manifest."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from foundation.data.codec import decode_frame
from foundation.data.lmdb_store import close_readonly, iter_records, open_readonly, read_meta
from foundation.data.manifest import CONTAINERS, Manifest, ShardInfo
from foundation.data.shard_files import ShardError, shard_path
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


def _records_of(path: Path, info: ShardInfo, errors: list[str]) -> Iterator[tuple[int, bytes]]:
    """Every record of the shard file in order, including any the manifest or the LMDB meta entry leave out."""
    if info.container == "wds":
        yield from iter_wds_raw(path)
        return
    env = open_readonly(path)
    try:
        declared, held = int(read_meta(env, path)["num_frames"]), env.stat()["entries"] - 1
        if declared != held:
            errors.append(f"{info.path}: LMDB holds {held} records, its meta entry says {declared}")
        yield from iter_records(env, path)
    finally:
        close_readonly(path)


def _file_errors(path: Path, info: ShardInfo) -> list[str]:
    """Size, then sha256 (skipped when the size already differs)."""
    size = path.stat().st_size
    if info.size is not None and size != info.size:
        return [
            f"{info.path}: {size} bytes, the manifest says {info.size}: the shard is truncated or was replaced"
        ]
    digest = sha256_file(path)
    if digest != info.sha256:
        return [
            f"{info.path}: checksum mismatch (manifest {info.sha256[:12]}..., file {digest[:12]}...): "
            "the shard is corrupt or truncated"
        ]
    return []


def _relative(exc: Exception, path: Path, info: ShardInfo) -> str:
    """A reader's message about `path`, naming the shard by its manifest path instead."""
    message = str(exc)
    prefix = f"{path}: "
    return f"{info.path}: {message[len(prefix) :] if message.startswith(prefix) else message}"


def verify_shard(directory: Path, info: ShardInfo) -> tuple[int, list[str]]:
    """Check one shard against the manifest and its own records; returns (records read, errors)."""
    try:
        path = shard_path(directory, info.path)
    except ShardError:
        return 0, [
            f"{info.path}: the shard path leaves the dataset directory (absolute, '..' or a symlink out); "
            "refused"
        ]
    if not path.is_file():
        return 0, [f"{info.path}: shard file is missing"]
    errors = _file_errors(path, info)
    natoms = info.atoms_per_frame()
    count, complete = 0, False
    try:
        for index, raw in _records_of(path, info, errors):
            count = index + 1
            try:
                frame = decode_frame(raw)
                frame.validate()
            except ValueError as exc:  # RecordDecodeError (checksum included) or InvalidFrame
                errors.append(f"{info.path}: record {index}: {exc}")
                continue
            if index < len(natoms) and frame.natoms != natoms[index]:
                errors.append(
                    f"{info.path}: record {index}: {frame.natoms} atoms, the manifest says {natoms[index]}"
                )
        complete = True
    except (ShardError, lmdb.Error, OSError) as exc:  # a container that cannot be read on
        errors.append(_relative(exc, path, info))
    if complete and count != info.num_frames:
        hidden = "; readers never see the records it leaves out" if count > info.num_frames else ""
        errors.append(
            f"{info.path}: holds {count} records, the manifest lists {info.num_frames}{hidden}"
        )
    return count, errors


def unlisted_shard_files(directory: Path, manifest: Manifest) -> list[str]:
    """Files in the container folders that the manifest does not list (records no reader would see)."""
    listed = {s.path for s in manifest.shards}
    found = [
        f"{c}/{p.name}"
        for c in CONTAINERS
        if (directory / c).is_dir()
        for p in sorted((directory / c).iterdir())
        if p.is_file() and not p.name.startswith(".")
    ]
    return [
        f"{rel}: shard file not listed in the manifest; readers never see its records"
        for rel in found
        if rel not in listed
    ]


def verify_dataset(
    directory: str | os.PathLike, progress: Callable[[ShardInfo], None] | None = None
) -> VerifyReport:
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
    report.errors.extend(unlisted_shard_files(directory, manifest))
    return report
