"""Zero-shot energy, force and stress errors of a potential on a prepared dataset split, overall, per element and
per data source."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.data import chemical_symbols
from foundation.evals.tasks.common import subset_indices

from foundation.data.batch import collate_frames
from foundation.data.dataset import open_dataset
from foundation.data.manifest import MANIFEST_NAME
from foundation.files import sha256_file
from foundation.models import Potential
from foundation.progress import progress_bar
from foundation.train.baselines import reference_energies


def _summary(values: list[np.ndarray]) -> dict[str, float]:
    v = np.concatenate([np.ravel(x) for x in values]) if values else np.zeros(0)
    if v.size == 0:
        return {"mae": float("nan"), "rmse": float("nan"), "n": 0}
    return {
        "mae": float(np.mean(np.abs(v))),
        "rmse": float(np.sqrt(np.mean(v**2))),
        "n": int(v.size),
    }


def describe_dataset(path: str | os.PathLike, split: str) -> dict[str, str]:
    path = Path(path)
    return {"path": str(path), "split": split, "manifest_sha256": sha256_file(path / MANIFEST_NAME)}


def zero_shot_errors(
    potential: Potential,
    path: str | os.PathLike,
    split: str = "test",
    *,
    max_frames: int | None = None,
    batch_size: int = 16,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Errors (prediction - label) of energy per atom, force components and stress components on the frames
    of `split` (a seeded subset of `max_frames`), with per-element MAE (energy over frames containing the
    element, forces over its atoms), the same summaries of the trivial baseline (the potential's element
    references and per-atom shift alone, zero forces, zero stress) under "baselines", and per data source the
    model's and the baseline's MAE side by side under "per_source"."""
    dataset = open_dataset(path, split=split)
    index = subset_indices(len(dataset), max_frames, seed)
    wanted = [k for k in ("energy", "forces", "stress") if k in potential.outputs]
    potential.eval().to(device)
    errors: dict[str, list[np.ndarray]] = defaultdict(list)
    baseline: dict[str, list[np.ndarray]] = defaultdict(
        list
    )  # element references only, zero forces, zero stress

    per_element: dict[int, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    per_source: dict[str, dict[str, list]] = defaultdict(
        lambda: defaultdict(list)
    )  # model and baseline errors
    for start in progress_bar(
        range(0, len(index), batch_size), desc=f"zero-shot {Path(path).name}/{split}", leave=False
    ):
        frames = [dataset[int(i)] for i in index[start : start + batch_size]]
        batch = collate_frames(
            frames,
            potential.cutoff,
            max_neighbours=potential.max_neighbours,
            dtype=potential.dtype,
            sources=potential.sources,
        ).to(torch.device(device))
        out = {
            k: v.detach().double().cpu().numpy()
            for k, v in potential(batch, compute=wanted).items()
        }
        if potential.energy_head is not None:
            out["reference"] = reference_energies(potential, batch).cpu().numpy()
        offset = 0
        for b, frame in enumerate(frames):
            n = frame.natoms
            elements = np.unique(frame.numbers)
            if "energy" in out and frame.energy is not None:
                e = (out["energy"][b] - frame.energy) / n
                errors["energy_per_atom"].append(np.array([e]))
                per_source[frame.source]["energy_per_atom"].append(np.array([e]))
                if "reference" in out:
                    reference = np.array([(out["reference"][b] - frame.energy) / n])
                    baseline["energy_per_atom"].append(reference)
                    per_source[frame.source]["energy_per_atom_baseline"].append(reference)
                for z in elements:
                    per_element[int(z)]["energy_per_atom"].append(abs(e))
            if "forces" in out and frame.forces is not None:
                f = out["forces"][offset : offset + n] - frame.forces
                errors["forces"].append(f)
                baseline["forces"].append(-frame.forces)
                per_source[frame.source]["forces"].append(f)
                per_source[frame.source]["forces_baseline"].append(-frame.forces)
                for z in elements:
                    per_element[int(z)]["forces"].append(np.abs(f[frame.numbers == z]).ravel())
            if "stress" in out and frame.stress is not None:
                errors["stress"].append(out["stress"][b] - frame.stress)
                baseline["stress"].append(-frame.stress)
            offset += n
    metrics = {k: _summary(v) for k, v in errors.items()}
    elements_out = {}
    for z in sorted(per_element):
        m = per_element[z]
        forces = np.concatenate(m["forces"]) if m["forces"] else np.zeros(0)
        elements_out[chemical_symbols[z]] = {
            "frames": len(m["energy_per_atom"]),
            "energy_per_atom_mae": float(np.mean(m["energy_per_atom"]))
            if m["energy_per_atom"]
            else None,
            "atoms": int(forces.size // 3),
            "forces_mae": float(forces.mean()) if forces.size else None,
        }
    sources_out = {
        name: {
            "frames": len(m["energy_per_atom"]) or len(m["forces"]),
            **{f"{k}_mae": _summary(v)["mae"] for k, v in m.items()},
        }
        for name, m in sorted(per_source.items())
    }
    return {
        "kind": "zeroshot",
        "n_frames": int(len(index)),
        "metrics": metrics,
        "per_element": elements_out,
        "per_source": sources_out,
        "baselines": {k: _summary(v) for k, v in baseline.items()},
        "errors": {k: np.concatenate([np.ravel(x) for x in v]).tolist() for k, v in errors.items()},
    }
