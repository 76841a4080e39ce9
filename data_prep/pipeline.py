"""`foundation prep`: plan chunks -> run them (here, fresh processes, or a Slurm array) -> merge -> manifest, resumably.

Re-running the same command after a crash redoes only the chunks without a valid completion marker, then
merges again; a finished dataset with the same fingerprint is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ase.data import chemical_symbols
from foundation.data_prep.chunks import (
    ChunkResult,
    ChunkTask,
    check_inputs_read,
    is_done,
    plan_chunks,
    run_chunk,
)
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.merge import MergeReport, merge
from foundation.data_prep.readers.alexandria import ENERGY as ALEXANDRIA_ENERGY
from foundation.data_prep.readers.base import FRAME_KEYS, STRUCTURE_KEYS
from foundation.data_prep.readers.mptrj import ENERGY_FIELDS

from foundation.config import save_config
from foundation.data.manifest import MANIFEST_NAME, Manifest
from foundation.errors import writing
from foundation.jobs import Workload, run_items
from foundation.locking import LOCK_NAME, DirectoryLock

WORK_NAME = "_work"
CONFIG_NAME = "prep_config.yaml"


@dataclass
class PrepResult:
    manifest: Manifest
    report: MergeReport | None  # None when the dataset was already complete
    seconds: float
    chunks: int
    chunks_skipped: int


def dataset_fingerprint(tasks: list[ChunkTask], config: PrepConfig) -> str:
    body = {"chunks": [t.fingerprint for t in tasks], "options": config.dataset_options()}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_out_dir(out: Path) -> None:
    """Refuse an --out that exists, is not empty and is not a `foundation prep` output."""
    ours = (out / MANIFEST_NAME).exists() or (out / WORK_NAME).exists()
    if out.exists() and not ours and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise FileExistsError(
            f"{out}: not empty and not a `foundation prep` output; choose another --out"
        )


def run_chunks(tasks: list[ChunkTask], workers: int, progress: bool) -> list[ChunkResult]:
    """Run chunk tasks here (workers=1) or in fresh processes; results in chunk order (done chunks are skipped).
    The first failing chunk stops the run (a rerun redoes only the chunks without a completion marker)."""
    results, _ = run_items(
        run_chunk,
        tasks,
        workers=workers,
        desc="prep chunks",
        progress=progress,
        label=_chunk_label,
        keep_going=False,
    )
    return results


def _chunk_label(task: ChunkTask) -> str:
    return f"chunk {task.index}"


def prep_job_folder(out: str | os.PathLike) -> Path:
    """Job files of a data-prep run on a cluster: OUT.slurm/ beside the dataset (never inside it)."""
    out = Path(out)
    return out.with_name(out.name + ".slurm")


def prep_workload(config: PrepConfig) -> Workload:
    """The prep as a workload: one item per unfinished chunk, then `run_prep` (which finds every chunk done and
    merges; afterok: a failed chunk cancels the merge, and a rerun redoes only what is missing)."""
    out = Path(config.out)
    check_out_dir(out)
    with DirectoryLock(out):  # planning writes _work/plan.json: never beside a running prep
        tasks = plan_chunks(config, out / WORK_NAME)
    todo = [task for task in tasks if not is_done(task)]
    return Workload(
        name="prep",
        folder=prep_job_folder(out),
        task=run_chunk,
        items=todo,
        then=run_prep,
        then_args=(config,),
        condition="afterok",
        label=_chunk_label,
        info={"chunks": len(tasks), "submitted_chunks": len(todo), "out": str(out)},
    )


def reader_info(tasks: list[ChunkTask], config: PrepConfig) -> dict:
    """The manifest's `reader` entry: inputs with their formats, and every option that shaped the frames."""
    inputs = {}
    for task in tasks:
        for piece in task.pieces:
            inputs.setdefault(piece.name, piece.format)
    formats = set(inputs.values())
    info = {
        "inputs": [{"file": name, "format": fmt} for name, fmt in inputs.items()],
        "units": "positions/cell A, energy eV (total), forces eV/A, stress eV/A^3 with ASE's sign",
        "options": {
            "required_labels": list(config.required),
            "max_force_eV_A": config.max_force,
            "min_distance_A": config.min_distance,
            "max_energy_residual_eV_atom": config.max_energy_residual,
            "structure_key": config.structure_key
            or f"auto: first of {list(STRUCTURE_KEYS)}, else frame_id (no material id)",
            "frame_key": config.frame_key or f"auto: first of {list(FRAME_KEYS)}, else FILE:INDEX",
        },
    }
    if "mptrj" in formats:
        info["options"]["mptrj_energy"] = ENERGY_FIELDS[config.energy]
    if "alexandria" in formats:
        info["options"]["alexandria_energy"] = ALEXANDRIA_ENERGY[config.energy]
        info["options"]["alexandria_stress"] = "data.stress kBar (VASP sign) -> eV/A^3 (ASE sign)"
    if "extxyz" in formats:
        info["options"].update(
            extxyz_keys={
                "energy": config.energy_key,
                "forces": config.forces_key,
                "stress": config.stress_key,
            },
            extxyz_units="energy_unit/forces_unit/stress_unit of each frame, converted",
        )
    if formats & {"vasp-outcar", "vasp-xml"}:
        info["options"]["vasp_energy"] = (
            "energy(sigma->0) as read by ASE; stress kBar (VASP sign) -> eV/A^3 (ASE sign)"
        )
    return info


