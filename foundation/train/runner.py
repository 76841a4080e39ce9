"""`run_training(config)`: one training run in this process (world of one, or one rank of a torchrun/Slurm job
when WORLD_SIZE is set), resuming from the run directory's newest complete checkpoint."""

from __future__ import annotations

import copy
import dataclasses
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from foundation.config import ConfigError, save_config, to_dict
from foundation.data.manifest import Manifest
from foundation.errors import UserError, writing
from foundation.locking import DirectoryLock
from foundation.models import build_potential, resolve_model_config
from foundation.train import checkpoint as ckpt
from foundation.train.config import TrainRunConfig, load_train_config
from foundation.train.datasets import BatchBuilder
from foundation.train.device_feed import DeviceFeed, graph_place
from foundation.train.distributed import DistInfo, any_rank, init_distributed, shutdown
from foundation.train.ema import EMA
from foundation.train.engine import build_engine
from foundation.train.finetune import prepare_finetune
from foundation.train.loader import build_split_loader
from foundation.train.loop import STOP, LoopState, Trainer
from foundation.train.mixture import SourceInfo, build_mixture_loader, datasets_of, resolve_sources
from foundation.train.objectives import Objective
from foundation.train.replay import build_replay_loader
from foundation.train.resume_check import check_resume_config
from foundation.train.run_layout import RunLayout
from foundation.train.run_log import RunLogger
from foundation.train.schedule import LRSchedule
from foundation.train.validation import fit_check_loader, split_by_source

__all__ = ["TrainTask", "load_train_config", "request_stop", "run_training"]
CACHE_DIR = Path(__file__).resolve().parents[2] / ".cache"


def request_stop() -> None:
    """Ask the running loop to finish its current step, checkpoint on every rank, and return (stopped=True)."""
    STOP.set()


def normalization_from_manifest(manifest: Manifest) -> dict[str, Any]:
    """Output normalisation from the manifest (data_prep's statistics of the train split): element reference
    energies (eV), scale = force RMS (eV/A; per-atom outputs of O(1) give forces of the right size), shift = mean
    per-atom energy left after the references; and the direct heads' scales, forces_scale = force RMS and
    stress_scale = stress RMS (eV/A^3). Missing statistics leave scale 1 and shift 0."""
    stats = manifest.statistics or {}
    scale, shift = stats.get("force_rms"), stats.get("energy_per_atom_mean")
    stress = stats.get("stress_rms")
    return {
        "element_references": dict(manifest.element_references),
        "scale": float(scale) if scale else 1.0,
        "shift": float(shift) if shift is not None else 0.0,
        "forces_scale": float(scale) if scale else 1.0,
        "stress_scale": float(stress) if stress else 1.0,
    }


def normalization_from_data(config: TrainRunConfig, sources: SourceInfo) -> dict[str, Any]:
    """The normalisation of a run's data: one dataset of one source, that dataset's (normalization_from_manifest);
    several datasets: force and stress RMS pooled over them (weighted by training frames), the mean shift; several
    sources: besides, the element references of each source (`source_references`), the default source's as
    `element_references`, and shift 0 (each source's references leave its residuals centred)."""
    entries = datasets_of(config.data)
    manifests = [Manifest.load(e.path, config.data.transfer) for e in entries]
    parts = [normalization_from_manifest(m) for m in manifests]
    if len(parts) == 1 and not sources.several:
        return parts[0]
    frames = np.array(
        [max(m.num_frames(config.data.train_split), 1) for m in manifests], dtype=np.float64
    )
    share = frames / frames.sum()
    pooled = {
        key: float(np.sqrt(sum(w * p[key] ** 2 for w, p in zip(share, parts))))
        for key in ("scale", "forces_scale", "stress_scale")
    }
    out = {**parts[0], **pooled, "shift": float(sum(w * p["shift"] for w, p in zip(share, parts)))}
    if sources.several:
        out.update(
            element_references=dict(sources.references[sources.default]),
            shift=0.0,
            source_references={name: dict(refs) for name, refs in sources.references.items()},
        )
    return out


