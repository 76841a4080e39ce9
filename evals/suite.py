"""An eval run as independent units: one (task, fold, seed, training size, variant) each, a plain picklable
`run_unit(unit)` call that writes OUT/units/TASK/foldF_seedS[_nSIZE]_VARIANT.json, so a process pool or a Slurm array can run them;
`reduce_units(out_dir)` (evals/reduce.py) turns the files into the report.

OUT/suite.yaml (resolved suite) and OUT/checkpoint.json (identity of the checkpoint) are written once by
`prepare_run` before any unit runs; units read only those and their task's data.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch
from ase.data import chemical_symbols
from foundation.evals.config import SuiteConfig, TaskConfig
from foundation.evals.probe import run_probe
from foundation.evals.property_finetune import run_finetune_selected
from foundation.evals.release import pretraining_manifest
from foundation.evals.tasks import load_property_task_for
from foundation.evals.tasks.dcdft import dcdft_source, zero_shot_bulk_moduli
from foundation.evals.tasks.matbench import _read_json, task_name_of
from foundation.evals.tasks.zeroshot import describe_dataset, zero_shot_errors

from foundation.calculator import FoundationCalculator
from foundation.config import load_config, save_config, to_dict
from foundation.data.manifest import Manifest
from foundation.data.remote import check_location
from foundation.files import sha256_file, write_text_atomic
from foundation.models.loading import (
    RUN,
    ModelFiles,
    check_model,
    load_potential,
    locate_model,
    read_model_meta,
)
from foundation.release import RELEASE_JSON, release_info
from foundation.report import finite_or_null
from foundation.train.run_layout import CONFIG

Variant = Literal["pretrained", "scratch", "probe_pretrained", "probe_random", "zeroshot"]
PROBE_VARIANTS = ("probe_pretrained", "probe_random")
SUITE_FILE = "suite.yaml"
CHECKPOINT_FILE = "checkpoint.json"
UNITS_DIR = "units"  # OUT/units/TASK/KEY.json, one result file per unit


@dataclass(frozen=True)
class Unit:
    """One independent piece of an eval run (picklable; everything else is read from out_dir)."""

    out_dir: str
    task: str
    fold: int
    seed: int
    variant: Variant
    size: int | None = None  # training structures of the fold (None: all of them)

    @property
    def key(self) -> str:
        size = "" if self.size is None else f"_n{self.size}"
        return f"{self.task}/fold{self.fold}_seed{self.seed}{size}_{self.variant}"

    @property
    def result_path(self) -> Path:
        return Path(self.out_dir) / UNITS_DIR / f"{self.key}.json"


def prepare_run(
    out_dir: str | os.PathLike, checkpoint: str | os.PathLike, suite: SuiteConfig, command: str = ""
) -> list[Unit]:
    """Write OUT/suite.yaml and OUT/checkpoint.json and return every unit of the run. A rerun into the same
    directory with the same suite and checkpoint keeps the finished units (resume)."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    suite = suite.resolved()
    info = describe_checkpoint(locate_model(checkpoint, suite.which))
    info["command"] = command
    previous = out / CHECKPOINT_FILE
    if previous.exists() and json.loads(previous.read_text())["sha256"] != info["sha256"]:
        raise ValueError(
            f"{out} holds results of another checkpoint; choose a fresh --out directory"
        )
    if (out / SUITE_FILE).exists() and to_dict(load_suite(out)) != to_dict(suite):
        raise ValueError(
            f"{out} holds results of a different suite configuration; finished units would be mixed "
            f"with new ones: choose a fresh --out directory"
        )
    save_config(suite, out / SUITE_FILE)
    write_text_atomic(previous, json.dumps(info, indent=1) + "\n")
    return plan_units(out)


