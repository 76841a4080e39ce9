"""torch.distributed rendezvous variables from submitit's job environment (Slurm or submitit-local).

Every task of a job computes the same MASTER_ADDR (the first host of the allocation) and MASTER_PORT (a
function of the job id and its restart count), so no task has to talk to another before init_process_group.
The backend follows the hardware: NCCL when the task sees a GPU, gloo on CPUs (the training library decides).
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys

log = logging.getLogger(__name__)
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
    log.info(placement(values))
    if "OMP_NUM_THREADS" not in os.environ:
        threads = os.environ.get("SLURM_CPUS_PER_TASK", "1")
        os.environ["OMP_NUM_THREADS"] = threads
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(int(threads))
    return values


def placement(values: dict[str, str]) -> str:
    """Where this rank runs and whom it meets, for its log: host name, the address it reaches the rendezvous
    from, and the rendezvous host with its resolved address (a loopback address here on a multi-node job is the
    usual cause of a hang in init_process_group)."""
    master, port = values["MASTER_ADDR"], int(values["MASTER_PORT"])
    try:
        master_ip = socket.gethostbyname(master)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((master_ip, port))  # UDP: picks the route, sends nothing
            own_ip = probe.getsockname()[0]
    except OSError as exc:
        master_ip = own_ip = f"unresolved: {exc}"
    return (
        f"rank {values['RANK']} of {values['WORLD_SIZE']} (node {values['NODE_RANK']}, local rank "
        f"{values['LOCAL_RANK']}) on host {socket.gethostname()} ({own_ip}); rendezvous {master}:{port} "
        f"({master_ip})"
    )
