"""`accelbench results show`: a run folder's table."""

from __future__ import annotations

import argparse
from pathlib import Path

from accelbench.cli.base import EXIT_OK, Command, Parser
from accelbench.errors import UsageError


class Results(Command):
    name = "results"
    help = "show a run's results"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(
            dest="results_command", metavar="ACTION", parser_class=Parser
        )
        show = actions.add_parser("show", help="print the table of a run folder")
        show.add_argument("run_dir")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        if args.results_command != "show":
            raise UsageError("say 'accelbench results show RUN_DIR'")
        from accelbench.report.tables import load_run, print_table

        run_dir = Path(args.run_dir)
        print_table(load_run(run_dir), title=f"run {run_dir.name}")
        return EXIT_OK
