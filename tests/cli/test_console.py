"""What the command line shows (foundation/cli/console.py): the library's log records on stderr at the level the
-v/-q flags choose, progress bars off under -q, and nothing left behind after a command."""

from __future__ import annotations

import logging
import os

from foundation.cli.console import terminal_output
from foundation.cli.main import build_parser
from foundation.progress import PROGRESS_ENV, progress_bar

log = logging.getLogger("foundation.some.module")


def _say_everything() -> None:
    log.debug("detail")
    log.info("42 units (40 already done)")
    log.warning("disk nearly full")
    for _ in progress_bar(range(3), desc="work"):
        pass


def test_default_shows_info_and_bars_and_prefixes_warnings(capsys):
    with terminal_output():
        _say_everything()
    err = capsys.readouterr().err
    assert "42 units (40 already done)\n" in err and "warning: disk nearly full\n" in err
    assert "detail" not in err and "work: 100%" in err


def test_quiet_keeps_warnings_only_and_turns_bars_off_then_restores(capsys):
    with terminal_output(quiet=True):
        assert os.environ[PROGRESS_ENV] == "0"  # inherited by worker processes
        _say_everything()
    err = capsys.readouterr().err
    assert err == "warning: disk nearly full\n"
    assert (
        PROGRESS_ENV not in os.environ and logging.getLogger("foundation").level == logging.NOTSET
    )
    assert not logging.getLogger("foundation").handlers


def test_verbose_adds_debug_records_with_level_and_logger(capsys):
    with terminal_output(verbose=1):
        _say_everything()
    err = capsys.readouterr().err
    assert (
        "DEBUG foundation.some.module: detail" in err
        and "WARNING foundation.some.module: disk nearly full" in err
    )


def test_flags_come_before_the_command():
    args = build_parser().parse_args(["-q", "status", "somewhere"])
    assert args.quiet and args.verbose == 0
    assert build_parser().parse_args(["-vv", "status", "somewhere"]).verbose == 2
