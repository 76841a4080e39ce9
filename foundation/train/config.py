"""Typed configuration of a training run (configs/pretrain/*.yaml): `TrainRunConfig` and its sections.

Overrides use dotted names: `data.path=DIR`, `train.max_steps=N`, `run_dir=DIR` (a contract the README shows).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from foundation.config import ConfigError, load_config, save_config
from foundation.data.transfer import TransferPolicy
from foundation.train.run_layout import RunLayout


@dataclass
class SourceConfig:
    """One prepared dataset of a mixture (`data.sources`)."""

    path: str  # a prepared dataset (manifest.json)
    weight: float = 1.0  # share of each epoch's training atoms drawn from it (> 0)
    source: str | None = None  # tag every frame with this source (a set prepared untagged)


@dataclass
class DataConfig:
    path: str = "runs/data/demo"  # a prepared dataset (manifest.json); ignored with `sources`
    container: Literal["lmdb", "wds"] = (
        "lmdb"  # map-style LMDB or streaming WebDataset: the same batches
    )
    shard_url_base: str | None = (
        None  # wds shards read from here: http(s)://, pipe:... ({path}: where
    )
    # the shard's relative path goes); `path` may be a URL too
    train_split: str = "train"
    val_split: str = "val"
    max_atoms: int = 512  # micro-batches are filled up to this many atoms
    val_max_atoms: int | None = None  # defaults to max_atoms
    val_max_frames: int | None = None  # validate on the first N val frames (None: all)
    shuffle: Literal["shard", "global"] = (
        "shard"  # "shard": shard order, then frames within a shard (wds-safe)
    )
    num_workers: int = 1  # loader workers: they build the batches (graphs too, see graphs)
    # where neighbour graphs are built: "worker" (loader workers), "device" (the training process, on its device,
    # before each forward pass), "auto" (device when the run's device is CUDA, worker otherwise)
    graphs: Literal["worker", "device", "auto"] = "auto"
    prefetch_factor: int = 4
    max_neighbours: int | None = None  # None: the model's backbone.max_neighbours
    sources: list[SourceConfig] = field(
        default_factory=list
    )  # several prepared datasets mixed by weight
    default_source: str | None = None  # the source a released model's energies refer to (None: the
    # one with the most training frames)
    validation_sources: list[str] = field(
        default_factory=list
    )  # source patterns (fnmatch) whose val frames make
    # the validation loss (best checkpoint, early stopping, plateau);
    # other frames are reported as excluded/...; []: every frame
    fit_check_frames: int = 0  # at each validation also evaluate N evenly spaced training frames
    # (those of validation_sources), logged as fit/...: train ~ val
    # error means underfitting; 0: off
    transfer_timeout: float = 60.0  # s without a byte from a URL (manifest, shard): an error
    transfer_retries: int = 3  # further attempts after a transient failure (backoff 1, 2, 4 ... s)

    @property
    def transfer(self) -> TransferPolicy:
        """How reads from URLs wait and retry (data/transfer.py)."""
        return TransferPolicy(self.transfer_timeout, self.transfer_retries)


@dataclass
class ObjectiveConfig:
    """Loss = sum of weight * term; a weight of 0 turns a term off. Derivative or direct is the model's heads."""

    energy_weight: float = 1.0
    forces_weight: float = 1.0
    stress_weight: float = 0.0
    denoise_weight: float = 0.0
    energy_basis: Literal["per_atom", "total"] = "per_atom"
    loss: Literal["mse", "l1", "huber"] = "mse"
    huber_delta: float = 0.01
    energy_loss: Literal["mse", "l1", "huber"] | None = (
        None  # the energy term's own loss (None: `loss`); "huber"
    )
    energy_huber_delta: float = 0.1  # eV/atom: quadratic below, linear above (robust to outliers)
    forces_loss: Literal["mse", "l1", "huber", "atom_huber"] | None = (
        None  # the forces term's own loss (None: `loss`); "atom_huber": Huber of each atom's |F error|
    )
    forces_huber_delta: float = 0.1  # eV/A, for forces_loss huber / atom_huber
    noise_std: float = 0.1  # A; Gaussian noise on positions for denoising


@dataclass
class OptimizerConfig:
    lr: float = 1.0e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1.0e-8


@dataclass
class ScheduleConfig:
    kind: Literal["cosine", "plateau", "constant"] = "cosine"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.01  # cosine ends at lr * min_lr_ratio
    plateau_factor: float = 0.5  # plateau: lr *= factor after `plateau_patience` validations
    plateau_patience: int = 3  #   without improvement of the validation loss


@dataclass
class EngineConfig:
    zero_stage: int = 0  # 0, 1 or 2; 3 is refused (second-order gradients)
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    grad_accum: int = 1  # micro-batches per optimizer step and rank
    grad_clip: float = 10.0  # max global gradient norm; 0 turns clipping off
    ema_decay: float = 0.999  # EMA of the weights for validation/export; 0: no EMA
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # a rank waiting this long on its peers in a collective (a dead or frozen node) raises instead of hanging
    collective_timeout_s: float = 1800.0


