"""`foundation prep`: plan chunks -> run them (local process pool) -> merge -> manifest, resumably.

Re-running the same command after a crash redoes only the chunks without a valid completion marker, then
merges again; a finished dataset with the same fingerprint is left as it is.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from ase.data import chemical_symbols
from tqdm import tqdm

from foundation.data_prep.chunks import ChunkResult, ChunkTask, check_inputs_read, plan_chunks, run_chunk
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.merge import MergeReport, merge
from foundation.data_prep.readers.base import FRAME_KEYS, STRUCTURE_KEYS
from foundation.data_prep.readers.mptrj import ENERGY_FIELDS
from foundation.config import save_config
from foundation.data.manifest import MANIFEST_NAME, Manifest
from foundation.errors import writing
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


def _check_out_dir(out: Path) -> None:
    ours = (out / MANIFEST_NAME).exists() or (out / WORK_NAME).exists()
    if out.exists() and not ours and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise FileExistsError(f"{out}: not empty and not a `foundation prep` output; choose another --out")


def run_local(tasks: list[ChunkTask], workers: int, bar: tqdm) -> list[ChunkResult]:
    """Run chunk tasks in this process (workers=1) or a pool of fresh processes; results in chunk order."""
    if workers == 1 or len(tasks) <= 1:
        results = []
        for task in tasks:
            result = run_chunk(task, progress=bar.update)
            if result.skipped:
                bar.update(result.records)
            results.append(result)
        return results
    results_by_index = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(run_chunk, task) for task in tasks]
        for future in as_completed(futures):
            result = future.result()
            results_by_index[result.index] = result
            bar.update(result.records)
    return [results_by_index[t.index] for t in tasks]


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
        "options": {"required_labels": list(config.required), "max_force_eV_A": config.max_force,
                    "min_distance_A": config.min_distance,
                    "max_energy_residual_eV_atom": config.max_energy_residual,
                    "structure_key": config.structure_key or f"auto: first of {list(STRUCTURE_KEYS)}, else frame_id",
                    "frame_key": config.frame_key or f"auto: first of {list(FRAME_KEYS)}, else FILE:INDEX"},
    }
    if "mptrj" in formats:
        info["options"]["mptrj_energy"] = ENERGY_FIELDS[config.energy]
    if "extxyz" in formats:
        info["options"].update(extxyz_keys={"energy": config.energy_key, "forces": config.forces_key,
                                            "stress": config.stress_key},
                               extxyz_units="energy_unit/forces_unit/stress_unit of each frame, converted")
    if formats & {"vasp-outcar", "vasp-xml"}:
        info["options"]["vasp_energy"] = "energy(sigma->0) as read by ASE; stress kBar (VASP sign) -> eV/A^3 (ASE sign)"
    return info


def run_prep(config: PrepConfig) -> PrepResult:
    """Prepare a dataset from config.inputs into config.out; resumable. One writer at a time: the output
    directory's lock is held throughout (a second prep into it is refused, naming the first)."""
    out = Path(config.out)
    _check_out_dir(out)
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
        return PrepResult(Manifest.load(out), None, time.perf_counter() - start, len(tasks), len(tasks))
    total = sum(p.num_records for t in tasks for p in t.pieces)
    known = all(p.num_records >= 0 for t in tasks for p in t.pieces)
    with tqdm(total=total if known else None, unit="frame", desc="prep", file=sys.stderr, smoothing=0.1,
              disable=not config.progress) as bar:
        results = run_local(tasks, config.workers, bar)
    check_inputs_read(tasks, results)
    extra = {"prep": {"fingerprint": fingerprint, "chunks": len(tasks), "config": CONFIG_NAME}}
    save_config(config, out / CONFIG_NAME)  # before the manifest, which marks the dataset complete
    with writing(out):
        report = merge(tasks, results, config, out, reader_info(tasks, config), extra)
    if not config.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return PrepResult(report.manifest, report, time.perf_counter() - start, len(tasks),
                      sum(r.skipped for r in results))


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
    return "\n".join([
        f"prep finished in {result.seconds:.1f} s ({rate:.0f} frames/s): {r.records} frames read from "
        f"{len(m.reader.get('inputs', []))} files in {result.chunks} chunks ({result.chunks_skipped} already done)",
        f"  kept {r.kept}; quarantined {sum(r.quarantined.values())} ({q}); duplicates {r.duplicates}",
        f"  splits: {splits}",
        f"  elements ({len(m.elements)}): {' '.join(chemical_symbols[z] for z in m.elements)}",
        f"  output: {out} ({containers}); manifest.json, quarantine.jsonl, duplicates.jsonl, {CONFIG_NAME}",
    ])
