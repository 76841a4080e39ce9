"""Replay: a fraction of pre-training frames mixed into a fine-tuning run's training split, to limit forgetting.

Every epoch draws `replay_count` frames of the replay dataset (a prepared dataset, LMDB; without repetition,
fresh each epoch, a pure function of (seed, epoch)) and shuffles them among all of the user's train frames, so
that `fraction` of the epoch's frames are replayed. Replayed energies were labelled under the parent's element
references; they are moved to the fine-tuning run's references (E + sum_i shift[Z_i]), so both kinds of frames
train one consistent energy. Validation uses the user's val split only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from foundation.data.dataset import FrameDataset
from foundation.data.manifest import Manifest
from foundation.data.schema import Frame
from foundation.train.config import DataConfig
from foundation.train.datasets import BatchBuilder, MapBatchDataset
from foundation.train.loader import SplitLoader
from foundation.train.sampler import AtomsBalancedSampler, frame_order

log = logging.getLogger(__name__)


def replay_count(num_user: int, fraction: float, num_replay: int) -> int:
    """Replayed frames per epoch so that they are `fraction` of all frames (at most every replay frame)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"replay fraction must lie in [0, 1), got {fraction}")
    return min(int(round(fraction / (1.0 - fraction) * num_user)), num_replay)


class ReplayFrames(Sequence):
    """The user's frames (indices 0..U-1) followed by the replay frames, whose energies are shifted per atom."""

    def __init__(self, user: FrameDataset, replay: FrameDataset, energy_shift: dict[int, float]):
        self.user, self.replay, self.energy_shift = user, replay, dict(energy_shift)

    def __len__(self) -> int:
        return len(self.user) + len(self.replay)

    def __getitem__(self, index: int) -> Frame:  # type: ignore[override]
        if index < len(self.user):
            return self.user[index]
        frame = self.replay[index - len(self.user)]
        if frame.energy is None or not self.energy_shift:
            return frame
        shift = sum(self.energy_shift.get(int(z), 0.0) for z in frame.numbers)
        return dataclasses.replace(frame, energy=frame.energy + shift)


class ReplaySampler(AtomsBalancedSampler):
    """An atoms-balanced plan over the user's frames plus a fresh draw of replay frames every epoch."""

    def __init__(
        self,
        user_natoms: np.ndarray,
        user_shard_sizes: Sequence[int],
        replay_natoms: np.ndarray,
        fraction: float,
        max_atoms: int,
        **options,
    ):
        super().__init__(
            np.concatenate([user_natoms, replay_natoms]),
            list(user_shard_sizes) + [len(replay_natoms)],
            max_atoms,
            **options,
        )
        self.user_shard_sizes = [int(s) for s in user_shard_sizes]
        self.num_user, self.num_replay = len(user_natoms), len(replay_natoms)
        self.replayed = replay_count(self.num_user, fraction, self.num_replay)

    def order(self, epoch: int) -> np.ndarray:
        user = frame_order(self.user_shard_sizes, epoch=epoch, seed=self.seed, shuffle=self.shuffle)
        rng = np.random.default_rng([self.seed, epoch, 0x4E7A])
        replay = self.num_user + rng.choice(self.num_replay, size=self.replayed, replace=False)
        mixed = np.concatenate([user, replay])
        return mixed[rng.permutation(len(mixed))]


def build_replay_loader(
    data: DataConfig,
    replay_path: str,
    fraction: float,
    energy_shift: dict[int, float],
    builder: BatchBuilder,
    *,
    rank: int,
    world_size: int,
    grad_accum: int,
    seed: int,
    replay_split: str = "train",
    pin_memory: bool = False,
) -> SplitLoader:
    """The training loader of a fine-tuning run with replay (both datasets LMDB: replay needs random access)."""
    if data.container != "lmdb":
        raise ValueError(
            "finetune.replay_path needs data.container: lmdb (replayed frames are drawn at random)"
        )
    user_manifest, replay_manifest = Manifest.load(data.path), Manifest.load(replay_path)
    user = FrameDataset(data.path, split=data.train_split, container="lmdb")
    try:
        replay = FrameDataset(replay_path, split=replay_split, container="lmdb")
    except KeyError as exc:
        raise ValueError(f"finetune.replay_path {replay_path}: {exc.args[0]}") from None
    sizes = [s.num_frames for s in user_manifest.shards_of("lmdb", data.train_split)]
    sampler = ReplaySampler(
        user_manifest.atoms_per_frame("lmdb", data.train_split),
        sizes,
        replay_manifest.atoms_per_frame("lmdb", replay_split),
        fraction,
        data.max_atoms,
        rank=rank,
        world_size=world_size,
        grad_accum=grad_accum,
        seed=seed,
        shuffle=data.shuffle,
        drop_last=True,
    )
    if not sampler.rank_batches(0):
        raise ValueError(
            f"{data.path} split {data.train_split!r} with replay: too few frames for "
            f"world_size * grad_accum = {world_size * grad_accum} micro-batches"
        )
    log.info(
        "replay: %d of %d frames of %s per epoch beside %d user frames",
        sampler.replayed,
        len(replay),
        Path(replay_path).name,
        len(user),
    )
    dataset = MapBatchDataset(ReplayFrames(user, replay, energy_shift), builder)
    return SplitLoader(sampler, dataset, data.num_workers, data.prefetch_factor, pin_memory)
