"""The leakage audit of a prepared dataset: per source and split, how many frames outside the training split
have a training frame (any source) of the same reduced composition, and how many have a near-duplicate one: the
same full composition (so the same atom count) with a cell volume within NEAR_VOLUME (2%).

It reads the chunk summaries only (composition arrays, volumes), bucket by bucket: frames are spread over
buckets by their reduced-composition key, so each bucket holds every candidate of its frames and memory holds
one bucket (about FRAMES_PER_BUCKET frames), never pairs of frames. Within a bucket the training frames are
sorted by (full composition, log volume), so each frame's test is two binary searches.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from foundation.data.composition import composition_keys
from foundation.files import atomic_path

NEAR_VOLUME = 0.02  # relative cell-volume window of a near-duplicate
WARN_FRACTION = 0.01  # prep warns when near-duplicates exceed this fraction of a split
FRAMES_PER_BUCKET = 1 << 20
TRAIN_COMPOSITIONS_NAME = "train_compositions.npy"
_GROUP_SPACING = (
    1000.0  # > the span of log volumes (clipped to +-400), so composition groups never overlap
)

# (split, summary, keep mask) of every chunk and split
Summaries = Callable[[], Iterable[tuple[str, dict[str, np.ndarray], np.ndarray]]]


def _keys(summary: dict[str, np.ndarray], reduced: bool) -> np.ndarray:
    return composition_keys(summary["comp_z"], summary["comp_n"], summary["comp_len"], reduced)


def group_counts(summaries: Summaries) -> dict[str, dict[str, int]]:
    """{source: {group kind: kept frames}}: how the split grouped each source's frames."""
    counts: dict[str, dict[str, int]] = {}
    for _, summary, keep in summaries():
        sources, groups = summary["source"][keep], summary["group"][keep]
        for source in np.unique(sources):
            mine = counts.setdefault(str(source), {})
            for group, n in zip(*np.unique(groups[sources == source], return_counts=True)):
                mine[str(group)] = mine.get(str(group), 0) + int(n)
    return counts


def audit(
    summaries: Summaries,
    frames: int,
    train: str,
    out: Path,
    frames_per_bucket: int = FRAMES_PER_BUCKET,
) -> tuple[dict[str, Any], list[str]]:
    """(the manifest's `leakage` entry, warnings) of `frames` kept frames. Writes out/TRAIN_COMPOSITIONS_NAME:
    the sorted reduced composition keys (uint64, foundation.data.composition) of the training frames, which
    the eval report compares its tasks' structures with."""
    buckets = max(1, -(-frames // frames_per_bucket))
    counts: dict[
        tuple[str, str], np.ndarray
    ] = {}  # (source, split) -> [frames, same composition, near]
    train_keys = []
    for bucket in range(buckets):
        bucket_train, queries = _bucket(summaries, train, buckets, bucket)
        train_reduced = np.unique(bucket_train[0])
        train_keys.append(train_reduced)
        near = _NearFinder(bucket_train[1], bucket_train[2])
        for split, sources, reduced, full, log_volume in queries:
            same = np.isin(reduced, train_reduced)
            close = near(full, log_volume)
            for source in np.unique(sources):
                mine = sources == source
                row = counts.setdefault((str(source), split), np.zeros(3, np.int64))
                row += [mine.sum(), (same & mine).sum(), (close & mine).sum()]
    keys = np.sort(np.concatenate(train_keys))
    with atomic_path(out / TRAIN_COMPOSITIONS_NAME) as tmp, open(tmp, "wb") as fh:
        np.save(fh, keys, allow_pickle=False)
    by_source: dict[str, dict[str, dict[str, int]]] = {}
    warnings = []
    for (source, split), (n, same, close) in sorted(counts.items()):
        by_source.setdefault(source, {})[split] = {
            "frames": int(n),
            "same_composition": int(same),
            "near_duplicates": int(close),
        }
        if close > WARN_FRACTION * n:
            warnings.append(
                f"{close} of {n} {split} frames of source {source!r} have a near-duplicate "
                f"{train} frame (same composition and atom count, volume within "
                f"{NEAR_VOLUME:.0%}); more than {WARN_FRACTION:.0%}: sibling frames under different "
                f"group keys (per-frame ids, or one structure under several ids); consider "
                f"group_by: composition for this source"
            )
    entry = {
        "against": f"the {train} frames of every source",
        "same_composition": "frames with a training frame of the same reduced composition",
        "near_duplicates": f"frames with a training frame of the same composition and atom count "
        f"and a cell volume within {NEAR_VOLUME:.0%}",
        "by_source": by_source,
        "train_compositions": {"file": TRAIN_COMPOSITIONS_NAME, "count": int(len(keys))},
    }
    return entry, warnings


def _bucket(summaries: Summaries, train: str, buckets: int, bucket: int):
    """((reduced, full, log volume) of the bucket's training frames, [(split, sources, reduced, full, log
    volume)] of its other frames)."""
    train_parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    queries = []
    for split, summary, keep in summaries():
        reduced = _keys(summary, reduced=True)
        mine = keep & (reduced % np.uint64(buckets) == np.uint64(bucket))
        if not mine.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            log_volume = np.clip(np.log(summary["volume"][mine]), -400, 400)
        part = (reduced[mine], _keys(summary, reduced=False)[mine], log_volume)
        if split == train:
            train_parts.append(part)
        else:
            queries.append((split, summary["source"][mine], *part))
    empty = (np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0))
    merged = tuple(np.concatenate(cols) for cols in zip(*train_parts)) if train_parts else empty
    return merged, queries


class _NearFinder:
    """Whether a training frame of the same full composition has a volume within NEAR_VOLUME of a frame's."""

    def __init__(self, full: np.ndarray, log_volume: np.ndarray):
        finite = np.isfinite(log_volume)
        self.groups, rank = np.unique(full[finite], return_inverse=True)
        self.sorted = np.sort(rank * _GROUP_SPACING + log_volume[finite])

    def __call__(self, full: np.ndarray, log_volume: np.ndarray) -> np.ndarray:
        if not len(self.groups):
            return np.zeros(len(full), dtype=bool)
        rank = np.searchsorted(self.groups, full)
        found = self.groups[np.minimum(rank, len(self.groups) - 1)] == full
        centre = rank * _GROUP_SPACING + log_volume
        low = np.searchsorted(self.sorted, centre + np.log1p(-NEAR_VOLUME), side="left")
        high = np.searchsorted(self.sorted, centre + np.log1p(NEAR_VOLUME), side="right")
        return found & np.isfinite(log_volume) & (high > low)


def describe(manifest_leakage: dict[str, Any], split_groups: dict[str, Any]) -> list[str]:
    """Lines for `foundation data stats`: each source's split groups and its audit counts per split."""
    if not manifest_leakage:
        return ["  leakage audit: none (a dataset prepared before the audit)"]
    lines = [
        f"  split groups (group_by {split_groups.get('group_by')}; leakage against {manifest_leakage['against']}):"
    ]
    kinds = split_groups.get("frames_by_source", {})
    for source in sorted(set(kinds) | set(manifest_leakage["by_source"])):
        grouped = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.get(source, {}).items()))
        lines.append(f"    {source or '(no source)'}: grouped by {grouped or '-'}")
        for split, row in manifest_leakage["by_source"].get(source, {}).items():
            lines.append(
                f"      {split:<6} {row['frames']:>7} frames: {row['same_composition']} share a "
                f"composition, {row['near_duplicates']} near-duplicates"
            )
    return lines
