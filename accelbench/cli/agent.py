"""`accelbench agent`: start or stop a Ray node on this machine that serves hardware profiles."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from accelbench.cli.base import EXIT_FAILED_CELLS, EXIT_OK, Command, Parser, comma_list
from accelbench.errors import UsageError


class Agent(Command):
    name = "agent"
    help = "start or stop a Ray node here that serves profiles to a cluster's sweeps"
    description = (
        "start: start a Ray node on this machine (a head with --head, or one joining the head "
        "at --address) that advertises the resource accelbench:<profile> for each profile it "
        "serves; a sweep run with --cluster sends each cell of a transport: ray profile to a "
        "node serving it. stop: stop the nodes agent start started on this machine (--all: "
        "every Ray process of this machine, as ray stop does). Needs Ray: "
        "pip install 'accelbench[ray]'."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="agent_command", metavar="ACTION", parser_class=Parser)
        start = actions.add_parser("start", help="start a Ray node serving profiles")
        start.add_argument(
            "--profile",
            type=comma_list("profile"),
            required=True,
            help="comma-separated profile names or YAML paths this machine serves",
        )
        where = start.add_mutually_exclusive_group(required=True)
        where.add_argument("--head", action="store_true", help="start the cluster's head")
        where.add_argument("--address", metavar="HOST:PORT", help="join the head at HOST:PORT")
        start.add_argument("--port", type=int, default=6379, help="the head's port (default 6379)")
        start.add_argument("--num-cpus", type=int, help="CPUs this node offers (default: Ray's)")
        start.add_argument(
            "--block",
            action="store_true",
            help="stay in the foreground; Ctrl-C or SIGTERM stops the node (for a service)",
        )
        stop = actions.add_parser("stop", help="stop the Ray nodes agent start started here")
        stop.add_argument(
            "--all",
            action="store_true",
            help="stop every Ray process of this machine (ray stop), not only agent start's",
        )

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        if args.agent_command not in ("start", "stop"):
            raise UsageError("say 'accelbench agent start ...' or 'accelbench agent stop'")
        ray = _ray_command()
        from accelbench.runner.devices.ray_cluster import resource_name, start_node, stop_nodes

        if args.agent_command == "stop":
            if args.all:
                return _call([ray, "stop"])
            stopped = stop_nodes()
            print(
                f"stopped {stopped} process(es) of the Ray nodes agent start started here"
                if stopped
                else "no Ray node that agent start started here is running (--all stops every "
                "Ray process of this machine)"
            )
            return EXIT_OK
        from accelbench.hardware_profiles import load_profile

        names = [load_profile(p).name for p in args.profile]
        resources = {resource_name(name): 1 for name in names}
        argv = [ray, "start", "--resources", json.dumps(resources), "--disable-usage-stats"]
        argv += ["--head", "--port", str(args.port)] if args.head else ["--address", args.address]
        if args.num_cpus is not None:
            argv += ["--num-cpus", str(args.num_cpus)]
        served = f"serving {', '.join(names)} (resources {', '.join(resources)})"
        if args.block:
            print(served, flush=True)
            return _call([*argv, "--block"])
        code = EXIT_OK if start_node(argv) == 0 else EXIT_FAILED_CELLS
        if code == EXIT_OK:
            print(served)
        return code


def _ray_command() -> str:
    """Ray's own CLI, beside this Python, else on PATH; a UsageError when Ray is missing."""
    beside = Path(sys.executable).with_name("ray")
    found = str(beside) if beside.exists() else shutil.which("ray")
    if not found:
        raise UsageError("Ray is not installed; pip install 'accelbench[ray]' (or ray)")
    return found


def _call(argv: list[str]) -> int:
    done = subprocess.run(argv, check=False)
    return EXIT_OK if done.returncode == 0 else EXIT_FAILED_CELLS
