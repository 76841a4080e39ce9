"""A small prepared dataset of real DFT frames (tests/fixtures/dft) and tiny configs for training tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import ase.io
import numpy as np
import torch

from foundation.data.ase_convert import frame_from_atoms
from foundation.data.writer import write_dataset
from tests.conftest import FIXTURES

TINY_MODEL = {
    "backbone": {
        "name": "schnet",
        "hidden": 16,
        "num_filters": 16,
        "layers": 2,
        "cutoff": 4.0,
        "num_radial": 8,
        "max_neighbours": None,
    },
    "heads": {"energy": True, "forces": "derivative", "stress": "derivative", "denoise": "none"},
}


def real_frames(count: int, max_atoms: int = 12) -> list:
    """The first `count` MPtrj frames of the fixture sample with at most `max_atoms` atoms (E, F and S, real DFT)."""
    frames = []
    for index, atoms in enumerate(ase.io.iread(FIXTURES / "dft" / "mptrj-sample.xyz", index=":")):
        if len(atoms) <= max_atoms:
            frames.append(
                frame_from_atoms(
                    atoms,
                    frame_id=f"mptrj:{index}",
                    structure_id=atoms.info.get("mptrj_traj_id", f"s{index}"),
                    source="MPtrj",
                )
            )
        if len(frames) == count:
            return frames
    return frames


def element_references(frames) -> dict[str, float]:
    """Least-squares per-element energies (what data_prep writes into the manifest)."""
    from ase.data import chemical_symbols

    elements = sorted({int(z) for f in frames for z in f.numbers})
    counts = np.array([[np.sum(f.numbers == z) for z in elements] for f in frames], dtype=float)
    energies = np.array([f.energy for f in frames])
    refs, *_ = np.linalg.lstsq(counts, energies, rcond=None)
    return {chemical_symbols[z]: float(r) for z, r in zip(elements, refs)}


def make_dataset(directory: Path, n_train: int = 48, n_val: int = 12, shard_size: int = 16) -> Path:
    frames = real_frames(n_train + n_val)
    assert len(frames) == n_train + n_val, (
        f"the fixture sample holds only {len(frames)} such frames"
    )
    train, val = frames[:n_train], frames[n_train:]
    write_dataset(
        directory,
        {"train": train, "val": val},
        containers=("lmdb", "wds"),
        shard_size=shard_size,
        element_references=element_references(frames),
    )  # all frames: tiny splits
    return directory


def tiny_config(dataset: Path, run_dir: Path, **sections) -> dict:
    """A TrainRunConfig mapping for a tiny SchNet on `data`; `sections` update whole sections."""
    cfg = {
        "model": TINY_MODEL,
        "run_dir": str(run_dir),
        "data": {"path": str(dataset), "max_atoms": 48, "num_workers": 0},
        "objective": {"energy_weight": 1.0, "forces_weight": 10.0, "stress_weight": 10.0},
        "optimizer": {"lr": 2.0e-3},
        "engine": {"zero_stage": 0, "grad_accum": 1, "ema_decay": 0.9},
        "train": {
            "max_steps": 6,
            "log_every": 2,
            "val_every": 3,
            "checkpoint_every": 3,
            "progress": False,
        },
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def assert_same_batch(a, b) -> None:
    """Two AtomsBatches are equal field by field: every tensor's device, dtype, shape and values, every property."""
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert (x.device, x.dtype, x.shape) == (y.device, y.dtype, y.shape) and x.equal(y), (
                f.name
            )
        elif f.name == "properties":
            assert x.keys() == y.keys() and all(x[k].equal(y[k]) for k in x), f.name
        else:
            assert x == y, f.name
