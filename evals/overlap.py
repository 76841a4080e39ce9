"""How many test structures of each downstream task share a reduced composition with a frame of the
checkpoint's pre-training (training split) data: information for the report, not an error. The pre-training
compositions are the keys prep stored beside the manifest (data_prep/leakage.py)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from foundation.evals.suite import _task_data, dataset_path, load_suite, read_checkpoint_info
from foundation.evals.tasks.dcdft import dcdft_entries

from foundation.data.composition import keys_of_structures
from foundation.data.dataset import open_dataset
from foundation.data.manifest import MANIFEST_NAME, Manifest


def _test_structures(out_dir: str, task: Any) -> Iterator[np.ndarray]:
    """Atomic numbers of every structure a task tests on (the union of a fine-tuning task's test folds)."""
    if task.is_finetune:
        data = _task_data(out_dir, task.name)
        tested = np.unique(np.concatenate([test for _, test in data.folds]))
        return (data.frames[i].numbers for i in tested)
    if task.kind == "dcdft_eos":
        return (
            atoms.numbers
            for name, atoms, _ in dcdft_entries()
            if task.elements is None or name in task.elements
        )
    split = task.split or "test"
    return (frame.numbers for frame in open_dataset(dataset_path(task, out_dir), split=split))


def pretraining_overlap(out_dir: str | os.PathLike) -> dict[str, Any]:
    """{available, message, tasks: {task: {test_structures, share_composition}}} for results.json."""
    manifest_info = read_checkpoint_info(out_dir).get("pretraining_manifest") or {}
    if not manifest_info.get("sha256"):
        return {"available": False, "message": "the pre-training dataset is not on this machine"}
    directory = Path(manifest_info["path"])
    if not (directory / MANIFEST_NAME).is_file():
        return {
            "available": False,
            "message": f"no dataset manifest in {directory} on this machine",
        }
    stored = Manifest.load(directory).leakage.get("train_compositions")
    if not stored:
        return {
            "available": False,
            "message": "the pre-training dataset was prepared before prep stored its compositions",
        }
    train = np.load(directory / stored["file"], allow_pickle=False)
    tasks = {}
    for task in load_suite(out_dir).tasks:
        keys = keys_of_structures(_test_structures(str(out_dir), task))
        tasks[task.name] = {
            "test_structures": int(len(keys)),
            "share_composition": int(np.isin(keys, train).sum()),
        }
    return {
        "available": True,
        "message": "test structures with the reduced composition of a pre-training (training split) "
        "frame; information, not an error",
        "tasks": tasks,
    }
