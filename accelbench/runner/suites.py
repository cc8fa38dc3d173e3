"""The built-in suites: YAML files in `builtin_suites/`, in the format of a user's suite file.

`default` is what `accelbench run` runs, `full` every reference model, `ci` a pull request's
quick regression check. Each file's first line is a comment that describes it (what `accelbench
suites list` prints); `accelbench suites show NAME` prints the file, for a user to start from.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

BUILTIN_SUITES = ("default", "full", "ci")


def suite_text(name: str) -> str:
    """The YAML text of a built-in suite (KeyError for an unknown name)."""
    if name not in BUILTIN_SUITES:
        raise KeyError(name)
    return resources.files("accelbench.runner").joinpath(f"builtin_suites/{name}.yaml").read_text()


def suite_description(name: str) -> str:
    """The suite file's first comment line, without its 'name: ' lead."""
    first = suite_text(name).splitlines()[0].lstrip("# ").strip()
    return first.split(": ", 1)[1] if first.startswith(f"{name}: ") else first


@cache
def _mapping(name: str) -> dict[str, Any]:
    import yaml

    return yaml.safe_load(suite_text(name))


def builtin_suite(name: str, host_cores: int) -> dict[str, Any]:
    """The suite mapping for a built-in suite name, ``threads: [1, all]`` read on this host."""
    import copy

    mapping = copy.deepcopy(_mapping(name))
    if "threads" in mapping:
        threads = (host_cores if t == "all" else t for t in mapping["threads"])
        mapping["threads"] = sorted(set(threads))
    return mapping


def default_optimizations() -> list[str]:
    """The default suite's optimizations: what `accelbench optimize` makes when not told."""
    return list(_mapping("default")["optimizations"])