def describe_checkpoint(files: ModelFiles) -> dict[str, Any]:
    """Identity of a checkpoint for results.json: kind, weights sha256, pre-training manifest, configs."""
    meta = read_model_meta(files)
    check_model(
        files, meta
    )  # the units build it: an oversized model.json is refused before any runs
    info: dict[str, Any] = {
        "path": str(files.path.resolve()),
        "kind": files.kind,
        "which": files.which,
        "weights": str(files.weights.resolve()),
        "sha256": sha256_file(files.weights),
        "validation": meta.get("val") or {},
    }
    if files.kind == RUN:
        info["training_config"] = files.run_config()
        info["pretraining_manifest"] = pretraining_manifest(info["training_config"])
    else:
        info["release"] = release_info(files.path)
        info["pretraining_manifest"] = info["release"].get(
            "pretraining_manifest", {"path": None, "sha256": None}
        )
    info["pretraining_manifest"] = checked_manifest_location(files, info["pretraining_manifest"])
    return info


def checked_manifest_location(files: ModelFiles, manifest: dict[str, Any]) -> dict[str, Any]:
    """The pre-training manifest entry with its path through data/remote.py's check_location: a location that
    runs a program is refused naming the file and key; a release's relative path resolves inside the release."""
    location = manifest.get("path")
    if not location:
        return manifest
    if files.kind == RUN:
        origin, root = f"{files.path / CONFIG}: data.path", None
    else:
        origin, root = f"{files.path / RELEASE_JSON}: pretraining_manifest.path", files.path
    return {**manifest, "path": check_location(location, origin=origin, root=root)}


@lru_cache(maxsize=2)
def checkpoint_potential(path: str, which: str):
    """The Potential of a run or a release (checksums verified), fp32, eval mode. Cached per process: every unit
    a worker runs shares one copy (callers copy before training)."""
    return load_potential(path, which)


def load_suite(out_dir: str | os.PathLike) -> SuiteConfig:
    return load_config(SuiteConfig, Path(out_dir) / SUITE_FILE)


def read_checkpoint_info(out_dir: str | os.PathLike) -> dict[str, Any]:
    return json.loads((Path(out_dir) / CHECKPOINT_FILE).read_text())


def num_folds(task: TaskConfig) -> int:
    """How many folds a task has (reads only the folds file for Matbench)."""
    if task.kind == "matbench":
        splits = _read_json(Path(task.folds_path)).get("splits", {})
        name = task_name_of(task.path)
        return len(splits[name] if name in splits else next(iter(splits.values())))
    return task.num_folds


def plan_units(out_dir: str | os.PathLike) -> list[Unit]:
    """Every unit of the prepared run in OUT: fine-tuning tasks give (fold, seed, training size) x
    (pretrained[, scratch][, probe_pretrained, probe_random]); zero-shot tasks give one unit."""
    out = str(Path(out_dir).resolve())
    suite = load_suite(out)
    units = []
    for task in suite.tasks:
        if not task.is_finetune:
            units.append(Unit(out, task.name, 0, 0, "zeroshot"))
            continue
        total = num_folds(task)
        folds = task.folds if task.folds is not None else list(range(total))
        bad = [f for f in folds if not 0 <= f < total]
        if bad:
            raise ValueError(f"task {task.name!r}: folds {bad} do not exist (it has {total})")
        variants = (
            ("pretrained",)
            + (("scratch",) if task.scratch else ())
            + (PROBE_VARIANTS if task.probe else ())
        )
        units += [
            Unit(out, task.name, f, s, v, n)
            for n in task.sizes()
            for f in folds
            for s in (task.seeds or suite.seeds)
            for v in variants
        ]
    return units


@lru_cache(maxsize=4)
def _task_data(out_dir: str, name: str):
    task = load_suite(out_dir).task(name)
    if task.kind == "property":
        task = dataclasses.replace(task, path=dataset_path(task, out_dir))
    return load_property_task_for(task)


def dataset_path(task: TaskConfig, out_dir: str) -> str:
    """A zeroshot/property task's prepared dataset: its path, or the checkpoint's pre-training data."""
    if task.path is not None:
        return task.path
    manifest = read_checkpoint_info(out_dir).get("pretraining_manifest") or {}
    if not manifest.get("sha256"):
        raise FileNotFoundError(
            f"task {task.name!r}: no path given and the checkpoint's pre-training dataset "
            f"({manifest.get('path')}) is not on this machine"
        )
    return manifest["path"]


