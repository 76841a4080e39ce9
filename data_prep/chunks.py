"""Chunk tasks: the input cut into independent pieces of work, each run by `run_chunk(task)` in any process
(a local pool, or a Slurm array task), each leaving its outputs under WORK/chunk-NNNNN/ and, last, a
completion marker WORK/chunk-NNNNN.done holding the fingerprint of its inputs and options.

A task whose marker holds the same fingerprint is skipped; anything else it finds (a half-written
directory from a killed run) is removed and redone. Outputs are written in a scratch directory renamed
into place, so a chunk directory without a marker is never trusted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from foundation.data_prep.config import PrepConfig
from foundation.data_prep.dedup import structure_key, text_key
from foundation.data_prep.neighbours import count_neighbours
from foundation.data_prep.readers import READERS, Piece, RawRecord
from foundation.data_prep.readers.auto import expand_inputs
from foundation.data_prep.readers.base import ReaderError, file_identity
from foundation.data_prep.split import assign_split, split_group
from foundation.data_prep.staging import (
    QUARANTINE_NAME,
    InputOrder,
    SplitWriter,
    quarantine_entry,
    write_jsonl,
)
from foundation.data_prep.validate import check_frame

from foundation.errors import writing
from foundation.files import write_text_atomic
from foundation.locking import DirectoryLock

PREP_VERSION = 4  # bump when chunk outputs change meaning (2: markers count the frames read per input; 3: dedup
#                  keys hold the source tag; 4: group-aware splits, summaries hold each frame's group kind and volume)
PLAN_NAME = "plan.json"


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work: read these pieces, validate, write staged records. Picklable; run by run_chunk."""

    index: int
    pieces: tuple[Piece, ...]
    work_dir: str
    config: PrepConfig
    fingerprint: str

    @property
    def directory(self) -> Path:
        return Path(self.work_dir) / f"chunk-{self.index:05d}"

    @property
    def marker(self) -> Path:
        return Path(self.work_dir) / f"chunk-{self.index:05d}.done"


@dataclass
class ChunkResult:
    index: int
    records: int = 0
    kept: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    skipped: bool = False
    frames_by_file: dict[str, int] = field(
        default_factory=dict
    )  # records that became frames, per input
    first_error: dict[str, str] = field(
        default_factory=dict
    )  # per input: why its first unreadable record failed


def _digest(obj: object) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _pack(pieces: list[Piece], chunk_frames: int) -> list[list[Piece]]:
    """Consecutive pieces into chunks of about `chunk_frames` frames (a large file's pieces are already that)."""
    chunks: list[list[Piece]] = []
    weight = chunk_frames
    for piece in pieces:
        if weight >= chunk_frames:
            chunks.append([])
            weight = 0
        chunks[-1].append(piece)
        weight += piece.weight
    return chunks


def plan_chunks(config: PrepConfig, work_dir: str | os.PathLike) -> list[ChunkTask]:
    """Cut the inputs into chunk tasks (reusing WORK/plan.json when inputs and chunking are unchanged)."""
    work = Path(work_dir)
    files = expand_inputs(list(config.inputs), config.format)
    identities = [file_identity(path) for path, _, _ in files]
    plan_key = _digest(
        {
            "files": files,
            "identities": identities,
            "chunk_frames": config.chunk_frames,
            "version": PREP_VERSION,
        }
    )
    plan_path = work / PLAN_NAME
    pieces: list[Piece] | None = None
    if plan_path.exists():
        saved = json.loads(plan_path.read_text())
        if saved.get("key") == plan_key:
            pieces = [Piece(**p) for p in saved["pieces"]]
    if pieces is None:
        pieces = []
        for path, fmt, name in files:
            found = READERS[fmt].plan(path, name, config.chunk_frames)
            if not found:
                raise ReaderError(f"{path}: no frames found (an empty {fmt} file?)")
            pieces += found
        work.mkdir(parents=True, exist_ok=True)
        write_text_atomic(
            plan_path,
            json.dumps({"key": plan_key, "pieces": [dataclasses.asdict(p) for p in pieces]}),
        )
    if not pieces:
        raise ReaderError(f"no frames found in {list(config.inputs)}")
    options = config.chunk_options()
    tasks = []
    for index, group in enumerate(_pack(pieces, config.chunk_frames)):
        fingerprint = _digest(
            {
                "plan": plan_key,
                "pieces": [dataclasses.asdict(p) for p in group],
                "options": options,
                "version": PREP_VERSION,
            }
        )
        tasks.append(ChunkTask(index, tuple(group), str(work), config, fingerprint))
    return tasks


def is_done(task: ChunkTask) -> bool:
    """Whether the task's outputs exist and were made from the same inputs and options."""
    if not task.marker.exists() or not task.directory.is_dir():
        return False
    try:
        return json.loads(task.marker.read_text()).get("fingerprint") == task.fingerprint
    except (OSError, ValueError):
        return False


def _sampled(frame_id: str, fraction: float) -> bool:
    return int.from_bytes(text_key(frame_id)[:8], "big") < fraction * 2.0**64


def _refusal(record: RawRecord, cfg: PrepConfig) -> tuple[str, str] | None:
    """(reason, message) when the record may not enter the dataset, else None."""
    if record.frame is None:
        return record.reason, record.error or "unreadable record"
    rejection = check_frame(
        record.frame,
        required=cfg.required,
        max_force=cfg.max_force,
        min_distance=cfg.min_distance,
        neighbour_cutoff=cfg.neighbour_cutoff,
        max_energy_per_atom=cfg.max_energy_per_atom,
        max_stress=cfg.max_stress,
    )
    return None if rejection is None else (rejection.reason, rejection.message)


