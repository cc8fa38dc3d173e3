"""Keras 2 for tensorflow-model-optimization: one place that selects tf_keras before TF loads."""

from __future__ import annotations

import os
from typing import Any


def legacy_keras() -> Any:
    """Return the `tf_keras` module (Keras 2), with TF_USE_LEGACY_KERAS=1 set before TF is imported.

    tensorflow-model-optimization works only with Keras 2. Setting the variable after tensorflow
    has been imported does not switch tf.keras, so this must run before any tensorflow import in
    the process; a worker process calls it first.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf_keras

    return tf_keras


def tflite_for_timing(model: Any, precision: str, *, samples: int = 2) -> bytes:
    """A tf_keras ``model`` as .tflite bytes, for graphs timed rather than scored: fp32 as it is,
    or full int8 (int8 in and out) calibrated on ``samples`` uniform random inputs of each of the
    model's input shapes, which set the graph's scales but not its cost."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    shapes = [tuple(int(d) for d in x.shape[1:]) for x in model.inputs]
    return _convert_for_timing(converter, shapes, precision, samples)


def saved_model_tflite_for_timing(path: str, precision: str, *, samples: int = 2) -> bytes:
    """A SavedModel's serving signature as .tflite bytes, as `tflite_for_timing` converts a Keras
    model (the inputs' shapes from the signature, batch 1)."""
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    specs = signature.structured_input_signature[1].values()
    shapes = [tuple(int(d or 1) for d in spec.shape[1:]) for spec in specs]
    # From the concrete function, so that its variables are frozen into constants.
    converter = tf.lite.TFLiteConverter.from_concrete_functions([signature], loaded)
    return _convert_for_timing(converter, shapes, precision, samples)


def _convert_for_timing(
    converter: Any, shapes: list[tuple[int, ...]], precision: str, samples: int
) -> bytes:
    import numpy as np
    import tensorflow as tf

    if precision == "int8":

        def representative() -> Any:
            rng = np.random.default_rng(0)
            for _ in range(samples):
                yield [rng.random((1, *shape), dtype=np.float32) for shape in shapes]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif precision != "fp32":
        raise ValueError(f"precision {precision!r} is not built for timing; use fp32 or int8")
    return converter.convert()
