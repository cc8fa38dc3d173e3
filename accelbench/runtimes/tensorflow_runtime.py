"""The TensorFlow runtime: a SavedModel's serving_default signature, or a Keras .keras/.h5 model.

TensorFlow is imported here only, when a runtime is opened. Inputs are ordered by name (as
SavedModel and TFLite signatures order them, so the same model converted to .tflite takes the
same order); a Keras model's outputs keep the model's order, which the TFLite converter names
output_0, output_1, …
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError, failure_reason
from accelbench.runtimes.base import FixedSpecsRuntime
from accelbench.runtimes.edge import TensorSpec, check_inputs
from accelbench.runtimes.model_inspect import refuse_unsafe
from accelbench.runtimes.registry import KERAS

KERAS_SUFFIXES = KERAS.suffixes


def _import_tensorflow(threads: int | None) -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    if threads is None:
        return tf
    threading = tf.config.threading
    # inter-op 1: independent ops run one after another, so `threads` bounds the compute threads.
    wanted = (threads, 1)
    if (
        threading.get_intra_op_parallelism_threads(),
        threading.get_inter_op_parallelism_threads(),
    ) == wanted:
        return tf
    try:
        threading.set_intra_op_parallelism_threads(threads)
        threading.set_inter_op_parallelism_threads(1)
    except RuntimeError as err:
        raise RuntimeError(
            f"TensorFlow already started in this process, so its threads cannot be set to "
            f"{threads}; open the runtime in a fresh process (the runner's worker does)"
        ) from err
    return tf


def _spec(name: str, shape: Any, dtype: Any) -> TensorSpec:
    dims = tuple(-1 if d is None else int(d) for d in shape)
    return TensorSpec(name=name, shape=dims, dtype=np.dtype(getattr(dtype, "name", dtype)).name)


class TensorFlowRuntime(FixedSpecsRuntime):
    """A SavedModel directory or a Keras .keras/.h5 file, run with TensorFlow."""

    name = "tensorflow"

    def __init__(self, artifact: str | Path, *, threads: int | None = None) -> None:
        self.artifact = Path(artifact)
        self.threads = threads
        # Before TensorFlow or Keras reads a byte of it: a Lambda layer runs code as it loads.
        refuse_unsafe(self.artifact)
        tf = _import_tensorflow(threads)
        self._tf = tf
        if self.artifact.is_dir():
            self._format = "savedmodel"
            self._keras = None
            self._load_saved_model(tf)
        elif self.artifact.suffix.lower() in KERAS_SUFFIXES:
            self._format = self.artifact.suffix.lower().lstrip(".")
            self._load_keras(tf)
        else:
            raise UsageError(
                f"{self.artifact} is neither a SavedModel directory nor a .keras/.h5 file; "
                "pass one of those to runtime 'tensorflow'"
            )
        # Positions stand in for interpreter tensor indices.
        self._inputs = [replace(s, index=i) for i, s in enumerate(self._inputs)]
        self._outputs = [replace(s, index=i) for i, s in enumerate(self._outputs)]
        self.max_batch_size = _max_batch_size(self._inputs)
        self._batch_size: int | None = None

    def _load_saved_model(self, tf: Any) -> None:
        try:
            self._loaded = tf.saved_model.load(str(self.artifact))
        # A damaged export fails in many ways (OSError, IndexError, OpError, ...): all are its.
        except Exception as err:  # noqa: BLE001
            raise UsageError(
                f"{self.artifact} does not load as a SavedModel ({failure_reason(err)}); "
                "export or copy it again"
            ) from err
        signatures = dict(self._loaded.signatures)
        if "serving_default" not in signatures:
            raise UsageError(
                f"{self.artifact} has no 'serving_default' signature (it has "
                f"{sorted(signatures) or 'none'}); export it with one"
            )
        function = signatures["serving_default"]
        _, kwargs = function.structured_input_signature
        self._inputs = [_spec(n, kwargs[n].shape, kwargs[n].dtype) for n in sorted(kwargs)]
        outputs = function.structured_outputs
        self._outputs = [_spec(n, outputs[n].shape, outputs[n].dtype) for n in sorted(outputs)]
        names = [s.name for s in self._inputs]
        output_names = [s.name for s in self._outputs]

        def call(arrays: list[np.ndarray]) -> list[Any]:
            result = function(**{n: tf.constant(a) for n, a in zip(names, arrays, strict=True)})
            return [result[n] for n in output_names]

        self._call = call  # a signature is already a traced graph function

    def _load_keras(self, tf: Any) -> None:
        model, self._keras = _load_keras_model(self.artifact)
        names = [t.name.split(":")[0] for t in model.inputs]
        order = sorted(range(len(names)), key=lambda i: names[i])
        self._inputs = [
            _spec(names[i], model.inputs[i].shape, model.inputs[i].dtype) for i in order
        ]
        output_names = list(getattr(model, "output_names", None) or [])
        if len(output_names) != len(model.outputs):
            output_names = [f"output_{i}" for i in range(len(model.outputs))]
        self._outputs = [
            _spec(n, t.shape, t.dtype) for n, t in zip(output_names, model.outputs, strict=True)
        ]
        signature = [
            tf.TensorSpec([None if d == -1 else d for d in s.shape], s.dtype) for s in self._inputs
        ]
        position = {i: k for k, i in enumerate(order)}  # model position -> position in _inputs

        # Traced once here, for every batch size (dynamic dims are None in the signature).
        @tf.function(input_signature=signature)
        def forward(*tensors: Any) -> Any:
            ordered = [tensors[position[i]] for i in range(len(names))]
            result = model(ordered if len(ordered) > 1 else ordered[0], training=False)
            return list(result) if isinstance(result, (list, tuple)) else [result]

        forward.get_concrete_function()
        self._model = model
        self._call = lambda arrays: forward(*arrays)

    def set_batch_size(self, n: int) -> None:
        self._check_batch_size(n, f"use batch size {self.max_batch_size}")
        self._batch_size = n

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        check_inputs(self._inputs, inputs, self.artifact.name)
        return [np.asarray(t.numpy()) for t in self._call(inputs)]

    def info(self) -> dict[str, Any]:
        threading = self._tf.config.threading
        return {
            "runtime": self.name,
            "package": "tensorflow",
            "version": self._tf.__version__,
            "format": self._format,
            "keras": self._keras,
            "threads": self.threads,
            "intra_op_threads": threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": threading.get_inter_op_parallelism_threads(),
        }

    def close(self) -> None:
        self._call = None
        self._model = self._loaded = None


def open_tensorflow(
    artifact: str | Path,
    *,
    runtime: str | None,
    kind: str,
    threads: int | None,
    xnnpack: bool,
) -> Any:
    """The registry's factory for runtime 'tensorflow': a .tflite in TensorFlow's own tf.lite
    interpreter, anything else in TensorFlowRuntime."""
    if kind == "tflite":
        from accelbench.runtimes.tflite import open_tflite

        return open_tflite(
            artifact, runtime="tensorflow", kind=kind, threads=threads, xnnpack=xnnpack
        )
    return TensorFlowRuntime(artifact, threads=threads)


def _max_batch_size(specs: list[TensorSpec]) -> int | None:
    batch_dims = {s.shape[0] for s in specs if s.shape}
    if not batch_dims or -1 in batch_dims:
        return None
    return min(batch_dims)


def _load_keras_model(path: Path) -> tuple[Any, str]:
    """Load with Keras 3 or tf_keras (Keras 2), whichever reads the file.

    tf_keras goes first when TF_USE_LEGACY_KERAS is set (the process already chose Keras 2), but
    a file that only Keras 3 can read still loads: the variable says which to try first, not
    which file formats exist.
    """
    legacy = os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
    loaders = [_load_with_tf_keras, _load_with_keras3]
    failures = []
    for load in loaders if legacy else reversed(loaders):
        try:
            return load(path)
        except UsageError:
            raise
        except Exception as err:  # a file of the other Keras fails in many ways: try the next
            failures.append(str(err))
    raise UsageError(f"{path} does not load as a Keras model ({'; '.join(failures)})")


def _load_with_keras3(path: Path) -> tuple[Any, str]:
    import keras

    if keras.backend.backend() != "tensorflow":
        raise UsageError(
            f"Keras runs on the {keras.backend.backend()!r} backend; set "
            "KERAS_BACKEND=tensorflow to run a Keras model with runtime 'tensorflow'"
        )
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True), (
            f"keras {keras.__version__}"
        )
    except Exception as err:
        raise RuntimeError(f"keras: {_one_line(err)}") from err


def _load_with_tf_keras(path: Path) -> tuple[Any, str]:
    import tf_keras

    try:
        return tf_keras.models.load_model(path, compile=False, safe_mode=True), (
            f"tf_keras {tf_keras.__version__}"
        )
    except Exception as err:
        raise RuntimeError(f"tf_keras: {_one_line(err)}") from err


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:300]