def build_model(config: TrainRunConfig) -> tuple[Any, dict[str, Any]]:
    """A new model for the run's data and its normalisation: with frames of two or more sources, the energy head
    gets a reference per source (heads.sources, heads.default_source) unless the model config fixes them."""
    model_config = resolve_model_config(config.model, config.model_overrides)
    heads = model_config.heads
    sources = resolve_sources(config.data, heads.sources)
    if sources.several:
        names = heads.sources or sources.names
        default = config.data.default_source or heads.default_source or sources.default
        model_config = dataclasses.replace(
            model_config,
            heads=dataclasses.replace(heads, sources=list(names), default_source=default),
        )
    return build_potential(model_config), normalization_from_data(config, sources)


def apply_normalization(model: Any, normalization: dict[str, Any], noise_std: float | None) -> None:
    """Set the normalisation on the heads the model has (energy terms only with an energy head); a direct
    denoising head is scaled by the noise std."""
    energy_keys = ("element_references", "scale", "shift", "source_references")
    parts = {
        k: v
        for k, v in normalization.items()
        if k not in energy_keys or model.energy_head is not None
    }
    model.set_normalization(**parts, noise_scale=noise_std)


def build_loader(data, split: str, builder: BatchBuilder, **options):
    """A mixture's loader when `data.sources` lists datasets, else the one dataset's."""
    return (build_mixture_loader if data.sources else build_split_loader)(
        data, split, builder, **options
    )


def _install_signal_handlers() -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {}
    for sig in (signal.SIGUSR2, signal.SIGTERM):
        previous[sig] = signal.signal(sig, lambda *_: request_stop())
    return previous


def lock_run_dir(run_dir: Path, info: DistInfo) -> DirectoryLock | None:
    """One training run per run directory: rank 0 takes its lock, held until the run ends. When it cannot (another
    run holds it, the directory cannot be written) every rank raises, rank 0 with the reason."""
    lock, error = None, None
    if info.is_main:
        try:
            lock = DirectoryLock(run_dir).acquire()
        except (
            Exception
        ) as exc:  # the other ranks must stop too, whatever kept rank 0 from the lock
            error = exc
    if any_rank(error is not None, info.device):
        if error is not None:
            raise error
        raise UserError(
            f"{run_dir}: rank 0 could not take the run directory's lock (its error says why)"
        )
    return lock


