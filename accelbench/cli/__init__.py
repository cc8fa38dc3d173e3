"""The command line: one module per command, each a Command (cli/base.py), registered in order."""

from __future__ import annotations

import argparse
from typing import Any

from accelbench import __version__
from accelbench.cli.base import (
    EXIT_STATUSES,
    EXIT_USAGE,
    Command,
    Parser,
    add_commands,
    run_guarded,
)
from accelbench.cli.bench import Bench
from accelbench.cli.compare import Compare
from accelbench.cli.models import Models
from accelbench.cli.optimize import Optimize
from accelbench.cli.profiles import Profiles
from accelbench.cli.recommend import Recommend
from accelbench.cli.results import Results
from accelbench.cli.run import Run

# `accelbench --help` lists them in this order.
COMMANDS: tuple[type[Command], ...] = (
    Bench,
    Run,
    Optimize,
    Recommend,
    Compare,
    Models,
    Profiles,
    Results,
)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="accelbench",
        description="Benchmark models on this host and on emulated or projected hardware "
        "profiles, with MLPerf LoadGen, into comparable records.",
        epilog=EXIT_STATUSES,
    )
    p.add_argument("--version", action="version", version=f"accelbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_commands(sub, COMMANDS)
    for module in _COMMAND_MODULES:
        _load_commands(module, sub)
    return p


# Commands that live in their own modules: each has ``register(sub)``, which adds its parsers
# and sets ``handler`` (a function of the parsed arguments returning the exit status) on them.
# These modules import no framework at top level, so --help stays fast.
_COMMAND_MODULES = (
    "accelbench.cli_pipeline",
    "accelbench.cli_training",
    "accelbench.cli_serving",
    "accelbench.cli_load",
    "accelbench.cli_history",
    "accelbench.cli_ab",
    "accelbench.cli_inspect",
)


def _load_commands(module: str, sub: Any) -> None:
    import importlib

    importlib.import_module(module).register(sub)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the exit status. No traceback reaches the terminal (see EXIT_STATUSES)."""
    return run_guarded(lambda: _parse_and_run(argv), argv)


def _parse_and_run(argv: list[str] | None) -> int:
    # Inside run_guarded: the help names the registered runtimes, and a runtime that
    # $ACCELBENCH_RUNTIMES names but Python cannot import is a UsageError.
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    return args.handler(args)
