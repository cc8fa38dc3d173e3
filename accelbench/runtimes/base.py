"""The Runtime interface that every system under test implements, and TensorSpec for its I/O.

A runtime loads one artifact and runs one inference per ``run`` call; it never times itself (the
scenario does) and knows nothing of scenarios.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from accelbench.runtimes.edge import TensorSpec, check_inputs

__all__ = ["FixedSpecsRuntime", "Runtime", "TensorSpec", "check_inputs"]


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


class FixedSpecsRuntime:
    """Shared parts of runtimes whose input/output specs are fixed when the artifact loads."""

    artifact: Any
    max_batch_size: int | None
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def _check_batch_size(self, n: int, fix: str) -> None:
        """ValueError when a fixed batch dimension rules out batch size n; `fix` says what to do."""
        if self.max_batch_size is not None and n != self.max_batch_size:
            raise ValueError(
                f"{self.artifact.name} has a fixed batch dimension of {self.max_batch_size}, so "
                f"batch size {n} is impossible; {fix}"
            )
