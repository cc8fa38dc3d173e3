"""Runtimes (systems under test): open an artifact with the runtime that fits it.

Importing this package imports no framework; TensorFlow or JAX load when such a runtime opens.
"""

from __future__ import annotations

from pathlib import Path

from accelbench.errors import UsageError
from accelbench.runtimes.base import Runtime, TensorSpec
from accelbench.runtimes.inputs import load_inputs, make_inputs
from accelbench.runtimes.validate import validate_tflite

__all__ = [
    "RUNTIME_NAMES",
    "Runtime",
    "TensorSpec",
    "artifact_kind",
    "load_inputs",
    "make_inputs",
    "open_runtime",
    "runtimes_for",
    "validate_tflite",
]

RUNTIME_NAMES = ("litert", "tflite-runtime", "tensorflow", "jax")

# Which runtimes can run which kind of artifact; the first is the default. "tensorflow" on a
# .tflite means TensorFlow's own tf.lite interpreter.
_FITS = {
    "tflite": ("litert", "tflite-runtime", "tensorflow"),
    "savedmodel": ("tensorflow",),
    "keras": ("tensorflow",),
    "jaxexport": ("jax",),
}
_KINDS_TEXT = "a .tflite file, a SavedModel directory, a .keras/.h5 file or a .jaxexport file"


def artifact_kind(artifact: str | Path) -> str:
    """'tflite', 'savedmodel', 'keras' or 'jaxexport'; UsageError for anything else."""
    path = Path(artifact)
    if not path.exists():
        raise UsageError(f"{path} does not exist; pass {_KINDS_TEXT}")
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            return "savedmodel"
        raise UsageError(f"{path} is a directory without saved_model.pb; pass {_KINDS_TEXT}")
    suffix = path.suffix.lower()
    if suffix == ".tflite":
        return "tflite"
    if suffix in (".keras", ".h5", ".hdf5"):
        return "keras"
    if suffix == ".jaxexport":
        return "jaxexport"
    with path.open("rb") as file:
        if file.read(8)[4:8] == b"TFL3":
            return "tflite"
    raise UsageError(f"{path} is not a model accelbench can run; pass {_KINDS_TEXT}")


def runtimes_for(kind: str) -> tuple[str, ...]:
    """The runtimes that can run an artifact of this kind (see artifact_kind); the first is the
    default."""
    return _FITS[kind]


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
    if runtime is not None and runtime not in RUNTIME_NAMES:
        raise UsageError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIME_NAMES)}")
    if threads is not None and (not isinstance(threads, int) or threads < 1):
        raise UsageError(f"threads must be a positive integer or unset, got {threads!r}")
    kind = artifact_kind(artifact)
    if runtime is not None and runtime not in _FITS[kind]:
        raise UsageError(
            f"runtime {runtime!r} cannot run {artifact} (a {kind} artifact); "
            f"use {' or '.join(repr(r) for r in _FITS[kind])}"
        )
    if kind != "tflite" and not xnnpack:
        raise UsageError(
            f"xnnpack=False applies to .tflite models only, and {artifact} is a {kind} artifact; "
            "leave XNNPACK on"
        )

    if kind == "tflite":
        from accelbench.runtimes.edge import TFLiteRuntime

        # The cheap checks only: the interpreter verifies the buffer itself when it loads.
        validate_tflite(artifact, load=False)
        try:
            return TFLiteRuntime(
                artifact, interpreter=runtime or "auto", threads=threads, xnnpack=xnnpack
            )
        except ImportError as err:
            raise UsageError(str(err)) from err
        except ValueError as err:
            raise UsageError(f"{artifact} does not load in the TFLite interpreter ({err})") from err
    if kind == "jaxexport":
        from accelbench.runtimes.jax_runtime import JaxRuntime

        return JaxRuntime(artifact, threads=threads)
    from accelbench.runtimes.tensorflow_runtime import TensorFlowRuntime

    return TensorFlowRuntime(artifact, threads=threads)
