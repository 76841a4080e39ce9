"""Progress bars of long library calls: tqdm on stderr. The command line turns every bar off, in its own process
and in the worker processes it starts, with `foundation --quiet` (FOUNDATION_PROGRESS=0 in the environment)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

PROGRESS_ENV = "FOUNDATION_PROGRESS"


def progress_enabled() -> bool:
    """False when FOUNDATION_PROGRESS is 0 (the command line's --quiet)."""
    return os.environ.get(PROGRESS_ENV, "1") != "0"


def progress_bar(
    iterable: Iterable[Any] | None = None, *, enabled: bool = True, **options: Any
) -> tqdm:
    """A tqdm bar on stderr (options as tqdm's); off when `enabled` is False or progress is turned off."""
    return tqdm(iterable, file=sys.stderr, disable=not (enabled and progress_enabled()), **options)
