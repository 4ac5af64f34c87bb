"""The ``connscale`` command: one module per subcommand.

Each subcommand module defines ``HELP`` (one line), ``DESCRIPTION`` (the ``--help`` text),
``add_arguments(parser)`` and ``run(args) -> int``. Modules keep heavy imports inside
``run`` so that ``connscale --help`` stays fast. A ``ConnscaleError`` becomes a one-line
message and exit code 2, never a traceback; Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Protocol, cast

from connscale._version import __version__
from connscale.errors import ConnscaleError

#: Subcommand name -> module that implements it, in the order ``--help`` lists them.
SUBCOMMANDS: dict[str, str] = {
    "serve": "connscale.cli.serve",
    "loadgen": "connscale.cli.loadgen",
    "bench": "connscale.cli.bench",
    "watch": "connscale.cli.watch",
    "report": "connscale.cli.report",
}


class Command(Protocol):
    """What a subcommand module provides."""

    HELP: str
    DESCRIPTION: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def _load(module_name: str) -> Command | None:
    try:
        module: ModuleType = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None  # subcommand not built yet
        raise
    return cast(Command, module)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connscale",
        description=(
            "Measure and keep small the memory each connection costs a Python server. "
            "Run `connscale bench` for the main job."
        ),
    )
    parser.add_argument("--version", action="version", version=f"connscale {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in SUBCOMMANDS.items():
        command = _load(module_name)
        if command is None:
            continue
        sub = subparsers.add_parser(
            name,
            help=command.HELP,
            description=command.DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        sub.set_defaults(_command=command, _parser=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``connscale`` command line; returns the process exit code."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # The subcommand's own usage, not the top-level one (argparse's default here).
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    command = getattr(args, "_command", None)
    if command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(cast(Command, command).run(args))
    except ConnscaleError as exc:
        print(f"connscale {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"connscale {args.command}: interrupted", file=sys.stderr)
        return 130


__all__ = ["SUBCOMMANDS", "Command", "build_parser", "main"]
