"""`accelbench device`: check a remote profile's device over SSH, or set up its Python there."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from accelbench.cli.base import EXIT_FAILED_CELLS, EXIT_OK, Command, Parser
from accelbench.errors import UsageError

# What the edge runner needs on the device, by the --interpreter choice.
INTERPRETER_PACKAGES = {"litert": "ai-edge-litert", "tflite-runtime": "tflite-runtime"}
# How long a package installation on a small board may take.
SETUP_TIMEOUT_S = 1800.0


class Device(Command):
    name = "device"
    help = "check a remote profile's device over SSH, or install its runner's packages"
    description = (
        "check: connect to the device a remote profile names, print its fingerprint (CPU, cores, "
        "memory, OS, Python, packages) and what it lacks. setup: make a virtual environment on "
        "the device and pip-install the runner's packages into it (numpy and one interpreter "
        "package; LoadGen with --loadgen)."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(
            dest="device_command", metavar="ACTION", parser_class=Parser
        )
        check = actions.add_parser("check", help="connect; print the fingerprint and what it lacks")
        check.add_argument("profile", help="a remote profile's name or YAML path")
        setup = actions.add_parser("setup", help="install the runner's packages into a venv there")
        setup.add_argument("profile", help="a remote profile's name or YAML path")
        setup.add_argument(
            "--venv",
            help="the venv's folder on the device (default: the one the profile's python is in, "
            "else <remote.folder>/venv)",
        )
        setup.add_argument(
            "--base-python",
            default="python3",
            help="the device's Python that makes the venv (default: python3)",
        )
        setup.add_argument(
            "--interpreter",
            choices=sorted(INTERPRETER_PACKAGES),
            default="litert",
            help="the interpreter package (default: litert, i.e. ai-edge-litert)",
        )
        setup.add_argument("--loadgen", action="store_true", help="also install MLPerf LoadGen")
        setup.add_argument(
            "--system-site-packages",
            action="store_true",
            help="let the venv see the device's system packages (e.g. a vendor's numpy)",
        )

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        from accelbench.hardware_profiles import load_profile
        from accelbench.runner.devices.ssh import DeviceError, SshDevice

        if args.device_command not in ("check", "setup"):
            raise UsageError("say 'accelbench device check|setup PROFILE'")
        profile = load_profile(args.profile)
        if profile.remote is None:
            raise UsageError(
                f"profile {profile.name} is not a remote device (execution: {profile.execution}); "
                "give a profile with execution: remote and a remote: block"
            )
        device = SshDevice.from_profile(profile)
        try:
            if args.device_command == "check":
                return _check(device, profile)
            return _setup(device, args)
        except DeviceError as err:
            print(f"accelbench: error: {err}", file=sys.stderr)
            return EXIT_FAILED_CELLS


def _check(device: Any, profile: Any) -> int:
    from accelbench.runner.devices.cell import contradictions, lacks

    found = device.fingerprint(timeout_s=device.connect_timeout_s + 60)
    print(f"{profile.name}: {device.address} over ssh")
    for key in ("hostname", "machine", "cpu_model", "cores", "memory_gb", "os", "python"):
        print(f"  {key:12} {found.get(key)}")
    for name, version in found.get("packages", {}).items():
        print(f"  {name:20} {version or '-'}")
    missing = lacks(found)
    for line in missing:
        print(f"lacks: {line}")
    for line in contradictions(profile, found):
        print(f"contradicts the profile: {line}")
    blocking = [line for line in missing if not line.startswith("LoadGen")]
    if blocking:
        print(f"run 'accelbench device setup {profile.name}' to install what the runner needs")
        return EXIT_FAILED_CELLS
    return EXIT_OK


def _setup(device: Any, args: argparse.Namespace) -> int:
    import shlex

    venv = args.venv or _profile_venv(device)
    packages = ["numpy", INTERPRETER_PACKAGES[args.interpreter]]
    if args.loadgen:
        packages.append("mlcommons-loadgen")
    flags = " --system-site-packages" if args.system_site_packages else ""
    python = f"{shlex.quote(venv)}/bin/python"
    command = (
        f"{shlex.quote(args.base_python)} -m venv{flags} {shlex.quote(venv)} && "
        f"{python} -m pip install --disable-pip-version-check -q "
        + " ".join(map(shlex.quote, packages))
    )
    print(f"{device.profile}: {device.address}: {command}")
    device.run(command, timeout_s=SETUP_TIMEOUT_S)
    print(f"installed {', '.join(packages)} in {venv}; the profile's python: {venv}/bin/python")
    return EXIT_OK


def _profile_venv(device: Any) -> str:
    """The venv the profile's python is in (…/bin/python), else <remote.folder>/venv."""
    head, _, tail = device.python.rpartition("/bin/")
    if head and tail.startswith("python"):
        return head
    return f"{device.folder}/venv"
