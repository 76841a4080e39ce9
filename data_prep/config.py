"""Typed options of `foundation prep` (one dataclass; the run writes it resolved as DIR/prep_config.yaml)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from foundation.data_prep.split import GROUP_RULES

FORMATS = ("auto", "extxyz", "mptrj", "vasp-outcar", "vasp-xml", "asedb", "alexandria", "records")
CONTAINER_CHOICES = {"lmdb": ("lmdb",), "wds": ("wds",), "both": ("lmdb", "wds")}
LABELS = ("energy", "forces", "stress")
# Options that change neither chunk outputs nor the merged dataset (left out of fingerprints).
_RUNTIME_ONLY = ("inputs", "out", "workers", "keep_work", "progress")
# Options that only the merge reads (chunk outputs do not depend on them).
_MERGE_ONLY = ("container", "shard_size", "dedup", "max_energy_residual")


@dataclass
class PrepConfig:
    """Everything that decides how raw frames become a dataset (see `foundation prep --help`)."""

    inputs: list[str] = field(default_factory=list)
    out: str = ""
    format: str = "auto"
    container: str = "lmdb"  # lmdb | wds | both
    shard_size: int = 10_000  # frames per final shard
    chunk_frames: int = 5_000  # frames per chunk task (approximate for VASP files)
    workers: int = 1
    split: dict[str, float] = field(
        default_factory=lambda: {"train": 0.9, "val": 0.05, "test": 0.05}
    )
    split_salt: str = ""
    group_by: str = "material"  # split groups: material | composition | id (data_prep/split.py)
    input_group_by: dict[str, str] = field(
        default_factory=dict
    )  # input (file or directory) -> rule
    source_group_by: dict[str, str] = field(default_factory=dict)  # source tag -> rule
    energy: str = "uncorrected"  # MPtrj/Alexandria: uncorrected total energy | corrected (MP/Alexandria corrections)
    structure_key: str | None = (
        None  # extxyz/ASE db info key; None = auto; "frame" = every frame its own structure
    )
    frame_key: str | None = None  # None = auto; "index" = FILE:INDEX
    energy_key: str = "energy"  # extxyz comment-line keys / column names of the labels
    forces_key: str = "forces"
    stress_key: str = "stress"
    required: list[str] = field(default_factory=lambda: ["energy", "forces"])
    max_force: float = 50.0  # eV/A, largest allowed |F| of an atom
    max_energy_per_atom: float = 1e6  # eV, largest allowed |E|/N (all-electron totals reach ~1e5)
    max_stress: float = 100.0  # eV/A^3 (16 TPa), largest allowed |stress component|
    max_atoms: int = (
        100_000  # atoms per frame a reader accepts (a larger count is quarantined unread)
    )
    max_line_bytes: int = 1 << 20  # longest line a text reader reads (extxyz, staged records)
    max_record_bytes: int = (
        64 << 20
    )  # largest record (an extxyz frame, a JSON entry) a reader reads
    min_distance: float = 0.5  # A, closest allowed pair of atoms (periodic images included)
    max_energy_residual: float | None = (
        None  # eV/atom: quarantine frames this far from the element references
    )
    dedup: bool = True
    dedup_tolerance: float = 1e-5  # A, grid on which positions and cell are compared
    neighbour_cutoff: float = 5.0  # A, for the mean-neighbours statistic
    neighbour_sample: float = 0.05  # fraction of frames (by frame_id hash) that count neighbours
    keep_work: bool = False  # keep DIR/_work (chunk outputs) after a successful merge
    progress: bool = True
    source: str | None = (
        None  # source tag (data set + DFT settings) of every input's frames; None: the reader's
    )
    input_sources: dict[str, str] = field(
        default_factory=dict
    )  # input (file or directory) -> its frames' source

    def source_of(self, path: str) -> str | None:
        """The configured source tag of the frames of input file `path`: the tag of the input it is or lies under
        (input_sources), else `source`; None leaves the tag the reader gives (e.g. an extxyz `source=` key)."""
        return _under_input(self.input_sources, path) or self.source

    def group_rule(self, path: str, source: str) -> str:
        """The split group rule of a frame of input file `path` tagged `source`: the rule of the input it is or
        lies under (input_group_by), else of its source (source_group_by), else group_by."""
        return _under_input(self.input_group_by, path) or self.source_group_by.get(
            source, self.group_by
        )

    def __post_init__(self) -> None:
        rules = [self.group_by, *self.input_group_by.values(), *self.source_group_by.values()]
        checks = [
            (
                all(rule in GROUP_RULES for rule in rules),
                f"group_by rules must be among {GROUP_RULES}, got {rules}",
            ),
            (
                min(self.max_atoms, self.max_line_bytes, self.max_record_bytes) > 0
                and self.max_energy_per_atom > 0
                and self.max_stress > 0,
                "max_atoms, max_line_bytes, max_record_bytes, max_energy_per_atom and max_stress "
                "must be positive",
            ),
            (self.format in FORMATS, f"format must be one of {FORMATS}, got {self.format!r}"),
            (
                self.container in CONTAINER_CHOICES,
                f"container must be lmdb, wds or both, got {self.container!r}",
            ),
            (
                self.energy in ("uncorrected", "corrected"),
                f"energy must be uncorrected or corrected, got {self.energy!r}",
            ),
            (
                self.shard_size > 0 and self.chunk_frames > 0 and self.workers > 0,
                "shard_size, chunk_frames and workers must be positive",
            ),
            (
                set(self.required) <= set(LABELS),
                f"required labels must be among {LABELS}, got {self.required}",
            ),
            (
                bool(self.split)
                and all(v >= 0 for v in self.split.values())
                and abs(sum(self.split.values()) - 1) < 1e-9,
                f"split ratios must be non-negative and sum to 1, got {self.split}",
            ),
            (0.0 <= self.neighbour_sample <= 1.0, "neighbour_sample must lie in [0, 1]"),
            (self.dedup_tolerance > 0, "dedup_tolerance must be positive"),
            (
                self.max_energy_residual is None or self.max_energy_residual > 0,
                f"max_energy_residual must be positive (eV/atom) or unset, got {self.max_energy_residual}",
            ),
            (
                self.source is None or bool(self.source.strip()),
                "source must be a non-empty name or unset",
            ),
            (
                all(str(v).strip() for v in self.input_sources.values()),
                f"input_sources must map inputs to non-empty names, got {self.input_sources}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    @property
    def containers(self) -> tuple[str, ...]:
        return CONTAINER_CHOICES[self.container]

    def chunk_options(self) -> dict[str, Any]:
        """The options a chunk's output depends on (part of its fingerprint)."""
        skip = set(_RUNTIME_ONLY) | set(_MERGE_ONLY)
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in skip}

    def dataset_options(self) -> dict[str, Any]:
        """The options the final dataset depends on."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in _RUNTIME_ONLY}


def _under_input(by_input: dict[str, str], path: str) -> str | None:
    """The value of the input (file or directory) that `path` is or lies under, else None."""
    target = os.path.abspath(path)
    for given, value in by_input.items():
        root = os.path.abspath(given)
        if target == root or target.startswith(root.rstrip(os.sep) + os.sep):
            return value
    return None


def parse_ratios(text: str) -> dict[str, float]:
    """'train=0.9,val=0.05,test=0.05' -> {'train': 0.9, ...} (order kept: it decides the hash intervals)."""
    ratios: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"split ratio {part!r} must look like NAME=FRACTION")
        ratios[name.strip()] = float(value)
    return ratios


def parse_assignments(items: list[str], option: str) -> dict[str, str]:
    """['NAME=VALUE', ...] -> {NAME: VALUE} (the last wins); a malformed item is an error naming `option`."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.rpartition("=")
        if not sep or not name.strip() or not value.strip():
            raise ValueError(f"--{option.replace('_', '-')} {item!r} must look like NAME=VALUE")
        out[name.strip()] = value.strip()
    return out