@dataclass
class TrainConfig:
    max_steps: int = 1000  # optimizer steps
    seed: int = 0
    log_every: int = 10
    val_every: int = 100  # and at the end
    checkpoint_every: int = 100  # and at the end
    keep_checkpoints: int = 3
    progress: bool = True  # tqdm bar on rank 0
    early_stop_patience: int = 0  # stop after this many validations without a new best
    # validation loss (0: train to max_steps)


@dataclass
class FinetuneConfig:
    """Start from a released (or trained) potential instead of random weights (foundation.train.finetune)."""

    parent: str  # a release directory or a training run directory
    parent_which: Literal["best", "last"] = "best"  # the export of a run directory to start from
    freeze_embedding: bool = False  # keep the element embedding as the parent learned it
    freeze_layers: int = 0  # keep the first k interaction layers
    backbone_lr_scale: float = 1.0  # backbone lr = lr * scale (heads: lr)
    replay_path: str | None = None  # a prepared dataset of pre-training frames (LMDB) to replay
    replay_split: str = "train"
    replay_fraction: float = 0.0  # fraction of each epoch's training frames drawn from it


@dataclass
class TrainRunConfig:
    model: Any = "scalable-xs"  # a name under configs/model/, a YAML path, or a mapping
    model_overrides: list[str] = field(
        default_factory=list
    )  # dotted edits of the model config: heads.forces=direct
    run_dir: str = "runs/train/default"
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    engine: EngineConfig = field(default_factory=EngineConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    finetune: FinetuneConfig | None = None  # fine-tune a parent potential (configs/finetune/)

    def __post_init__(self) -> None:
        check_config(self)


def check_config(cfg: TrainRunConfig) -> None:
    """Refuse combinations that cannot train correctly, with the reason."""
    if cfg.engine.zero_stage == 3:
        raise ConfigError(
            "engine.zero_stage: 3 is not supported: forces and stresses are derivatives of the energy, "
            "so their losses need second-order gradients through the parameters, and ZeRO-3 "
            "gathers/releases partitioned parameters around forward and backward hooks in a way "
            "that breaks double backward. Use zero_stage 0, 1 or 2."
        )
    if cfg.engine.zero_stage not in (0, 1, 2):
        raise ConfigError(f"engine.zero_stage: {cfg.engine.zero_stage} is not one of 0, 1, 2")
    if cfg.data.container == "wds" and cfg.data.shuffle == "global":
        raise ConfigError(
            "data.shuffle: global needs random access; WebDataset shards stream, use shuffle: shard"
        )
    weights = cfg.objective
    if (
        min(
            weights.energy_weight,
            weights.forces_weight,
            weights.stress_weight,
            weights.denoise_weight,
        )
        < 0
    ):
        raise ConfigError("objective weights must be >= 0")
    if not (
        weights.energy_weight
        or weights.forces_weight
        or weights.stress_weight
        or weights.denoise_weight
    ):
        raise ConfigError("objective: every weight is 0, nothing to train")
    for name in ("max_steps", "log_every", "val_every", "checkpoint_every", "keep_checkpoints"):
        if getattr(cfg.train, name) < 1:
            raise ConfigError(f"train.{name} must be >= 1")
    if cfg.train.early_stop_patience < 0:
        raise ConfigError(
            f"train.early_stop_patience must be >= 0 (0: off), got {cfg.train.early_stop_patience}"
        )
    if cfg.data.fit_check_frames < 0:
        raise ConfigError(
            f"data.fit_check_frames must be >= 0 (0: off), got {cfg.data.fit_check_frames}"
        )
    if any(not str(p).strip() for p in cfg.data.validation_sources):
        raise ConfigError(
            f"data.validation_sources must be non-empty source names or patterns, got "
            f"{cfg.data.validation_sources}"
        )
    if cfg.engine.grad_accum < 1 or cfg.data.max_atoms < 1:
        raise ConfigError("engine.grad_accum and data.max_atoms must be >= 1")
    check_ranges(cfg)
    check_sources(cfg.data)
    if cfg.finetune is not None:
        check_finetune(cfg)


def check_sources(data: DataConfig) -> None:
    """A mixture: positive finite weights, each dataset once, non-empty source names."""
    for i, entry in enumerate(data.sources):
        if not entry.weight > 0 or entry.weight == float("inf"):
            raise ConfigError(
                f"data.sources[{i}] ({entry.path}): weight must be a finite number > 0, got {entry.weight}"
            )
        if entry.source is not None and not entry.source.strip():
            raise ConfigError(
                f"data.sources[{i}] ({entry.path}): source must be a non-empty name or unset"
            )
    paths = [os.path.abspath(e.path) for e in data.sources]
    if len(set(paths)) != len(paths):
        raise ConfigError(f"data.sources lists a dataset twice: {[e.path for e in data.sources]}")
    if data.sources and data.shard_url_base is not None:
        raise ConfigError(
            "data.shard_url_base applies to data.path alone: in a mixture, give each data.sources "
            "path as the dataset's URL"
        )


def check_ranges(cfg: TrainRunConfig) -> None:
    """Refuse values outside their range (NaN included) when the config is loaded, before anything starts."""
    opt, eng, obj, sch, data = cfg.optimizer, cfg.engine, cfg.objective, cfg.schedule, cfg.data
    rules = [
        ("optimizer.lr", opt.lr, opt.lr > 0, "> 0"),
        ("optimizer.weight_decay", opt.weight_decay, opt.weight_decay >= 0, ">= 0"),
        ("optimizer.betas", list(opt.betas), all(0 <= b < 1 for b in opt.betas), "in [0, 1)"),
        ("optimizer.eps", opt.eps, opt.eps > 0, "> 0"),
        ("engine.ema_decay", eng.ema_decay, 0 <= eng.ema_decay < 1, "in [0, 1) (0: no EMA)"),
        ("engine.grad_clip", eng.grad_clip, eng.grad_clip >= 0, ">= 0 (0: no clipping)"),
        (
            "engine.collective_timeout_s",
            eng.collective_timeout_s,
            eng.collective_timeout_s > 0,
            "> 0",
        ),
        (
            "objective.noise_std",
            obj.noise_std,
            obj.noise_std > 0 if obj.denoise_weight else obj.noise_std >= 0,
            "> 0 with denoising" if obj.denoise_weight else ">= 0",
        ),
        *(
            (f"objective.{key}", getattr(obj, key), getattr(obj, key) > 0, "> 0")
            for key in ("huber_delta", "energy_huber_delta", "forces_huber_delta")
        ),
        ("schedule.warmup_steps", sch.warmup_steps, sch.warmup_steps >= 0, ">= 0"),
        ("schedule.min_lr_ratio", sch.min_lr_ratio, 0 <= sch.min_lr_ratio <= 1, "in [0, 1]"),
        ("schedule.plateau_factor", sch.plateau_factor, 0 < sch.plateau_factor < 1, "in (0, 1)"),
        ("schedule.plateau_patience", sch.plateau_patience, sch.plateau_patience >= 1, ">= 1"),
        ("data.num_workers", data.num_workers, data.num_workers >= 0, ">= 0"),
        ("data.prefetch_factor", data.prefetch_factor, data.prefetch_factor >= 1, ">= 1"),
        ("data.transfer_timeout", data.transfer_timeout, data.transfer_timeout > 0, "> 0"),
        ("data.transfer_retries", data.transfer_retries, data.transfer_retries >= 0, ">= 0"),
    ]
    for name, value, ok, rule in rules:
        if not ok:
            raise ConfigError(f"{name} must be {rule}, got {value}")


def check_finetune(cfg: TrainRunConfig) -> None:
    ft = cfg.finetune
    if cfg.model_overrides:
        raise ConfigError(
            "model_overrides cannot be combined with finetune: the model is the parent's"
        )
    if ft.freeze_layers < 0 or ft.backbone_lr_scale < 0:
        raise ConfigError("finetune.freeze_layers and finetune.backbone_lr_scale must be >= 0")
    if not 0.0 <= ft.replay_fraction < 1.0:
        raise ConfigError(f"finetune.replay_fraction must lie in [0, 1), got {ft.replay_fraction}")
    if ft.replay_fraction > 0 and not ft.replay_path:
        raise ConfigError(
            "finetune.replay_fraction > 0 needs finetune.replay_path (a prepared pre-training dataset)"
        )
    if cfg.data.sources:
        raise ConfigError(
            "finetune with data.sources (a mixture) is not supported: give one data.path"
        )
    if ft.replay_path and cfg.data.container != "lmdb":
        raise ConfigError(
            "finetune.replay_path needs data.container: lmdb (replayed frames are drawn at random)"
        )


def load_train_config(
    source: str | os.PathLike | dict | None, overrides: Sequence[str] = ()
) -> TrainRunConfig:
    """A TrainRunConfig from a YAML path (or mapping) plus dotted overrides (`data.path=DIR`, ...)."""
    return load_config(TrainRunConfig, source, overrides)


def resolve_run_config(
    config_path: str | os.PathLike | None,
    overrides: Sequence[str] = (),
    run_dir: str | os.PathLike | None = None,
) -> TrainRunConfig:
    """The config of a run to start or resume: a file plus overrides, or RUN_DIR/config.yaml when only the run
    directory is given (`--resume RUN_DIR`); run_dir, when given, is the run directory either way."""
    if config_path is None and run_dir is None:
        raise ConfigError("give --config FILE (or --resume RUN_DIR)")
    overrides = list(overrides) + ([f"run_dir={run_dir}"] if run_dir is not None else [])
    source = config_path if config_path is not None else RunLayout(run_dir).config
    return load_train_config(source, overrides)


def write_run_config(
    config_path: str | os.PathLike | None,
    overrides: Sequence[str] = (),
    run_dir: str | os.PathLike | None = None,
) -> Path:
    """Resolve a run's config (see resolve_run_config) into RUN_DIR/config.yaml and return that path: what a job
    submitted to a cluster reads."""
    config = resolve_run_config(config_path, overrides, run_dir)
    path = RunLayout(config.run_dir).config
    path.parent.mkdir(parents=True, exist_ok=True)
    save_config(config, path)
    return path
