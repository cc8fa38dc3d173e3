"""The Runtime interface that every system under test implements, and TensorSpec for its I/O.

A runtime loads one artifact and runs one inference per ``run`` call; it never times itself (the
scenario does) and knows nothing of scenarios.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from accelbench.runtimes.edge import TensorSpec, check_inputs

__all__ = ["Runtime", "TensorSpec", "check_inputs"]


@runtime_checkable
class Runtime(Protocol):
    """An artifact loaded for inference.

    ``inputs()`` / ``outputs()`` give the order ``run`` takes and returns arrays in; a shape holds
    -1 for a dynamic dimension. ``max_batch_size`` is the fixed batch dimension, or None when the
    batch dimension is dynamic (no limit).
    """

    name: str
    max_batch_size: int | None

    def inputs(self) -> list[TensorSpec]: ...

    def outputs(self) -> list[TensorSpec]: ...

    def set_batch_size(self, n: int) -> None:
        """Prepare for batches of n; ValueError when the batch dimension is fixed to another n."""
        ...

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...

    def info(self) -> dict[str, Any]:
        """What a record needs to reproduce the run: package, version, threads, options."""
        ...

    def close(self) -> None: ...
