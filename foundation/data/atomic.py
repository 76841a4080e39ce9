"""Deprecated alias of `foundation.files` (atomic writes, sha256 of files), kept for one release."""

from foundation.files import atomic_path, sha256_file, write_text_atomic

__all__ = ["atomic_path", "sha256_file", "write_text_atomic"]
