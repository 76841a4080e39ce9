"""Real DFT frames for the fine-tuning and prediction tests (tests/fixtures, no ../shared/data): a parent trained
briefly on MPtrj frames, and a user's data set of Alexandria frames (other DFT settings) whose elements the parent
knows, or holding elements it never saw."""

from __future__ import annotations

from pathlib import Path

import ase.io

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.writer import write_dataset
from foundation.train.config import load_train_config
from foundation.train.runner import run_training
from tests.train.helpers import element_references

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dft"
PARENT_MODEL = {
    "backbone": {
        "name": "schnet",
        "hidden": 16,
        "num_filters": 16,
        "layers": 2,
        "cutoff": 4.0,
        "num_radial": 8,
    },
    "heads": {"energy": True, "forces": "derivative", "stress": "derivative"},
}


def fixture_frames(name: str, max_atoms: int = 12) -> list:
    """Every frame of tests/fixtures/dft/NAME with at most `max_atoms` atoms (E, F and S labels)."""
    frames = []
    for index, atoms in enumerate(ase.io.iread(FIXTURES / name, index=":")):
        if len(atoms) <= max_atoms:
            frames.append(
                frame_from_atoms(
                    atoms, frame_id=f"{name}:{index}", structure_id=f"{name}:{index}", source=name
                )
            )
    return frames


def write_frames(directory: Path, train: list, val: list) -> Path:
    """A prepared dataset (LMDB) whose manifest has element references fitted on the train split."""
    write_dataset(
        directory, {"train": train, "val": val}, element_references=element_references(train)
    )
    return directory


def parent_dataset(directory: Path) -> Path:
    """MPtrj frames: the parent's pre-training data (train 60, val the rest)."""
    frames = fixture_frames("mptrj-sample.xyz")
    return write_frames(directory, frames[:60], frames[60:])


def user_frames(parent_data: Path, unseen: bool = False) -> list:
    """Alexandria frames whose elements all have a reference in the parent's data (unseen=False), or those holding
    at least one element that has none (unseen=True)."""
    from ase.data import atomic_numbers

    from foundation.data.manifest import Manifest

    known = {atomic_numbers[symbol] for symbol in Manifest.load(parent_data).element_references}
    return [
        f
        for f in fixture_frames("alexandria-sample.xyz")
        if (set(int(z) for z in f.numbers) <= known) != unseen
    ]


def parent_config(dataset: Path, run_dir: Path, **sections) -> dict:
    """A tiny SchNet training config on `dataset` (world of one, ZeRO 0, no workers)."""
    cfg = {
        "model": PARENT_MODEL,
        "run_dir": str(run_dir),
        "data": {"path": str(dataset), "max_atoms": 48, "num_workers": 0},
        "objective": {"energy_weight": 1.0, "forces_weight": 10.0, "stress_weight": 10.0},
        "optimizer": {"lr": 2.0e-3},
        "engine": {"zero_stage": 0, "ema_decay": 0.5},
        "train": {
            "max_steps": 3,
            "log_every": 1,
            "val_every": 3,
            "checkpoint_every": 3,
            "progress": False,
        },
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def train_parent(dataset: Path, run_dir: Path) -> Path:
    """A parent potential trained for a few steps (run directory with best/ and last/)."""
    run_training(load_train_config(parent_config(dataset, run_dir)))
    return run_dir
