"""Atomic output and file digests (foundation/files.py)."""

from __future__ import annotations

import hashlib

import pytest

from foundation.files import atomic_path, sha256_file, write_text_atomic


def test_a_failed_block_leaves_neither_the_file_nor_its_temporary(tmp_path):
    final = tmp_path / "sub" / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not final.exists()
    assert list((tmp_path / "sub").iterdir()) == []


def test_a_complete_write_replaces_the_old_file(tmp_path):
    final = tmp_path / "out.txt"
    final.write_text("old")
    write_text_atomic(final, "new\n")
    assert final.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_sha256_file_reads_in_blocks(tmp_path):
    data = bytes(range(256)) * 1000
    (tmp_path / "b").write_bytes(data)
    assert sha256_file(tmp_path / "b", block=4096) == hashlib.sha256(data).hexdigest()
