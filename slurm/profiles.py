"""Cluster profiles: the Slurm resources a launch asks for, typed, from configs/cluster/NAME.yaml.

A profile is chosen with `--cluster NAME` (a file in configs/cluster/ or a path to a YAML file) and overridden
with `cluster.KEY=VALUE` arguments, e.g. `cluster.time_min=30 cluster.nodes=4`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from foundation.config import ConfigError, load_config
from foundation.resources import configs_dir

PROFILE_DIR = configs_dir() / "cluster"
OVERRIDE_PREFIX = "cluster."


@dataclasses.dataclass
class ArrayResources:
    """Per-task resources of array jobs (data-prep chunks, eval units, sweep points): one task on one node each."""

    cpus_per_task: int = 1
    gpus_per_task: int = 0
    mem_gb: float | None = None
    time_min: int | None = None  # None: the profile's time_min
    parallelism: int = 64  # how many array tasks may run at once


@dataclasses.dataclass
class ClusterProfile:
    """Where and how big a job is; the training job uses one task per GPU (or per CPU slot) on every node."""

    name: str = "default"
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 60
    nodes: int = 1
    tasks_per_node: int = 1
    gpus_per_node: int = 0
    cpus_per_task: int = 1
    mem_gb: float | None = None  # per node; None: the cluster's default
    constraint: str | None = None
    extra_sbatch: list[str] = dataclasses.field(
        default_factory=list
    )  # e.g. "--exclusive", "--gres=gpu:a100:4"
    setup: list[str] = dataclasses.field(
        default_factory=list
    )  # shell lines run before srun (modules, env vars)
    signal_delay_s: int = (
        120  # Slurm sends USR2 this long before the time limit: checkpoint and requeue
    )
    max_requeues: int = 5  # how many time-limit requeues a job may take
    slurm_conf: str | None = (
        None  # the slurm.conf naming the cluster (SLURM_CONF of sbatch, scontrol and the job); None: the default
    )
    array: ArrayResources = dataclasses.field(default_factory=ArrayResources)

    def __post_init__(self) -> None:
        for key in ("time_min", "nodes", "tasks_per_node", "cpus_per_task"):
            if getattr(self, key) < 1:
                raise ConfigError(
                    f"cluster profile {self.name!r}: {key} must be >= 1, got {getattr(self, key)}"
                )
        if self.gpus_per_node and self.tasks_per_node != self.gpus_per_node:
            raise ConfigError(
                f"cluster profile {self.name!r}: one task per GPU is required "
                f"(tasks_per_node={self.tasks_per_node}, gpus_per_node={self.gpus_per_node})"
            )
        for line in self.extra_sbatch:
            sbatch_option(line)

    @property
    def world_size(self) -> int:
        return self.nodes * self.tasks_per_node


def sbatch_option(line: str) -> tuple[str, str | bool]:
    """'--gres=gpu:4' or '#SBATCH --exclusive' -> ('gres', 'gpu:4') / ('exclusive', True)."""
    text = line.strip()
    if text.startswith("#SBATCH"):
        text = text[len("#SBATCH") :].strip()
    if not text.startswith("--") or " " in text.split("=", 1)[0]:
        raise ConfigError(f"extra_sbatch line {line!r} must look like '--key=value' or '--flag'")
    key, _, value = text[2:].partition("=")
    return key, (value if value else True)


def profile_path(name: str) -> Path:
    """A profile name (configs/cluster/NAME.yaml) or a path to a YAML file."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))
        raise ConfigError(
            f"no cluster profile {name!r}: {path} does not exist (known: {', '.join(known)})"
        )
    return path


def split_overrides(overrides: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate `cluster.KEY=VALUE` overrides (prefix removed) from the job's own overrides."""
    cluster = [o[len(OVERRIDE_PREFIX) :] for o in overrides if o.startswith(OVERRIDE_PREFIX)]
    rest = [o for o in overrides if not o.startswith(OVERRIDE_PREFIX)]
    return cluster, rest


def load_profile(name: str, overrides: Sequence[str] = ()) -> ClusterProfile:
    """Load a cluster profile by name or path and apply `KEY=VALUE` overrides (without the `cluster.` prefix)."""
    path = profile_path(name)
    profile = load_config(ClusterProfile, path, overrides)
    if profile.name == "default":
        profile.name = path.stem
    return profile
