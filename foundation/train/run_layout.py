"""The files of a training run directory, named in this one place: training writes them, and evals, releases,
`foundation status`, the Slurm jobs and the studies read them through `RunLayout` and these constants.

    RUN_DIR/
        config.yaml            the resolved training config (written when the run starts or is submitted)
        metrics.jsonl          one JSON line per logging event ({"kind": "train"|"val", "step", "time", ...})
        train.log              time-stamped log lines
        tb/                    TensorBoard scalars
        checkpoints/
            step-00000100/     state.json (step, epoch, sampler position, schedule, ...), DeepSpeed's own
                               checkpoint, EMA weights, every rank's RNG (foundation/train/checkpoint.py)
            latest             text file naming the newest complete checkpoint directory
        best/, last/           exported models: the best validation loss so far, and the end of training
        slurm/                 the launcher's job files, when the run was submitted (foundation/slurm)

An exported model directory (best/, last/, or a release, foundation/release.py) holds model.safetensors
(consolidated fp32 EMA weights) and model.json (model config, normalisation, step, validation metrics).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONFIG = "config.yaml"
METRICS_LOG = "metrics.jsonl"
TEXT_LOG = "train.log"
TENSORBOARD = "tb"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
CHECKPOINT_STATE = "state.json"
BEST, LAST = "best", "last"
EXPORTS = (BEST, LAST)
MODEL_WEIGHTS = "model.safetensors"
MODEL_META = "model.json"


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run directory."""

    root: Path

    def __init__(self, root: str | os.PathLike):
        object.__setattr__(self, "root", Path(root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def metrics_log(self) -> Path:
        return self.root / METRICS_LOG

    @property
    def text_log(self) -> Path:
        return self.root / TEXT_LOG

    @property
    def tensorboard(self) -> Path:
        return self.root / TENSORBOARD

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def export(self, which: str) -> Path:
        """The exported model directory `which` ("best" or "last")."""
        if which not in EXPORTS:
            raise ValueError(f"which must be one of {EXPORTS}, got {which!r}")
        return self.root / which

    def exported_model(self, which: str = BEST) -> Path | None:
        """The exported model to load: the root itself when it holds one, else `which`/, else the other export
        (a run that has no best/ yet); None when there is none."""
        order = [self.root] + [self.export(w) for w in (which, *(w for w in EXPORTS if w != which))]
        return next(
            (d for d in order if (d / MODEL_WEIGHTS).is_file() and (d / MODEL_META).is_file()), None
        )

    def is_run(self) -> bool:
        """A training run directory: its config and at least one exported model."""
        return self.config.is_file() and any(
            (self.root / w / MODEL_WEIGHTS).is_file() for w in EXPORTS
        )
