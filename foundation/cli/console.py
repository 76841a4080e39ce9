"""What the command line shows on the terminal besides a command's result: the library's log records and its
progress bars. The library only logs (`logging.getLogger(__name__)`) and draws tqdm bars on stderr; here one
handler on the `foundation` logger prints the records on stderr, above any running bar.

    default          INFO and above, as plain lines (warnings and errors prefixed); progress bars
    -v/--verbose     DEBUG too, each line with its level and logger name
    -q/--quiet       warnings and errors only; no progress bars (also in the worker processes)
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tqdm import tqdm

from foundation.progress import PROGRESS_ENV

LOGGER = "foundation"


class _TerminalHandler(logging.Handler):
    """Writes each record to the current sys.stderr through tqdm, so a running progress bar is redrawn below it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


class _PlainFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def log_level(verbose: int = 0, quiet: bool = False) -> int:
    if quiet:
        return logging.WARNING
    return logging.DEBUG if verbose > 0 else logging.INFO


@contextmanager
def terminal_output(verbose: int = 0, quiet: bool = False) -> Iterator[None]:
    """Show the library's log records (and progress bars unless quiet) while a command runs; restore the logger
    and the environment afterwards (so a command run in-process, e.g. by a test, leaves nothing behind)."""
    logger = logging.getLogger(LOGGER)
    handler = _TerminalHandler()
    handler.setFormatter(
        logging.Formatter("%(levelname)s %(name)s: %(message)s")
        if verbose > 0
        else _PlainFormatter("%(message)s")
    )
    previous_level, previous_progress = logger.level, os.environ.get(PROGRESS_ENV)
    logger.addHandler(handler)
    logger.setLevel(log_level(verbose, quiet))
    if quiet:
        os.environ[PROGRESS_ENV] = "0"
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
        if previous_progress is None:
            os.environ.pop(PROGRESS_ENV, None)
        else:
            os.environ[PROGRESS_ENV] = previous_progress
