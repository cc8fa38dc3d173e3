"""Opens a .tflite for accelbench: the file's cheap checks, then the edge runner's interpreter.

``edge.py`` stays free of accelbench (it is copied alone to devices), so the checks and the
UsageError wording live here.
"""

from __future__ import annotations

from pathlib import Path

from accelbench.errors import UsageError
from accelbench.runtimes.edge import TFLiteRuntime
from accelbench.runtimes.validate import validate_tflite


def open_tflite(
    artifact: str | Path,
    *,
    runtime: str | None,
    kind: str,
    threads: int | None,
    xnnpack: bool,
) -> TFLiteRuntime:
    """The registry's factory for .tflite models: ``runtime`` names the interpreter package
    (litert, tflite-runtime, tensorflow), None the first one installed."""
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
