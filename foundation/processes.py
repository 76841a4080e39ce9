"""How the library's worker processes start: forked from a fork server, never from the calling process."""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import BaseContext


def worker_context(preload: list[str]) -> BaseContext:
    """The start method of worker processes (DataLoader workers, labelling pools): forks of a fork server, a process
    with a single thread that has imported the `preload` modules. A caller has threads (DeepSpeed's process group,
    TensorBoard's writer, torch's pools, progress bars); a fork copies any lock one of them holds at that instant,
    and a worker that then takes it waits forever. As with `spawn`, workers import the caller's main module, so a
    script that starts them needs the `if __name__ == "__main__":` guard. `preload` counts only for the first call
    in a process (the server starts once)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return context