def run_chunk(task: ChunkTask, progress: Callable[[int], None] | None = None) -> ChunkResult:
    """Run one chunk task (or skip it when already done); return its counts. The chunk's own lock keeps a second
    process (another array task, another `foundation prep`) from running the same chunk at the same time."""
    with DirectoryLock(
        task.work_dir,
        name=f"{task.directory.name}.lock",
        label=f"chunk {task.index} of {Path(task.work_dir).parent}",
    ):
        if is_done(task):
            saved = json.loads(task.marker.read_text())
            return ChunkResult(
                task.index,
                saved["records"],
                saved["kept"],
                saved["quarantined"],
                0.0,
                skipped=True,
                frames_by_file=saved["frames_by_file"],
                first_error=saved["first_error"],
            )
        with writing(task.directory):
            return _run_chunk(task, progress)


def _run_chunk(task: ChunkTask, progress: Callable[[int], None] | None) -> ChunkResult:
    start = time.perf_counter()
    cfg = task.config
    task.marker.unlink(missing_ok=True)
    shutil.rmtree(task.directory, ignore_errors=True)
    for stale in Path(task.work_dir).glob(f".{task.directory.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    scratch = Path(task.work_dir) / f".{task.directory.name}.tmp-{os.getpid()}"
    scratch.mkdir(parents=True)
    writers = {split: SplitWriter(scratch, split) for split in cfg.split}
    split_index = {split: i for i, split in enumerate(cfg.split)}
    order = InputOrder()
    result = ChunkResult(task.index)
    quarantine = []
    pending = 0
    for piece in task.pieces:
        source = cfg.source_of(piece.path)
        for record in READERS[piece.format].read(piece, cfg):
            if source is not None and record.frame is not None:
                record.frame.source = source  # the prep config's tag wins over the reader's
            result.records += 1
            pending += 1
            if progress is not None and pending >= 64:
                progress(pending)
                pending = 0
            frame = record.frame
            if frame is not None:
                result.frames_by_file[piece.name] = result.frames_by_file.get(piece.name, 0) + 1
            else:
                result.first_error.setdefault(piece.name, f"record {record.where}: {record.error}")
            refusal = _refusal(record, cfg)
            if refusal is not None:
                quarantine.append(
                    quarantine_entry(piece.name, record.where, *refusal, frame, record.raw)
                )
                result.quarantined[refusal[0]] = result.quarantined.get(refusal[0], 0) + 1
                continue
            neighbours = (
                count_neighbours(frame.positions, frame.cell, frame.pbc, cfg.neighbour_cutoff)
                if cfg.neighbour_cutoff > 0 and _sampled(frame.frame_id, cfg.neighbour_sample)
                else -1
            )
            group, key = split_group(frame, cfg.group_rule(piece.path, frame.source))
            split = assign_split(key, cfg.split, cfg.split_salt)
            local = writers[split].add(
                frame, file=piece.name, record=record.where, neighbours=neighbours, group=group
            )
            order.add(
                split_index[split],
                local,
                structure_key(frame, cfg.dedup_tolerance),
                text_key(frame.frame_id),
            )
            result.kept += 1
    if progress is not None and pending:
        progress(pending)
    for writer in writers.values():
        writer.close()
    order.save(scratch)
    with open(scratch / QUARANTINE_NAME, "w") as fh:
        write_jsonl(fh, quarantine)
    os.replace(scratch, task.directory)
    result.seconds = time.perf_counter() - start
    write_text_atomic(
        task.marker,
        json.dumps(
            {
                "fingerprint": task.fingerprint,
                "records": result.records,
                "kept": result.kept,
                "quarantined": result.quarantined,
                "frames_by_file": result.frames_by_file,
                "first_error": result.first_error,
            }
        )
        + "\n",
    )
    return result


def check_inputs_read(tasks: list[ChunkTask], results: list[ChunkResult]) -> None:
    """Raise ReaderError when an input yielded no frame at all, or when no frame passed validation: an empty
    dataset is never a success."""
    frames: dict[str, int] = {}
    errors: dict[str, str] = {}
    for result in results:
        for name, count in result.frames_by_file.items():
            frames[name] = frames.get(name, 0) + count
        for name, error in result.first_error.items():
            errors.setdefault(name, error)
    paths = {piece.name: piece.path for task in tasks for piece in task.pieces}
    names = list(paths)
    unread = [name for name in names if not frames.get(name)]
    if unread:
        more = f" (and {len(unread) - 1} more inputs without a frame)" if len(unread) > 1 else ""
        raise ReaderError(
            f"{paths[unread[0]]}: no frame could be read from this input: "
            f"{errors.get(unread[0], 'it holds no record')}{more}"
        )
    if not sum(result.kept for result in results):
        reasons: dict[str, int] = {}
        for result in results:
            for reason, count in result.quarantined.items():
                reasons[reason] = reasons.get(reason, 0) + count
        summary = ", ".join(f"{reason} {count}" for reason, count in sorted(reasons.items()))
        raise ReaderError(
            f"no frame of {names} passed validation (quarantined: {summary}); the refused frames "
            f"are listed in {tasks[0].work_dir}/chunk-*/{QUARANTINE_NAME}"
        )
