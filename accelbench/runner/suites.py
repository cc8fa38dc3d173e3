"""The built-in suites: `default` (what `accelbench run` runs), `full` (all reference models) and
`ci` (a pull request's quick regression check)."""

from __future__ import annotations

from typing import Any

# Every optimization on every class of profile: host at 1 thread and at all cores (threads
# unset = both are added below), an emulated Raspberry Pi 4, and the int8-only Coral Edge TPU.
DEFAULT_OPTIMIZATIONS = [
    "fp32",
    "dynamic",
    "float16",
    "int8",
    "prune50+int8",
    "qat_int8",
    "cluster16+int8",
]


def builtin_suite(name: str, host_cores: int) -> dict[str, Any]:
    """The suite mapping for a built-in suite name (default, full or ci)."""
    threads = sorted({1, host_cores})
    if name == "default":
        return {
            "name": "default",
            "models": [
                {"name": "digits_cnn"},
                {"name": "breast_cancer_mlp"},
                {"name": "ic_resnet8"},
            ],
            "optimizations": DEFAULT_OPTIMIZATIONS,
            # The Pi runs at its own 4 threads (capped to this host's cores), not the host's sweep.
            "profiles": ["host", {"name": "rpi4", "threads": [4]}, "coral-edgetpu"],
            "threads": threads,
            "scenarios": ["single-stream", "offline"],
            "preset": "quick",
        }
    if name == "full":
        from accelbench.models import list_specs

        return {
            "name": "full",
            "models": [{"name": spec.name} for spec in list_specs()],
            "optimizations": [
                *DEFAULT_OPTIMIZATIONS,
                "int16x8",
                "prune_2of4+int8",
                "prune50+qat_int8",
            ],  # fmt: skip
            "profiles": [
                "host",
                {"name": "rpi4", "threads": [4]},
                {"name": "rpi5", "threads": [4]},
                "coral-edgetpu",
                "jetson-orin-nano",
                "nvidia-t4",
            ],
            "threads": threads,
            "scenarios": ["single-stream", "offline", "server"],
            "preset": "standard",
        }
    if name == "ci":
        # A pull request's gate: two small real-data models, fp32 and int8, on this host at one
        # thread (one thread is the least disturbed by a shared runner's other tenants), latency
        # and throughput at the quick preset. Minutes, not the default suite's ten; compare it only
        # against a baseline made by the same suite on the same kind of machine (docs/ci.md).
        return {
            "name": "ci",
            "models": [{"name": "digits_cnn"}, {"name": "breast_cancer_mlp"}],
            "optimizations": ["fp32", "int8"],
            "profiles": ["host"],
            "threads": [1],
            "scenarios": ["single-stream", "offline"],
            "preset": "quick",
        }
    raise KeyError(name)


BUILTIN_SUITES = ("default", "full", "ci")
