"""Input samples for a runtime: deterministic random ones, or a user's .npy/.npz read and checked.

A sample is one list of arrays, one per input in the runtime's ``inputs()`` order.

Random data (``make_inputs``): floats uniform in [-1, 1); bool uniform; int8/uint8 and quantized
integer inputs cover the whole integer range (which is the calibrated float range of a quantized
input); other integers (int32/int64 are usually token ids or indices) in [0, 10). A dynamic
dimension is ``batch_size`` in dimension 0 and 1 elsewhere.

User data (``load_inputs``): the first axis of every array indexes samples. An array of rank
``len(shape) + 1`` holds whole samples; one of rank ``len(shape)`` holds batch-1 samples (a row per
sample). Float data for a quantized integer input is quantized with the input's scale and zero
point; float data of another precision is cast; integers are cast when every value fits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from accelbench.errors import UsageError
from accelbench.runtimes.edge import TensorSpec, random_inputs

# Distinct inputs a benchmark cycles through: enough to defeat caches, small enough for memory.
DEFAULT_SAMPLE_COUNT = 64


def make_inputs(
    specs: list[TensorSpec], n_samples: int, *, batch_size: int = 1, seed: int = 0
) -> list[list[np.ndarray]]:
    """n_samples deterministic random samples; the first k samples do not depend on n_samples."""
    if not isinstance(n_samples, int) or n_samples < 1:
        raise UsageError(f"n_samples must be a positive integer, got {n_samples!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, got {batch_size!r}")
    for spec in specs:
        if batch_size != 1 and spec.shape and spec.shape[0] not in (-1, batch_size):
            raise UsageError(
                f"input {spec.name!r} has a fixed batch dimension of {spec.shape[0]}, so batch "
                f"size {batch_size} is impossible; use batch size {spec.shape[0]} or a model "
                "with a dynamic batch dimension"
            )
    rng = np.random.default_rng(seed)
    try:
        return [random_inputs(specs, batch_size=batch_size, rng=rng) for _ in range(n_samples)]
    except ValueError as err:
        raise UsageError(f"{err}; pass the inputs as a .npy/.npz file instead") from err


def load_inputs(path: str | Path, specs: list[TensorSpec]) -> list[list[np.ndarray]]:
    """Samples from a .npy (models with one input) or .npz (keys: input names, or arr_0, …)."""
    path = Path(path)
    names = [s.name for s in specs]
    if not path.is_file():
        raise UsageError(f"{path} does not exist; pass a .npy or .npz file of input samples")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            if len(specs) != 1:
                raise UsageError(
                    f"{path} holds one array but the model takes {len(specs)} inputs "
                    f"({', '.join(names)}); save them in an .npz keyed by input name"
                )
            arrays = {names[0]: np.load(path, allow_pickle=False)}
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = _by_input_name(path, dict(archive), names)
        else:
            raise UsageError(f"{path} is not a .npy or .npz file; save the samples with NumPy")
    except (ValueError, OSError) as err:
        raise UsageError(f"{path} cannot be read as NumPy data ({err}); save it again") from err

    per_input = [_samples(path, spec, arrays[spec.name]) for spec in specs]
    counts = {spec.name: len(samples) for spec, samples in zip(specs, per_input, strict=True)}
    if len(set(counts.values())) > 1:
        raise UsageError(
            f"{path} holds different numbers of samples per input ({counts}); "
            "give every input the same number along the first axis"
        )
    if not per_input or not per_input[0]:
        raise UsageError(f"{path} holds no samples; give at least one along the first axis")
    return [list(sample) for sample in zip(*per_input, strict=True)]


def _by_input_name(
    path: Path, archive: dict[str, np.ndarray], names: list[str]
) -> dict[str, np.ndarray]:
    positional = [f"arr_{i}" for i in range(len(names))]
    if set(archive) == set(names):
        return archive
    if set(archive) == set(positional):
        return {name: archive[key] for name, key in zip(names, positional, strict=True)}
    raise UsageError(
        f"{path} holds arrays {sorted(archive)} but the model takes inputs {names}; "
        f"key them by those names (or arr_0..arr_{len(names) - 1} in that order)"
    )


def _samples(path: Path, spec: TensorSpec, array: np.ndarray) -> list[np.ndarray]:
    """Split one input's array into samples of the spec's shape and dtype."""
    expected = f"samples of shape {list(spec.shape)} {spec.dtype} (-1 = any) on the first axis"
    if array.ndim == len(spec.shape) + 1:
        sample_shape = array.shape[1:]
    elif array.ndim == len(spec.shape) and array.ndim >= 1 and spec.shape[0] in (-1, 1):
        sample_shape = (1, *array.shape[1:])  # one row per sample: a batch of one
    else:
        sample_shape = None
    if sample_shape is None or not all(
        w in (-1, g) for w, g in zip(spec.shape, sample_shape, strict=True)
    ):
        raise UsageError(
            f"{path} does not fit input {spec.name!r}: expected {expected}, "
            f"got an array of shape {list(array.shape)}"
        )
    array = _convert(path, spec, array)
    return [np.ascontiguousarray(row.reshape(sample_shape)) for row in array]


def _convert(path: Path, spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """Return the array in the spec's dtype, or raise UsageError if that would change values."""
    want = np.dtype(spec.dtype)
    got = array.dtype
    if got == want:
        return array
    if got.kind == "f" and want.kind == "f":
        return array.astype(want)
    if got.kind == "f" and want.kind in "iu" and spec.quantization:
        scale, zero_point = spec.quantization
        info = np.iinfo(want)
        quantized = np.round(array / scale) + zero_point
        return np.clip(quantized, info.min, info.max).astype(want)
    if got.kind in "iu" and want.kind in "iu":
        info = np.iinfo(want)
        if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
            return array.astype(want)
    raise UsageError(
        f"{path} does not fit input {spec.name!r}: expected {spec.dtype} data, got {got.name}; "
        f"save the array as {spec.dtype}"
    )
