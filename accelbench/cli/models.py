"""`accelbench models list`: the reference model zoo."""

from __future__ import annotations

import argparse

from accelbench.cli.base import EXIT_OK, Command, Parser
from accelbench.errors import UsageError


class Models(Command):
    name = "models"
    help = "the reference model zoo"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(
            dest="models_command", metavar="ACTION", parser_class=Parser
        )
        actions.add_parser("list", help="list the reference models")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        if args.models_command != "list":
            raise UsageError("say 'accelbench models list'")
        from accelbench.models import list_specs

        for spec in list_specs():
            quality = f"{spec.metric} >= {spec.target}"
            print(
                f"{spec.name:22} {spec.framework:6} {spec.task:23} {quality:16} {spec.data_source}"
            )
        return EXIT_OK
