"""`accelbench profiles`: list, show, validate, detect, calibrate and fit hardware profiles."""

from __future__ import annotations

import argparse

from accelbench.cli.base import EXIT_OK, Command, Parser
from accelbench.errors import UsageError


class Profiles(Command):
    name = "profiles"
    help = "list, show, validate, detect, calibrate and fit profiles"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(
            dest="profiles_command", metavar="ACTION", parser_class=Parser
        )
        actions.add_parser("list", help="list built-in profiles")
        show = actions.add_parser("show", help="print one profile as YAML")
        show.add_argument("name", help="profile name or YAML path")
        validate = actions.add_parser("validate", help="validate a profile YAML file")
        validate.add_argument("file")
        actions.add_parser("detect", help="print the profile detected for this host")
        calibrate = actions.add_parser(
            "calibrate", help="measure this host's peak compute and bandwidth"
        )
        calibrate.add_argument(
            "--seconds", type=float, default=3.0, help="time budget (default 3 s)"
        )
        fit = actions.add_parser(
            "fit",
            help="time micro-kernels on this host, fit the projection model, write profile NAME",
        )
        fit.add_argument("name", help="the new profile's name (then --profile NAME)")
        fit.add_argument("--threads", type=int, default=1, help="threads, as a cell's (default 1)")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        import yaml

        from accelbench import hardware_profiles as hp

        action = args.profiles_command
        if action == "list":
            for prof in hp.list_profiles():
                print(
                    f"{prof.name:18} {prof.kind:9} {hp.execution_mode(prof):9} "
                    f"{prof.vendor} {prof.model}"
                )
            return EXIT_OK
        if action in ("show", "detect"):
            prof = hp.load_profile(args.name) if action == "show" else hp.detect_host()
            print(yaml.safe_dump(prof.model_dump(mode="json", exclude_none=True), sort_keys=False))
            return EXIT_OK
        if action == "validate":
            prof = hp.validate_profile_file(args.file)
            print(f"{args.file}: valid profile '{prof.name}' ({prof.kind})")
            return EXIT_OK
        if action == "calibrate":
            from accelbench.hardware_profiles.calibrate import calibrate

            cal = calibrate(seconds=args.seconds)
            data = cal.model_dump(mode="json") if hasattr(cal, "model_dump") else vars(cal)
            print(yaml.safe_dump(data, sort_keys=False))
            return EXIT_OK
        if action == "fit":
            from accelbench.hardware_profiles.fit import fit_host_profile

            if args.threads < 1:
                raise UsageError(f"--threads must be 1 or more, got {args.threads}; give e.g. 2")
            path, rows = fit_host_profile(args.name, args.threads)
            for model, measured_ms, projected_ms in rows:
                print(
                    f"{model:32} measured {measured_ms:8.4g} ms  projected {projected_ms:8.4g} ms"
                    f"  ratio {projected_ms / measured_ms:.2f}"
                )
            print(f"wrote {path}; use it as --profile {args.name}")
            return EXIT_OK
        raise UsageError("say 'accelbench profiles list|show|validate|detect|calibrate|fit'")