def run_prep(config: PrepConfig) -> PrepResult:
    """Prepare a dataset from config.inputs into config.out; resumable. One writer at a time: the output
    directory's lock is held throughout (a second prep into it is refused, naming the first)."""
    out = Path(config.out)
    check_out_dir(out)
    with DirectoryLock(out):
        return _run_prep(config, out)


def _run_prep(config: PrepConfig, out: Path) -> PrepResult:
    start = time.perf_counter()
    work = out / WORK_NAME
    tasks = plan_chunks(config, work)
    fingerprint = dataset_fingerprint(tasks, config)
    if _is_complete(out, fingerprint):
        if not config.keep_work:
            shutil.rmtree(work, ignore_errors=True)
        return PrepResult(
            Manifest.load(out), None, time.perf_counter() - start, len(tasks), len(tasks)
        )
    results = run_chunks(tasks, config.workers, config.progress)
    check_inputs_read(tasks, results)
    extra = {"prep": {"fingerprint": fingerprint, "chunks": len(tasks), "config": CONFIG_NAME}}
    save_config(config, out / CONFIG_NAME)  # before the manifest, which marks the dataset complete
    with writing(out):
        report = merge(tasks, results, config, out, reader_info(tasks, config), extra)
    if not config.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return PrepResult(
        report.manifest,
        report,
        time.perf_counter() - start,
        len(tasks),
        sum(r.skipped for r in results),
    )


def _is_complete(out: Path, fingerprint: str) -> bool:
    try:
        same = Manifest.load(out).extra.get("prep", {}).get("fingerprint") == fingerprint
        return same and (out / CONFIG_NAME).exists()
    except (OSError, ValueError):
        return False


def format_summary(result: PrepResult, out: str) -> str:
    """The human summary printed at the end of a run."""
    m = result.manifest
    if result.report is None:
        return f"{out}: already complete (same inputs and options); nothing to do. {m.num_frames()} frames."
    r = result.report
    q = ", ".join(f"{k} {v}" for k, v in sorted(r.quarantined.items())) or "none"
    splits = ", ".join(f"{s} {n}" for s, n in r.per_split.items())
    containers = ", ".join(f"{c}: {len(m.shards_of(c))} shards" for c in m.containers)
    rate = r.records / result.seconds if result.seconds > 0 else float("nan")
    return "\n".join(
        [
            f"prep finished in {result.seconds:.1f} s ({rate:.0f} frames/s): {r.records} frames read from "
            f"{len(m.reader.get('inputs', []))} files in {result.chunks} chunks ({result.chunks_skipped} already done)",
            f"  kept {r.kept}; quarantined {sum(r.quarantined.values())} ({q}); duplicates {r.duplicates}",
            f"  splits: {splits}",
            *(f"  warning: {w}" for w in r.warnings),
            f"  elements ({len(m.elements)}): {' '.join(chemical_symbols[z] for z in m.elements)}",
            f"  output: {out} ({containers}); manifest.json, quarantine.jsonl, duplicates.jsonl, {CONFIG_NAME}",
        ]
    )
