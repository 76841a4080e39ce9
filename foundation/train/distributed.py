"""The process group: joined from RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT (torchrun, Slurm), or a
world of one created in-process; gloo on CPU, NCCL on GPU. Reductions used by the objectives and the loop."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str
    owns_group: bool  # this process created the group (and destroys it)
    owns_env: bool = (
        False  # this process wrote the rendezvous variables (a world of one; removed at shutdown)
    )

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def pick_device(preference: str = "auto", local_rank: int = 0) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("engine.device: cuda requested but no CUDA device is visible")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def init_distributed(device_preference: str = "auto", timeout_s: float = 1800.0) -> DistInfo:
    """Join (or create) the default process group; sets DS_ACCELERATOR before DeepSpeed is imported.
    A collective that waits `timeout_s` on a peer (a rank killed, a node frozen or cut off) raises."""
    owns_env = "WORLD_SIZE" not in os.environ
    if owns_env:  # a world of one in this process
        os.environ.update(
            RANK="0",
            WORLD_SIZE="1",
            LOCAL_RANK="0",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(free_port()),
        )
    missing = [k for k in ENV_KEYS if k not in os.environ and k != "LOCAL_RANK"]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE is set but {missing} are not: launch with torchrun or the Slurm launcher"
        )
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_preference, local_rank)
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if device.type == "cuda" else "cpu")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = timedelta(seconds=timeout_s)
    # groups made later (DeepSpeed's data-parallel group) take torch's default, not the default group's timeout
    dist.distributed_c10d.default_pg_timeout = timeout
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timeout)
    return DistInfo(rank, world, local_rank, device, backend, owns, owns_env)


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum over ranks (in place, returned); a no-op in a world of one."""
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when `flag` is true on any rank (stop requests agree across ranks)."""
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def barrier() -> None:
    if dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def shutdown(info: DistInfo | None, clean: bool = True) -> None:
    """Barrier (after a clean run), then destroy the group this process created. After an error the barrier is
    skipped: destroying the group makes peers blocked in a collective fail instead of waiting forever."""
    if not dist.is_initialized():
        return
    try:
        if clean:
            barrier()
    finally:
        if info is None or info.owns_group:
            dist.destroy_process_group()
            _forget_deepspeed_groups()
        if info is not None and info.owns_env:
            for key in ENV_KEYS:
                os.environ.pop(key, None)


def _forget_deepspeed_groups() -> None:
    """DeepSpeed caches sub-groups of the default group in module globals; after the group is destroyed a
    second run in the same process (tests, sweeps) must not reuse them."""
    groups = sys.modules.get("deepspeed.utils.groups")
    if groups is None:
        return
    for name, value in list(vars(groups).items()):
        if name.startswith("_") and name.isupper() and name.endswith(("GROUP", "GROUP_RANKS")):
            if isinstance(value, dict):
                value.clear()
            else:
                setattr(groups, name, None)
    groups.mesh_device = None
    groups.mpu = None
