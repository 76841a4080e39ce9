"""torch.distributed rendezvous variables from submitit's job environment (Slurm or submitit-local).

Every task of a job computes the same MASTER_ADDR (the first host of the allocation) and MASTER_PORT (a
function of the job id and its restart count), so no task has to talk to another before init_process_group.
The backend follows the hardware: NCCL when the task sees a GPU, gloo on CPUs (the training library decides).
"""

from __future__ import annotations

import os
import re
import sys

PORT_BASE = 20000
PORT_SPAN = 20000


def rendezvous_port(job_id: str, restart_count: int = 0) -> int:
    """A port every task of one job (and one restart of it) agrees on; a requeued job gets a fresh one."""
    digits = [int(d) for d in re.findall(r"\d+", job_id)] or [0]
    key = digits[0] * 31 + sum(digits[1:]) * 7 + restart_count * 997
    return PORT_BASE + key % PORT_SPAN


def distributed_env() -> dict[str, str]:
    """RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT of the running submitit task."""
    import submitit

    env = submitit.JobEnvironment()
    restarts = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    hosts = list(env.hostnames)
    master = hosts[0] if env.num_nodes > 1 else "127.0.0.1"
    return {
        "RANK": str(env.global_rank),
        "WORLD_SIZE": str(env.num_tasks),
        "LOCAL_RANK": str(env.local_rank),
        "LOCAL_WORLD_SIZE": str(max(1, env.num_tasks // max(1, env.num_nodes))),
        "NODE_RANK": str(env.node),
        "MASTER_ADDR": os.environ.get("FOUNDATION_MASTER_ADDR", master),
        "MASTER_PORT": os.environ.get(
            "FOUNDATION_MASTER_PORT", str(rendezvous_port(env.job_id, restarts))
        ),
    }


def export_distributed_env() -> dict[str, str]:
    """Put the rendezvous variables into os.environ (what torch.distributed's env:// init reads) and return them.

    Also caps intra-op threads at the task's CPUs (OMP_NUM_THREADS, unless set), as torchrun does: ranks sharing
    a node would otherwise each start one thread per core and slow each other down."""
    values = distributed_env()
    os.environ.update(values)
    if "OMP_NUM_THREADS" not in os.environ:
        threads = os.environ.get("SLURM_CPUS_PER_TASK", "1")
        os.environ["OMP_NUM_THREADS"] = threads
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))
    return values