def pretraining_elements(out_dir: str) -> set[str] | None:
    """Symbols of the elements of the checkpoint's pre-training data (None when its manifest is not here):
    zero-shot checks cover only these; the rest are out of domain."""
    manifest = read_checkpoint_info(out_dir).get("pretraining_manifest") or {}
    if not manifest.get("sha256"):
        return None
    return {chemical_symbols[z] for z in Manifest.load(Path(manifest["path"])).elements}


def compute_unit(unit: Unit) -> dict[str, Any]:
    """Run one unit and return its result record (without writing it)."""
    suite = load_suite(unit.out_dir)
    task = suite.task(unit.task)
    ck = read_checkpoint_info(unit.out_dir)
    if suite.threads is not None:
        torch.set_num_threads(suite.threads)
    potential = checkpoint_potential(ck["path"], suite.which)
    if not task.is_finetune and "energy" not in potential.outputs:
        raise ValueError(
            f"task {task.name!r} ({task.kind}) needs a potential that predicts energies; this checkpoint "
            f"provides {list(potential.outputs)} (drop the task from the suite)"
        )
    if task.is_finetune and unit.variant in PROBE_VARIANTS:
        data = _task_data(unit.out_dir, task.name)
        result = run_probe(
            data,
            unit.fold,
            unit.seed,
            unit.size,
            potential,
            random=unit.variant == "probe_random",
            pooling=suite.finetune_for(task).pooling,
            device=suite.device,
        )
        result["task"] = data.describe()
    elif task.is_finetune:
        cfg = suite.finetune_for(task)
        data = _task_data(unit.out_dir, task.name)
        pretrained = (
            potential if unit.variant == "pretrained" else None
        )  # only its weights are copied
        result = run_finetune_selected(
            data,
            unit.fold,
            unit.seed,
            cfg,
            potential.config,
            pretrained,
            size=unit.size,
            device=suite.device,
        )
        result["finetune_config"] = asdict(cfg)
        result["task"] = data.describe()
    elif task.kind == "dcdft_eos":
        result = zero_shot_bulk_moduli(
            FoundationCalculator(potential, device=suite.device),
            strain=suite.eos_strain,
            points=suite.eos_points,
            elements=task.elements,
            domain=pretraining_elements(unit.out_dir),
        )
        result["kind"] = "eos"
        result["task"] = {
            "name": task.name,
            "property": "bulk_modulus",
            "unit": "GPa",
            "num_structures": len(result["predictions"]) + len(result["failures"]),
            "out_of_domain": len(result["out_of_domain"]),
            "provenance": {"ase.collections.dcdft": dcdft_source()},
        }
    else:
        path, split = dataset_path(task, unit.out_dir), task.split or "test"
        result = zero_shot_errors(
            potential, path, split, max_frames=task.max_structures, device=suite.device
        )
        result["task"] = {
            "name": task.name,
            "property": "energy/forces/stress",
            "unit": "",
            **describe_dataset(path, split),
        }
    return result


def run_unit(unit: Unit) -> Path:
    """Run one unit unless its result file exists, and write OUT/units/TASK/foldF_seedS_VARIANT.json
    atomically. Safe to call from any process or Slurm task; returns the result path."""
    if unit.result_path.is_file():
        return unit.result_path
    start = time.perf_counter()
    result = compute_unit(unit)
    result.update(
        {
            "unit": asdict(unit),
            "key": unit.key,
            "variant": unit.variant,
            "fold": unit.fold,
            "seed": unit.seed,
            "size": unit.size,
            "wall_seconds": time.perf_counter() - start,
        }
    )
    write_text_atomic(unit.result_path, json.dumps(finite_or_null(result)) + "\n")
    return unit.result_path