def run_training(config: TrainRunConfig, allow_config_change: bool = False) -> dict:
    """Train (or resume) the run described by `config`; returns a summary: step, epoch, stopped, val metrics,
    best_val/best_step, and the paths of run_dir, the latest checkpoint, best/ and last/ (None when absent).
    Resuming with a changed data path or model is a ConfigError unless `allow_config_change`
    (train/resume_check.py); every changed key is logged."""
    previous = (
        _install_signal_handlers()
    )  # a stop requested before the first step is honoured at that step
    info, logger, lock, clean = None, None, None, False
    try:
        info = init_distributed(config.engine.device, config.engine.collective_timeout_s)
        run_dir = Path(config.run_dir)
        lock = lock_run_dir(run_dir, info)
        torch.manual_seed(config.train.seed)
        start = prepare_finetune(config) if config.finetune is not None else None
        if (
            start is not None
        ):  # the parent's architecture, weights and normalisers; references re-fitted
            config, model, normalization = start.config, start.model, start.normalization
            if model.sources:
                raise ConfigError(
                    f"{config.finetune.parent}: fine-tuning a potential with an energy reference per "
                    f"source {list(model.sources)} is not supported yet (one re-fitted reference "
                    "table would not be used); fine-tune a single-source potential"
                )
        else:
            model, normalization = build_model(config)
        apply_normalization(model, normalization, config.objective.noise_std)
        eval_model = copy.deepcopy(model).to(info.device).eval()
        objective = Objective(config.objective)
        graphs = graph_place(config.data.graphs, info.device)
        builder = BatchBuilder(
            model.cutoff,
            config.data.max_neighbours or model.max_neighbours,
            clean=objective.needs_clean,
            noise_std=config.objective.noise_std if objective.needs_noisy else 0.0,
            seed=config.train.seed,
            sources=tuple(model.sources),
            build_graph=graphs == "worker",
        )
        common = dict(
            rank=info.rank,
            world_size=info.world_size,
            grad_accum=config.engine.grad_accum,
            seed=config.train.seed,
            pin_memory=info.device.type == "cuda",
        )
        if start is not None and config.finetune.replay_path:
            train = build_replay_loader(
                config.data,
                config.finetune.replay_path,
                config.finetune.replay_fraction,
                start.replay_energy_shift,
                builder,
                replay_split=config.finetune.replay_split,
                **common,
            )
        else:
            train = build_loader(
                config.data, config.data.train_split, builder, train=True, **common
            )
        val, val_excluded = split_by_source(
            build_loader(config.data, config.data.val_split, builder, train=False, **common),
            config.data.validation_sources,
        )
        fit_check = None
        if config.data.fit_check_frames:
            every_train_frame = dataclasses.replace(config.data, val_max_frames=None)
            fit_check = fit_check_loader(
                build_loader(
                    every_train_frame, config.data.train_split, builder, train=False, **common
                ),
                config.data.validation_sources,
                config.data.fit_check_frames,
            )
        engine = build_engine(model, config, info.world_size, info.device, CACHE_DIR)
        ema = EMA(engine.module, config.engine.ema_decay)
        schedule = LRSchedule(config.schedule, config.optimizer, config.train.max_steps)
        state = LoopState()
        latest = ckpt.latest_checkpoint(run_dir)
        if latest is not None:
            saved, ema_tensors = ckpt.load_checkpoint(
                latest, engine, rank=info.rank, world_size=info.world_size
            )
            state = LoopState(
                **{k: saved[k] for k in ("step", "epoch", "position", "best_val", "best_step")}
            )
            schedule.load_state_dict(saved["schedule"])
            ema.load_shadow(ema_tensors, saved["ema_updates"])
        changes = (
            []
            if latest is None
            else check_resume_config(RunLayout(run_dir).config, config, allow_config_change)
        )
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, RunLayout(run_dir).config)
        logger = RunLogger(
            run_dir,
            enabled=info.is_main,
            progress=config.train.progress,
            total_steps=config.train.max_steps,
            initial_step=state.step,
        )
        if latest is not None:
            logger.line(
                f"resumed from {latest} (step {state.step}, epoch {state.epoch}, position {state.position})"
            )
        for line in changes:
            logger.line(line, logging.WARNING)
        where = "in the loader workers" if graphs == "worker" else f"on {info.device}"
        logger.line(f"neighbour graphs built {where} (data.graphs: {config.data.graphs})")
        meta = {"model": to_dict(model.config), "normalization": normalization}
        if start is not None:
            meta["parent"] = start.parent.identity
        trainer = Trainer(
            config,
            info,
            engine,
            eval_model,
            objective,
            train,
            val,
            ema,
            schedule,
            logger,
            state,
            meta,
            feed=DeviceFeed(info.device, builder),
            val_excluded=val_excluded,
            fit_check=fit_check,
        )
        with writing(run_dir):
            summary = trainer.run()
        clean = True
        return summary
    finally:
        if logger is not None:
            logger.close()
        if info is not None:
            shutdown(info, clean)
        if lock is not None:
            lock.release()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        STOP.clear()  # consumed: the next run in this process starts unstopped


@dataclass(frozen=True)
class TrainTask:
    """A training run as a resumable job (foundation.jobs.Resumable): two paths and nothing else, so a requeued
    or resubmitted job always resumes from the run directory's newest complete checkpoint."""

    run_dir: str
    config_path: str

    def __call__(self) -> dict:
        return run_training(load_train_config(self.config_path, [f"run_dir={self.run_dir}"]))

    def stop(self) -> None:
        request_stop()
