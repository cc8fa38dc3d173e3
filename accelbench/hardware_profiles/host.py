"""What this machine is: CPU, cores, memory, GPUs, software versions, and a stable hardware id."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from accelbench.hardware_profiles.schema import (
    ACCELERATOR_KINDS,
    HOST_NAME,
    Execution,
    HardwareProfile,
    device_matches,
)
from accelbench.runtimes.registry import RUNTIMES

# Flags that change how fast a model runs here; the full list is hundreds long and mostly noise.
RELEVANT_CPU_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "avx_vnni",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    # Arm (the 'Features' line of /proc/cpuinfo)
    "neon",
    "asimd",
    "asimdhp",
    "asimddp",
    "fphp",
    "i8mm",
    "bf16",
    "sve",
    "sve2",
)

# Besides each runtime's own packages (runtimes/registry.py): what every run uses, and what
# makes the optimized artifacts.
_OTHER_PACKAGES = ("numpy", "tensorflow-model-optimization", "mlcommons-loadgen")

_VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD", "0x41": "Arm", "0x61": "Apple"}


@functools.cache
def cpu_info() -> dict[str, Any]:
    """CPU model, vendor and the relevant flags, from /proc/cpuinfo where it exists."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    model = (
        fields.get("model name")
        or fields.get("Model")  # Raspberry Pi kernels name the board here
        or fields.get("Hardware")
        or platform.processor()
        or platform.machine()
    )
    vendor_code = fields.get("vendor_id") or fields.get("CPU implementer") or ""
    flags = set((fields.get("flags") or fields.get("Features") or "").split())
    return {
        "cpu_model": model,
        "cpu_vendor": _VENDORS.get(vendor_code, vendor_code or "unknown"),
        "cpu_flags": [flag for flag in RELEVANT_CPU_FLAGS if flag in flags],
        "machine": platform.machine(),
    }


def available_cores() -> int:
    """Cores this process may run on (its affinity mask), which a container or taskset narrows."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def memory_bytes() -> dict[str, int | None]:
    """Physical memory, and the cgroup cap where a container sets one lower."""
    import psutil

    total = int(psutil.virtual_memory().total)
    cap: int | None = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            raw = Path(path).read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < total:
            cap = int(raw)
        break
    return {"total": total, "cgroup_limit": cap}


@functools.cache
def gpus() -> tuple[dict[str, str], ...]:
    """NVIDIA GPUs from nvidia-smi (name, driver, memory); empty where there is none."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    found = []
    for line in out.strip().splitlines():
        parts = [part.strip() for part in line.split(",")]
        if len(parts) >= 3:
            found.append({"name": parts[0], "driver": parts[1], "memory_mib": parts[2]})
    return tuple(found)


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that change results, read without importing them."""
    versions: dict[str, str | None] = {}
    runtime_packages = [package for info in RUNTIMES.values() for package in info.packages]
    for name in dict.fromkeys((*_OTHER_PACKAGES, *runtime_packages)):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def installed_runtimes() -> list[str]:
    """The runtimes whose package is importable here (found, not imported)."""
    return [name for name, info in RUNTIMES.items() if importlib.util.find_spec(info.module)]


def git_state(cwd: str | Path | None = None) -> dict[str, Any]:
    """The commit of the repository around ``cwd`` and whether its tree has changes."""

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"git_commit": None, "git_dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": commit, "git_dirty": bool(status) if status is not None else None}


def environment_fingerprint() -> dict[str, Any]:
    """Everything about this machine and its software that a result depends on, for the record."""
    import psutil

    memory = memory_bytes()
    cpu = cpu_info()
    return {
        "host_fingerprint_id": host_fingerprint_id(),
        "cpu_model": cpu["cpu_model"],
        "cpu_vendor": cpu["cpu_vendor"],
        "cpu_flags": cpu["cpu_flags"],
        "machine": cpu["machine"],
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "available_cores": available_cores(),
        "memory_total_gb": round(memory["total"] / 2**30, 2),
        "memory_cgroup_limit_gb": (
            round(memory["cgroup_limit"] / 2**30, 2) if memory["cgroup_limit"] else None
        ),
        "os": platform.system(),
        "os_release": _os_release(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "packages": package_versions(),
        "gpus": [dict(gpu) for gpu in gpus()],
        **git_state(),
    }


def host_fingerprint_id() -> str:
    """A short hash of the fields that identify this hardware, stable across runs and reboots."""
    import psutil

    cpu = cpu_info()
    identity = {
        "cpu_model": cpu["cpu_model"],
        "cpu_flags": cpu["cpu_flags"],
        "machine": cpu["machine"],
        "logical_cores": os.cpu_count(),
        # Rounded: the kernel reserves a little memory, and that varies between boots.
        "memory_gb": round(psutil.virtual_memory().total / 2**30),
        "gpus": sorted(gpu["name"] for gpu in gpus()),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return digest[:12]


def _os_release() -> str | None:
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return None


# Set to device names separated by commas (as nvidia-smi or JAX name them, e.g. "NVIDIA H100 80GB
# HBM3"), or to "none", to replace the detection of attached accelerators.
ATTACHED_ENV = "ACCELBENCH_ATTACHED_DEVICES"


def execution_mode(profile: HardwareProfile) -> Execution:
    """How a cell on ``profile`` runs: the detected host always locally; a GPU or TPU profile
    locally when a matching device is attached (see `attached_accelerators`); others as declared."""
    if profile.name == HOST_NAME:
        return "local"
    if profile.kind in ACCELERATOR_KINDS and any(
        device_matches(profile, device) for device in attached_accelerators()
    ):
        return "local"
    return profile.execution


def attached_accelerators() -> tuple[str, ...]:
    """Names of the GPUs/TPUs attached to this machine, found without importing a framework.

    ``$ACCELBENCH_ATTACHED_DEVICES`` replaces the detection ("none": no device). Otherwise:
    NVIDIA GPUs from ``nvidia-smi`` (cached per process), and a Cloud TPU from
    ``$TPU_ACCELERATOR_TYPE`` where the TPU VM sets it.
    """
    override = os.environ.get(ATTACHED_ENV)
    if override is not None:
        names = [n.strip() for n in override.split(",") if n.strip()]
        return () if [n.lower() for n in names] == ["none"] else tuple(names)
    found = [gpu["name"] for gpu in gpus()]
    tpu = os.environ.get("TPU_ACCELERATOR_TYPE")
    if tpu:
        found.append(f"TPU {tpu}")
    return tuple(found)
