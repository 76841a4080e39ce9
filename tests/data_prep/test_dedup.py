"""Duplicate detection over hash buckets on disk gives the same answer as one in-memory pass."""

import numpy as np
import pytest
from foundation.data_prep.dedup import KEY_BYTES, duplicates_in_buckets, first_occurrences


def _keys_with_repeats(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, KEY_BYTES), dtype=np.uint8)
    copies = rng.choice(n, n // 5, replace=False)
    keys[copies] = keys[
        rng.integers(0, n, len(copies))
    ]  # ~20% repeats, some of keys seen later, some chained
    return keys


def _parts(keys: np.ndarray, size: int):
    for start in range(0, len(keys), size):
        yield np.arange(start, min(start + size, len(keys))), keys[start : start + size]


@pytest.mark.parametrize("frames_per_bucket", [10, 333, 100_000])
def test_buckets_find_the_same_first_occurrences_as_one_pass(tmp_path, frames_per_bucket):
    keys = _keys_with_repeats(5000)
    first, owner = first_occurrences(keys)
    repeated, owners = duplicates_in_buckets(
        _parts(keys, 700), len(keys), tmp_path, frames_per_bucket
    )
    assert repeated.tolist() == np.flatnonzero(~first).tolist()
    assert owners.tolist() == owner[~first].tolist()
    assert (owners < repeated).all() and list(
        tmp_path.iterdir()
    ) == []  # the first one is kept; no files left


def test_a_subset_of_indices_keeps_its_global_numbering(tmp_path):
    keys = _keys_with_repeats(2000, seed=1)
    selected = np.arange(0, 2000, 3)
    repeated, owners = duplicates_in_buckets(
        [(selected, keys[selected])], len(selected), tmp_path, 64
    )
    first, owner = first_occurrences(keys[selected])
    assert (
        repeated.tolist() == selected[~first].tolist()
        and owners.tolist() == selected[owner[~first]].tolist()
    )
