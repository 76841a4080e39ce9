"""Entry point of the `foundation` console script."""

from __future__ import annotations

import argparse
import importlib
import sys

from foundation.cli.console import terminal_output
from foundation.cli.errors import USER_ERRORS, user_error_line
from foundation.cli.version import PrintVersion, exit_on_version
from foundation.data.remote import ALLOW_ENV, grant_command_line

# Each module registers one subcommand; add a module here when its subcommand exists.
COMMAND_MODULES = [
    "foundation.cli.data",
    "foundation.cli.prep",
    "foundation.cli.synth",
    "foundation.cli.sweep",
    "foundation.cli.train",
    "foundation.cli.eval",
    "foundation.cli.release",
    "foundation.cli.finetune",
    "foundation.cli.predict",
    "foundation.cli.export",
    "foundation.cli.models",
    "foundation.cli.demo",
    "foundation.cli.ablation",
    "foundation.cli.status",
]

EPILOG = """examples:
  foundation data verify runs/data/demo          check every shard's checksum and record
  foundation data stats runs/data/demo           counts, elements and label distributions
run `foundation COMMAND --help` for each command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="foundation",
        description="Pre-train materials foundation models on DFT energies, forces and stresses.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of an error, and debug logs"
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more log lines: debug records, with their level and logger",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors; no progress bars"
    )
    parser.add_argument("--version", action=PrintVersion)
    parser.add_argument(
        "--allow-pipe",
        action="store_true",
        help=f"honour locations that run a program (pipe:COMMAND, s3://, ...) given on this command line "
        f"(also {ALLOW_ENV}=1); never those read from a file",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _say(line: str) -> None:
    """One line on stderr in one write: the ranks of a torchrun job share the terminal, and print() writes the
    text and its newline separately, so two ranks' lines could run into one."""
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    exit_on_version(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    granted = grant_command_line(sys.argv[1:] if argv is None else argv, args.allow_pipe)
    with granted, terminal_output(args.verbose + args.debug, args.quiet):
        try:
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            _say("interrupted")
            return 130
        except USER_ERRORS as exc:
            if args.debug:
                raise
            _say(f"error: {user_error_line(exc)}")
            return 2


if __name__ == "__main__":
    sys.exit(main())
