"""Run Python in a subprocess whose address space is capped with resource.setrlimit(RLIMIT_AS): a test proves
that an input's cost is bounded when the capped process ends with the expected error instead of running out of
memory (a MemoryError or an allocator failure would end it with a traceback, exit 1)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from collections.abc import Sequence

LIMIT_BYTES = 2 << 30  # importing torch and foundation takes about 0.7 GB of address space


def _cap(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


def run_capped(
    args: Sequence[str], *, limit: int = LIMIT_BYTES, timeout: float = 300, **kwargs
) -> subprocess.CompletedProcess:
    """`python ARGS...` (one thread) under an address-space cap of `limit` bytes; output captured as text."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", **kwargs.pop("env", {})}
    return subprocess.run(
        [sys.executable, *args],
        preexec_fn=_cap(limit),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


def foundation_capped(args: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
    """The `foundation` command line under the cap (see run_capped)."""
    return run_capped(["-m", "foundation.cli.main", *args], **kwargs)
