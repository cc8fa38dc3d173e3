"""The command line: one module per command, each a Command (cli/base.py), registered in order."""

from __future__ import annotations

import argparse

from accelbench import __version__
from accelbench.cli.ab import Ab
from accelbench.cli.agent import Agent
from accelbench.cli.base import (
    EXIT_STATUSES,
    EXIT_USAGE,
    Command,
    Parser,
    add_commands,
    run_guarded,
)
from accelbench.cli.baseline import Baseline
from accelbench.cli.bench import Bench
from accelbench.cli.compare import Compare
from accelbench.cli.device import Device
from accelbench.cli.history import History
from accelbench.cli.input_pipeline import InputPipeline
from accelbench.cli.inspect import Inspect
from accelbench.cli.load import Load
from accelbench.cli.models import Models
from accelbench.cli.optimize import Optimize
from accelbench.cli.profiles import Profiles
from accelbench.cli.project import Project
from accelbench.cli.recommend import Recommend
from accelbench.cli.results import Results
from accelbench.cli.run import Run
from accelbench.cli.serve import Serve
from accelbench.cli.suites import Suites
from accelbench.cli.train import Train

# `accelbench --help` lists them in this order.
COMMANDS: tuple[type[Command], ...] = (
    Bench,
    Run,
    Optimize,
    Recommend,
    Compare,
    Models,
    Profiles,
    Device,
    Agent,
    Project,
    Results,
    InputPipeline,
    Train,
    Serve,
    Load,
    History,
    Baseline,
    Ab,
    Inspect,
    Suites,
)


def build_parser() -> argparse.ArgumentParser:
    """The `accelbench` parser: the global flags, then one subparser per command of COMMANDS."""
    p = Parser(
        prog="accelbench",
        description="Benchmark models on this host and on emulated or projected hardware "
        "profiles, with MLPerf LoadGen, into comparable records.",
        epilog=EXIT_STATUSES,
    )
    p.add_argument("--version", action="version", version=f"accelbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    add_commands(sub, COMMANDS)
    return p


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
