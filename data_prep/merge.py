"""The merge step: decide duplicates over the whole input, stream the kept records of finished chunks into
the final shards (per split, in input order), then write statistics, quarantine, duplicates and manifest.

Final shards depend only on the input order (chunk index, then record order), never on which chunk finished
first, on the number of workers or on the chunk size. Memory holds one byte per frame (the keep mask), one
bucket of duplicate keys (foundation.data_prep.dedup.duplicates_in_buckets: keys are spread over hash buckets on
disk) and one shard's frames.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from foundation.data_prep.chunks import ChunkResult, ChunkTask
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.dedup import KEY_BYTES, duplicates_in_buckets
from foundation.data_prep.label_stats import (
    compute_statistics,
    fit_element_references,
    per_atom_residuals,
    reference_vector,
    source_references,
)
from foundation.data_prep.leakage import audit, group_counts
from foundation.data_prep.staging import (
    QUARANTINE_NAME,
    iter_staged_records,
    load_order,
    load_summary,
    quarantine_entry,
    read_record,
)
from tqdm import tqdm

from foundation.data.codec import decode_frame
from foundation.data.manifest import MANIFEST_NAME, Manifest, ShardInfo
from foundation.data.writer import shard_name, write_shard
from foundation.files import atomic_path
from foundation.progress import progress_bar

DUPLICATES_NAME = "duplicates.jsonl"
ENERGY_OUTLIER = (
    "energy_outlier"  # quarantine reason decided at the merge (it needs the fitted references)
)


@dataclass
class MergeReport:
    manifest: Manifest
    records: int = 0
    kept: int = 0
    duplicates: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    per_split: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@lru_cache(maxsize=8)
def _summary(directory: Path, split: str) -> dict[str, np.ndarray]:
    return load_summary(directory, split)


@lru_cache(maxsize=8)
def _order(directory: Path) -> dict[str, np.ndarray]:
    return load_order(directory)


class _InputOrder:
    """Global input positions (chunk by chunk, each in input order) of every staged frame, without holding the
    chunks' order arrays: one offset per chunk."""

    def __init__(self, tasks: list[ChunkTask], splits: list[str]) -> None:
        self.tasks, self.splits = tasks, splits
        counts = [len(_order(task.directory)["split"]) for task in tasks]
        self.offsets = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    @property
    def frames(self) -> int:
        return int(self.offsets[-1])

    def keys(self, part: slice, selected: np.ndarray | None = None):
        """(global indices, keys[:, part]) chunk by chunk, only where `selected` (global bool) is set."""
        for c, task in enumerate(self.tasks):
            indices = np.arange(self.offsets[c], self.offsets[c + 1])
            keys = _order(task.directory)["keys"][:, part]
            if selected is not None:
                mine = selected[self.offsets[c] : self.offsets[c + 1]]
                indices, keys = indices[mine], keys[mine]
            yield indices, keys

    def locate(self, i: int) -> dict[str, Any]:
        c = int(np.searchsorted(self.offsets, i, side="right")) - 1
        order = _order(self.tasks[c].directory)
        directory, split = self.tasks[c].directory, self.splits[order["split"][i - self.offsets[c]]]
        local = int(order["local"][i - self.offsets[c]])
        summary = _summary(directory, split)
        return {
            "frame_id": str(summary["frame_id"][local]),
            "file": str(summary["source_file"][local]),
            "record": str(summary["record"][local]),
            "directory": directory,
            "split": split,
            "offset": int(summary["offset"][local]),
        }


