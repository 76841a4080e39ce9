"""Where a shard's file lies and whether it is the file the manifest describes: the checks a reader makes when it
opens a dataset (a path resolution and a stat per shard), before a byte of a shard is mapped or parsed."""

from __future__ import annotations

import os
from pathlib import Path

from foundation.data.manifest import ShardInfo
from foundation.errors import UserError


class ShardError(UserError, ValueError):
    """A shard that is not what the manifest says: outside the dataset, missing, of another size, truncated,
    holding other records than listed. The message names the shard (and the record when there is one)."""


def shard_path(directory: str | os.PathLike, relpath: str) -> Path:
    """DIRECTORY/RELPATH, refused when it resolves outside the dataset directory (an absolute path, `..`, or a
    symlink leading out): a manifest from a stranger must not make a reader open /etc/passwd."""
    root = Path(directory).resolve()
    resolved = (root / relpath).resolve()
    if resolved == root or not resolved.is_relative_to(root):
        raise ShardError(
            f"{directory}: shard path {relpath!r} resolves to {resolved}, outside the dataset "
            "directory; refused"
        )
    return Path(directory) / relpath


def check_shard_file(path: Path, info: ShardInfo) -> None:
    """Raise ShardError when the shard file is missing or its size differs from the manifest's."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ShardError(f"{path}: shard file is missing") from None
    if info.size is not None and size != info.size:
        raise ShardError(
            f"{path}: {size} bytes, the manifest says {info.size}: the shard is truncated or was "
            "replaced"
        )
