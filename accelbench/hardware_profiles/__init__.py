"""Hardware profiles: built-in and user YAML profiles, the detected host, and how each runs.

This module imports only pydantic and yaml; calibration (numpy), emulation and projection live
in their own modules and load when used.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from accelbench.errors import UsageError
from accelbench.hardware_profiles.calibrate import detect_host
from accelbench.hardware_profiles.host import (
    attached_accelerators,
    environment_fingerprint,
    execution_mode,
    host_fingerprint_id,
)
from accelbench.hardware_profiles.schema import (
    HOST_NAME,
    Emulation,
    HardwareProfile,
    Source,
    profile_from_mapping,
)

__all__ = [
    "Emulation",
    "HardwareProfile",
    "Source",
    "attached_accelerators",
    "builtin_names",
    "detect_host",
    "environment_fingerprint",
    "execution_mode",
    "fitted_profile_path",
    "host_fingerprint_id",
    "list_profiles",
    "load_profile",
    "validate_profile_file",
]


def _builtin_dir() -> Path:
    return Path(__file__).parent / "builtin"


def builtin_names() -> list[str]:
    """Names of the profiles that ship with accelbench, sorted."""
    return sorted(path.stem for path in _builtin_dir().glob("*.yaml"))


def load_profile(name_or_path: str) -> HardwareProfile:
    """A built-in profile by name, ``host`` (detected now), or a user profile YAML by path."""
    if name_or_path == HOST_NAME:
        return detect_host()
    if name_or_path in builtin_names():
        return validate_profile_file(_builtin_dir() / f"{name_or_path}.yaml")
    fitted = fitted_profile_path(name_or_path)
    if fitted.is_file():
        return validate_profile_file(fitted)
    looks_like_path = (
        os.sep in name_or_path
        or name_or_path.endswith((".yaml", ".yml"))
        or Path(name_or_path).exists()
    )
    if looks_like_path:
        return validate_profile_file(name_or_path)
    known = ", ".join([HOST_NAME, *builtin_names()])
    raise UsageError(
        f"unknown hardware profile '{name_or_path}'; use one of {known}, "
        "or a path to a profile YAML file"
    )


def fitted_profile_path(name: str) -> Path:
    """Where `accelbench profiles fit NAME` writes profile NAME (in accelbench's cache folder)."""
    configured = os.environ.get("ACCELBENCH_CACHE_DIR")
    cache = Path(configured) if configured else Path.home() / ".cache" / "accelbench"
    return cache / "profiles" / f"{name}.yaml"


def validate_profile_file(path: str | os.PathLike[str]) -> HardwareProfile:
    """Read and validate one profile YAML file; any problem is a one-line UsageError."""
    path = Path(path)
    shown = path.name if path.parent == _builtin_dir() else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(
            f"profile file '{path}' does not exist; check the path, or use a built-in name "
            f"({', '.join([HOST_NAME, *builtin_names()])})"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"profile file '{path}' cannot be read ({exc}); check it") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise UsageError(
            f"profile {shown} is not valid YAML ({problem}{where}); fix the syntax there"
        ) from None
    return profile_from_mapping(data, shown)


def list_profiles() -> list[HardwareProfile]:
    """Every known profile: the detected host first, then the built-ins by name."""
    return [detect_host(), *(load_profile(name) for name in builtin_names())]
