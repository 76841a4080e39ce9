"""Shared fixtures: the committed sample files (tests/fixtures), where ../shared/data lies, and how a missing
prerequisite behaves (skip, or fail under CI)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
FIXTURES = (
    REPO / "tests" / "fixtures"
)  # small real DFT frames and VASP/ASE files, see its README.md
SHARED_DATA = Path(os.environ.get("FOUNDATION_SHARED_DATA", REPO.parent / "shared" / "data"))


def require(condition: bool, reason: str) -> None:
    """Skip when a prerequisite is missing; under CI=true a missing prerequisite is a failure."""
    if condition:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"prerequisite missing under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data (or $FOUNDATION_SHARED_DATA); needs the project's shared data beside the checkout."""
    require(SHARED_DATA.is_dir(), f"needs the shared data directory {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a module's tests: tiny models gain nothing from intra-op threads, and on a busy
    machine the thread pool only adds wake-up latency. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tmpfs():
    """mount(path, options): a fresh tmpfs at `path` (created) with mount options such as "size=64k"; every
    mount is removed after the test. Needs root with CAP_SYS_ADMIN (a prerequisite: see `require`)."""
    mounted: list[Path] = []

    def mount(path: Path, options: str) -> Path:
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        )
        require(done.returncode == 0, "mounting a tmpfs needs root with CAP_SYS_ADMIN")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "--lazy", str(path)], check=True)
