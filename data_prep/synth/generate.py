"""Generate teacher-labelled non-equilibrium frames in parallel and write them as extended XYZ.

Structure `i` of a run is a pure function of (seed, i): a seed structure and its decoration, size, strain,
rattle and relaxation all draw from `numpy.random.default_rng([seed, i])`. Structures are gathered in index
order and the list is cut at `frames`, so the output is the same for any number of workers.
Each structure yields one strained and rattled frame (source `<teacher>-rattle`) or, with probability
`relax_probability`, every `keep_every`-th step of a short FIRE relaxation of positions and cell from a
strained and rattled start (source `<teacher>-relax`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from foundation.data_prep.synth.perturb import (
    rattle,
    relaxation_trajectory,
    repeat_to_min_atoms,
    strain,
)
from foundation.data_prep.synth.seeds import Seed, decorate, seed_catalogue
from foundation.data_prep.synth.teachers import (
    Teacher,
    make_calculator,
    one_torch_thread,
    resolve_teacher,
    snapshot,
)

from foundation.config import save_config
from foundation.data.ase_convert import atoms_from_frame, frame_from_atoms
from foundation.data.schema import Frame
from foundation.files import atomic_path
from foundation.processes import worker_context
from foundation.progress import progress_bar

log = logging.getLogger(__name__)


@dataclass
class SynthConfig:
    """What `foundation synth` generates (written beside the output as FILE.synth.yaml)."""

    frames: int = 1000
    teacher: Literal["auto", "chgnet", "emt"] = "auto"
    seed: int = 0
    workers: int = 1
    atoms_range: tuple[int, int] = (
        4,
        16,
    )  # each seed is repeated until it holds at least a number of atoms
    #                                         drawn uniformly from this range (inclusive)
    max_seed_atoms: int = 16  # prototypes larger than this are not used
    strain_sigma: float = 0.03  # standard deviation of the symmetric strain components
    rattle_min: float = (
        0.02  # the rattle's standard deviation (A) is drawn uniformly in [rattle_min, rattle_max]
    )
    rattle_max: float = 0.2
    relax_probability: float = (
        0.1  # fraction of structures relaxed (the rest give one rattled frame)
    )
    relax_steps: int = 40
    keep_every: int = 4
    relax_fmax: float = 0.05  # eV/A; a relaxation stops early when converged
    max_force: float = (
        50.0  # eV/A; frames with a larger |F| on any atom are left out and counted (prep's bound)
    )


class _Generator:
    """Everything a process needs to label structures: the teacher, its calculator and the seed catalogue."""

    def __init__(self, config: SynthConfig, teacher: Teacher):
        self.config, self.teacher = config, teacher
        self.seeds: tuple[Seed, ...] = seed_catalogue(
            teacher.elements, teacher.metallic_only, config.max_seed_atoms
        )
        self.calc = make_calculator(teacher)

    def structure_frames(self, index: int) -> tuple[list[Frame], int]:
        """The labelled frames of structure `index` (those within `max_force`) and how many were labelled."""
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, index])
        name, atoms = decorate(
            self.seeds[rng.integers(len(self.seeds))], self.teacher.elements, rng
        )
        atoms = repeat_to_min_atoms(
            atoms, int(rng.integers(cfg.atoms_range[0], cfg.atoms_range[1] + 1))
        )
        relax = rng.random() < cfg.relax_probability
        atoms = rattle(strain(atoms, rng, cfg.strain_sigma), rng, (cfg.rattle_min, cfg.rattle_max))
        atoms.calc = self.calc
        stem = f"{name}-s{cfg.seed}-{index:07d}"
        if relax:
            kind, labelled = (
                "relax",
                relaxation_trajectory(atoms, cfg.relax_steps, cfg.keep_every, cfg.relax_fmax),
            )
        else:
            kind, labelled = "rattle", [(None, snapshot(atoms))]
        frames = [
            frame_from_atoms(
                snap,
                frame_id=f"{stem}-{kind}" if step is None else f"{stem}-{kind}-{step}",
                structure_id=name,
                source=f"{self.teacher.source}-{kind}",
            )
            for step, snap in labelled
        ]
        return [
            f for f in frames if np.sqrt((f.forces**2).sum(axis=1).max()) <= cfg.max_force
        ], len(frames)


_WORKER: _Generator | None = None


def _init_worker(config: SynthConfig, teacher: Teacher) -> None:
    global _WORKER
    if teacher.name == "chgnet":  # as one_torch_thread, for the worker's lifetime
        import torch

        torch.set_num_threads(1)
    _WORKER = _Generator(config, teacher)


def _worker_frames(index: int) -> tuple[list[Frame], int]:
    assert _WORKER is not None
    return _WORKER.structure_frames(index)


def _expected_frames_per_structure(config: SynthConfig) -> float:
    relax_frames = config.relax_steps // config.keep_every + 1
    return (1 - config.relax_probability) + config.relax_probability * relax_frames


def generate_frames(config: SynthConfig, progress: bool = True) -> list[Frame]:
    """Exactly `config.frames` labelled frames, identical for any `config.workers`."""
    if min(config.frames, config.workers, config.keep_every, *config.atoms_range) < 1:
        raise ValueError(f"frames, workers, keep_every and atoms_range must be positive: {config}")
    teacher = resolve_teacher(config.teacher)
    frames: list[Frame] = []
    start, too_large = 0, 0
    with contextlib.ExitStack() as stack:
        bar = stack.enter_context(
            progress_bar(
                total=config.frames, unit="frame", desc=f"synth ({teacher.name})", enabled=progress
            )
        )
        if config.workers > 1:
            # workers use one torch thread, as DataLoader workers do
            pool = worker_context([__name__]).Pool(config.workers, _init_worker, (config, teacher))
            stack.callback(pool.join)
            stack.enter_context(pool)  # terminates the workers on exit, then join
            label = functools.partial(pool.imap, _worker_frames)
        else:
            stack.enter_context(one_torch_thread(teacher))
            local = _Generator(config, teacher)

            def label(indices, chunksize):  # pool.imap's signature; one process needs no chunks
                return map(local.structure_frames, indices)

        while len(frames) < config.frames:
            missing = config.frames - len(frames)
            count = max(
                4 * config.workers,
                math.ceil(1.1 * missing / _expected_frames_per_structure(config)),
            )
            for batch, labelled in label(
                range(start, start + count), chunksize=max(1, count // (8 * config.workers))
            ):
                take = batch[: config.frames - len(frames)]
                frames.extend(take)
                too_large += labelled - len(batch)
                bar.update(len(take))
                if len(frames) >= config.frames:
                    break
            start += count
    if too_large:
        log.warning("synth: left out %d frames with |F| above %g eV/A", too_large, config.max_force)
    return frames


def write_extxyz(path: str | os.PathLike, frames: list[Frame]) -> Path:
    """Write frames as extended XYZ (energy, stress and the ids in the comment line; forces, magmoms per atom)."""
    images = []
    for frame in frames:
        atoms = atoms_from_frame(frame)
        results = {"energy": frame.energy, "forces": frame.forces, "stress": frame.stress}
        if frame.magmoms is not None:
            results["magmoms"] = frame.magmoms
        atoms.calc = SinglePointCalculator(
            atoms, **{k: v for k, v in results.items() if v is not None}
        )
        atoms.info.update(
            structure_id=frame.structure_id, frame_id=frame.frame_id, source=frame.source
        )
        images.append(atoms)
    with atomic_path(path) as tmp:
        ase.io.write(tmp, images, format="extxyz")
    return Path(path)


def synthesize(out: str | os.PathLike, config: SynthConfig, progress: bool = True) -> Path:
    """Generate `config.frames` frames into the extended XYZ file `out`; the resolved config goes to
    `out` with suffix `.synth.yaml` (teacher 'auto' resolved). Returns `out`."""
    out = Path(out)
    resolved = SynthConfig(**{**vars(config), "teacher": resolve_teacher(config.teacher).name})
    write_extxyz(out, generate_frames(resolved, progress=progress))
    save_config(resolved, out.with_suffix(".synth.yaml"))
    return out
