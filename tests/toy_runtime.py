"""A runtime from outside accelbench, for test_runtime_registry: a .npy weight matrix W is the
"model", and one inference computes x @ W in numpy.

It is what adding a runtime takes: this module, and ``TOY`` in the registry (register_runtime
here, or ``ACCELBENCH_RUNTIMES=toy_runtime:TOY`` for the CLI and its workers). Like the built-in
runtimes it imports numpy only when a model opens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelbench.runtimes.registry import ArtifactKind, RuntimeInfo

MATMUL_NPY = ArtifactKind("matmul-npy", "a .npy weight matrix", suffixes=(".npy",))


class MatmulRuntime:
    """x @ W for a float32 W of shape (features, outputs) saved with numpy.save."""

    name = "toy"
    max_batch_size = None  # any number of rows

    def __init__(self, artifact: str | Path, *, threads: int | None = None) -> None:
        import numpy as np

        from accelbench.runtimes.base import TensorSpec

        self._np = np
        self.weights = np.load(artifact, allow_pickle=False)
        features, outputs = self.weights.shape
        self.threads = threads
        self._inputs = [TensorSpec("x", (-1, features), "float32")]
        self._outputs = [TensorSpec("y", (-1, outputs), "float32")]

    def inputs(self) -> list[Any]:
        return list(self._inputs)

    def outputs(self) -> list[Any]:
        return list(self._outputs)

    def set_batch_size(self, n: int) -> None:
        pass  # the batch dimension is dynamic

    def run(self, inputs: list[Any]) -> list[Any]:
        (x,) = inputs
        return [self._np.matmul(x, self.weights)]

    def info(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "package": "numpy",
            "version": self._np.__version__,
            "threads": self.threads,
        }

    def close(self) -> None:
        pass


def open_toy(
    artifact: str | Path, *, runtime: str | None, kind: str, threads: int | None, xnnpack: bool
) -> MatmulRuntime:
    return MatmulRuntime(artifact, threads=threads)


TOY = RuntimeInfo(
    "toy",
    artifact_kinds=(MATMUL_NPY,),
    module="numpy",
    packages=("numpy",),
    factory="toy_runtime:open_toy",
)
