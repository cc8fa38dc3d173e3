"""`accelbench suites list|show NAME`: the built-in suites, as files a user can start from."""

from __future__ import annotations

import argparse

from accelbench.cli.base import EXIT_OK, Command, Parser
from accelbench.errors import UsageError


class Suites(Command):
    name = "suites"
    help = "list the built-in suites, or show one as a suite file to copy"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(
            dest="suites_command", metavar="ACTION", parser_class=Parser
        )
        actions.add_parser("list", help="the built-in suites, one line each")
        show = actions.add_parser("show", help="print a built-in suite's YAML file")
        show.add_argument("suite", help="a built-in suite's name (accelbench suites list)")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from accelbench.runner.suites import BUILTIN_SUITES, suite_description, suite_text

        if args.suites_command == "list":
            for name in BUILTIN_SUITES:
                print(f"{name:8} {suite_description(name)}")
            return EXIT_OK
        if args.suites_command == "show":
            if args.suite not in BUILTIN_SUITES:
                raise UsageError(
                    f"unknown built-in suite {args.suite!r}; use one of {', '.join(BUILTIN_SUITES)}"
                )
            print(suite_text(args.suite), end="")
            return EXIT_OK
        raise UsageError("say 'accelbench suites list' or 'accelbench suites show NAME'")