def _decide(
    tasks: list[ChunkTask], config: PrepConfig, scratch: Path
) -> tuple[dict, int, list[dict]]:
    """Keep masks per (chunk, split), the number of duplicates (their lines written to scratch/DUPLICATES_NAME),
    and duplicate_frame_id quarantine lines. Memory: one byte per frame and one bucket of keys."""
    splits = list(config.split)
    order = _InputOrder(tasks, splits)
    n = order.frames
    unique = np.ones(n, dtype=bool)
    repeated, owner = np.zeros(0, np.int64), np.zeros(0, np.int64)
    if config.dedup:
        repeated, owner = duplicates_in_buckets(order.keys(slice(0, KEY_BYTES)), n, scratch)
        unique[repeated] = False
    with open(scratch / DUPLICATES_NAME, "w") as fh:
        for i, first in zip(repeated.tolist(), owner.tolist()):
            me, kept = order.locate(i), order.locate(first)
            fh.write(
                json.dumps(
                    {
                        "file": me["file"],
                        "record": me["record"],
                        "frame_id": me["frame_id"],
                        "duplicate_of": {
                            "file": kept["file"],
                            "record": kept["record"],
                            "frame_id": kept["frame_id"],
                        },
                    },
                    sort_keys=True,
                )
                + "\n"
            )
    reused, first_use = duplicates_in_buckets(
        order.keys(slice(KEY_BYTES, None), unique), int(unique.sum()), scratch
    )
    id_quarantine = []
    for i, first in zip(reused.tolist(), first_use.tolist()):
        me, earlier = order.locate(i), order.locate(first)
        frame = decode_frame(read_record(me["directory"], me["split"], me["offset"]))
        id_quarantine.append(
            quarantine_entry(
                me["file"],
                me["record"],
                "duplicate_frame_id",
                f"frame_id {me['frame_id']!r} already used by {earlier['file']}:"
                f"{earlier['record']}",
                frame,
            )
        )
    keep = unique
    keep[reused] = False
    masks = {}
    for c, task in enumerate(tasks):
        split_of, kept = (
            _order(task.directory)["split"],
            keep[order.offsets[c] : order.offsets[c + 1]],
        )
        for s, split in enumerate(splits):
            masks[c, split] = kept[
                split_of == s
            ]  # a split's frames of a chunk are staged in input order
    return masks, len(repeated), id_quarantine


def _energy_outliers(
    tasks: list[ChunkTask], masks: dict, config: PrepConfig, rounds: int = 3
) -> list[dict]:
    """Quarantine kept frames whose per-atom energy residual against the element references (their source's,
    when frames carry several sources) lies more than config.max_energy_residual eV/atom from the mean
    residual of the train split. The references are refitted without the outliers until nothing changes (at
    most `rounds` fits), so a few wild labels cannot drag the references they are judged by. Updates `masks`
    in place; returns the quarantine lines."""
    splits = list(config.split)
    stat_split = "train" if "train" in config.split else splits[0]
    refused: dict[tuple[int, str], np.ndarray] = {}
    for _ in range(rounds):

        def batches():
            for c, task in enumerate(tasks):
                yield load_summary(task.directory, stat_split), masks[c, stat_split]

        refs = reference_vector(fit_element_references(batches))
        by_source = {name: reference_vector(r) for name, r in source_references(batches).items()}
        total, count = 0.0, 0
        for summary, keep in batches():
            residual = per_atom_residuals(summary, refs, by_source)[keep]
            residual = residual[np.isfinite(residual)]
            total, count = total + float(residual.sum()), count + len(residual)
        centre = total / count if count else 0.0
        changed = False
        for c, task in enumerate(tasks):
            for split in splits:
                residual = per_atom_residuals(load_summary(task.directory, split), refs, by_source)
                bad = (
                    masks[c, split]
                    & np.isfinite(residual)
                    & (np.abs(residual - centre) > config.max_energy_residual)
                )
                if bad.any():
                    masks[c, split] = masks[c, split] & ~bad
                    refused[c, split] = refused.get((c, split), np.zeros_like(bad)) | bad
                    changed = True
        if not changed:
            break
    lines = []
    for (c, split), bad in sorted(refused.items()):
        summary = load_summary(tasks[c].directory, split)
        residual = per_atom_residuals(summary, refs, by_source)
        for i in np.flatnonzero(bad):
            frame = decode_frame(read_record(tasks[c].directory, split, int(summary["offset"][i])))
            lines.append(
                quarantine_entry(
                    str(summary["source_file"][i]),
                    str(summary["record"][i]),
                    ENERGY_OUTLIER,
                    f"per-atom energy residual {residual[i] - centre:+.4g} eV/atom against the "
                    f"element references exceeds the bound {config.max_energy_residual:g}",
                    frame,
                )
            )
    return lines


def _write_split(
    out: Path, tasks: list[ChunkTask], split: str, masks: dict, config: PrepConfig, bar: tqdm
) -> list[ShardInfo]:
    shards: list[ShardInfo] = []
    buffer = []

    def flush() -> None:
        index = len(shards) // len(config.containers)
        for container in config.containers:
            shards.append(
                write_shard(out, shard_name(container, split, index), container, split, buffer)
            )
        bar.update(len(buffer))
        buffer.clear()

    for c, task in enumerate(tasks):
        mask = masks[c, split]
        if not mask.any():
            continue
        for keep, raw in zip(mask, iter_staged_records(task.directory, split)):
            if keep:
                buffer.append(decode_frame(raw))
                if len(buffer) == config.shard_size:
                    flush()
    if buffer:
        flush()
    return shards


