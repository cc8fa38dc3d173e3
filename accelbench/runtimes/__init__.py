"""Runtimes (systems under test): open an artifact with the runtime that fits it.

Importing this package imports no framework, nor numpy: the registry (``registry.RUNTIMES``)
is read by commands that never open a model, and the rest loads on first use.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from accelbench.errors import UsageError
from accelbench.runtimes.registry import (
    RUNTIMES,
    artifact_kinds,
    kinds_text,
    runtime_info,
    runtimes_for,
)

if TYPE_CHECKING:
    from accelbench.runtimes.base import Runtime, TensorSpec
    from accelbench.runtimes.inputs import load_inputs, make_inputs
    from accelbench.runtimes.validate import validate_tflite

__all__ = [
    "RUNTIME_NAMES",
    "RUNTIMES",
    "Runtime",
    "TensorSpec",
    "artifact_kind",
    "load_inputs",
    "make_inputs",
    "open_runtime",
    "runtimes_for",
    "validate_tflite",
]

# Names this package exports from modules that import numpy, imported when first asked for.
_LAZY = {
    "Runtime": "accelbench.runtimes.base",
    "TensorSpec": "accelbench.runtimes.base",
    "load_inputs": "accelbench.runtimes.inputs",
    "make_inputs": "accelbench.runtimes.inputs",
    "validate_tflite": "accelbench.runtimes.validate",
}


def __getattr__(name: str) -> Any:
    if name == "RUNTIME_NAMES":  # the registered runtimes' names now, in registration order
        return tuple(RUNTIMES)
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def artifact_kind(artifact: str | Path) -> str:
    """The kind of artifact a path is ('tflite', 'savedmodel', 'keras', 'jaxexport' or one a
    registered runtime adds); UsageError for anything else."""
    path = Path(artifact)
    kinds = artifact_kinds()
    if not path.exists():
        raise UsageError(f"{path} does not exist; pass {kinds_text()}")
    if path.is_dir():
        for kind in kinds:
            if any((path / marker).exists() for marker in kind.directory_markers):
                return kind.name
        markers = " or ".join(k.directory_markers[0] for k in kinds if k.directory_markers)
        raise UsageError(f"{path} is a directory without {markers}; pass {kinds_text()}")
    suffix = path.suffix.lower()
    for kind in kinds:
        if suffix in kind.suffixes:
            return kind.name
    sniffed = [(kind.name, *kind.magic) for kind in kinds if kind.magic]
    if sniffed:
        with path.open("rb") as file:
            header = file.read(max(offset + len(magic) for _, offset, magic in sniffed))
        for name, offset, magic in sniffed:
            if header[offset : offset + len(magic)] == magic:
                return name
    raise UsageError(f"{path} is not a model accelbench can run; pass {kinds_text()}")


def open_runtime(
    artifact: str | Path,
    runtime: str | None = None,
    *,
    threads: int | None = None,
    xnnpack: bool = True,
) -> Runtime:
    """Load artifact in the named runtime, or in the default one for its kind when runtime is None.

    Raises UsageError for an unknown runtime name, a runtime that cannot run this kind of
    artifact, a bad thread count, or a file that is not a loadable model.
    """
    if runtime is not None:
        runtime_info(runtime)  # an unknown name: the UsageError that lists the known ones
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads must be a positive integer or unset, got {threads!r}")
    kind = artifact_kind(artifact)
    fits = runtimes_for(kind)
    if runtime is not None and runtime not in fits:
        raise UsageError(
            f"runtime {runtime!r} cannot run {artifact} (a {kind} artifact); "
            f"use {' or '.join(repr(r) for r in fits)}"
        )
    if kind != "tflite" and not xnnpack:
        raise UsageError(
            f"xnnpack=False applies to .tflite models only, and {artifact} is a {kind} artifact; "
            "leave XNNPACK on"
        )
    info = RUNTIMES[runtime or fits[0]]
    return info.open(artifact, runtime=runtime, kind=kind, threads=threads, xnnpack=xnnpack)