def _write_lines(path: Path, sources: list[Path], extra: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as fh:
        for source in sources:
            with open(source) as src:
                shutil.copyfileobj(src, fh)
        for entry in extra:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")


def merge(
    tasks: list[ChunkTask],
    results: list[ChunkResult],
    config: PrepConfig,
    out_dir: str | Path,
    reader_info: dict[str, Any],
    extra: dict[str, Any],
) -> MergeReport:
    """Merge finished chunks into the dataset at `out_dir` and save its manifest."""
    out = Path(out_dir)
    (out / MANIFEST_NAME).unlink(
        missing_ok=True
    )  # the dataset is incomplete until the new manifest lands
    for container in ("lmdb", "wds"):
        shutil.rmtree(out / container, ignore_errors=True)
    _summary.cache_clear()
    _order.cache_clear()
    scratch = Path(tempfile.mkdtemp(prefix="merge-", dir=tasks[0].work_dir if tasks else out))
    masks, duplicates, id_quarantine = _decide(tasks, config, scratch)
    outliers = (
        _energy_outliers(tasks, masks, config) if config.max_energy_residual is not None else []
    )
    kept = int(sum(m.sum() for m in masks.values()))
    shards: list[ShardInfo] = []
    per_split = {}
    with progress_bar(total=kept, unit="frame", desc="merge", enabled=config.progress) as bar:
        for split in config.split:
            shards += _write_split(out, tasks, split, masks, config, bar)
            per_split[split] = int(sum(m.sum() for (c, s), m in masks.items() if s == split))

    stat_split = "train" if "train" in config.split else next(iter(config.split))

    def batches():
        for c, task in enumerate(tasks):
            yield load_summary(task.directory, stat_split), masks[c, stat_split]

    statistics, references = compute_statistics(batches, config.neighbour_cutoff)
    statistics["split"] = stat_split

    def summaries():
        for c, task in enumerate(tasks):
            for split in config.split:
                yield split, load_summary(task.directory, split), masks[c, split]

    leakage, warnings = audit(summaries, kept, stat_split, out)
    split_groups = {
        "group_by": config.group_by,
        "input_group_by": dict(config.input_group_by),
        "source_group_by": dict(config.source_group_by),
        "frames_by_source": group_counts(summaries),
        "hashed": "sha256(split_salt + group key): a group's split depends on its key alone",
    }
    elements = set()
    for (c, split), mask in masks.items():
        summary = load_summary(tasks[c].directory, split)
        rows = np.repeat(mask, summary["comp_len"])
        elements.update(np.unique(summary["comp_z"][rows]).tolist())
    quarantined: dict[str, int] = {}
    for result in results:
        for reason, count in result.quarantined.items():
            quarantined[reason] = quarantined.get(reason, 0) + count
    if id_quarantine:
        quarantined["duplicate_frame_id"] = len(id_quarantine)
    if outliers:
        quarantined[ENERGY_OUTLIER] = len(outliers)
    _write_lines(
        out / QUARANTINE_NAME,
        [t.directory / QUARANTINE_NAME for t in tasks],
        id_quarantine + outliers,
    )
    _write_lines(out / DUPLICATES_NAME, [scratch / DUPLICATES_NAME], [])
    shutil.rmtree(scratch)
    manifest = Manifest(
        shards=shards,
        elements=sorted(int(z) for z in elements),
        statistics=statistics,
        element_references=references,
        reader=reader_info,
        quarantine={
            "total": sum(quarantined.values()),
            "by_reason": dict(sorted(quarantined.items())),
            "file": QUARANTINE_NAME,
        },
        dedup={
            "enabled": config.dedup,
            "tolerance_A": config.dedup_tolerance,
            "duplicates": duplicates,
            "kept": "first in input order",
            "file": DUPLICATES_NAME,
        },
        split_ratios=dict(config.split),
        split_groups=split_groups,
        leakage=leakage,
        extra=extra,
    )
    manifest.save(out)
    return MergeReport(
        manifest,
        records=sum(r.records for r in results),
        kept=kept,
        duplicates=duplicates,
        quarantined=quarantined,
        per_split=per_split,
        warnings=warnings,
    )
