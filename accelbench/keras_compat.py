"""Keras 2 for tensorflow-model-optimization: one place that selects tf_keras before TF loads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def keras_tflite_converter(model: Any) -> Iterator[Any]:
    """A TFLiteConverter for a Keras ``model``, valid inside the ``with`` block.

    ``TFLiteConverter.from_keras_model`` converts a tf_keras model through a SavedModel that
    Keras's own serializer writes, and that serializer traces every layer's call function, which
    is most of a large model's conversion. Here a functional tf_keras model is saved as one
    serving signature over its weights instead (the same signature: inference mode, the inputs'
    names, the outputs keyed by the model's output names) and converted from that SavedModel:
    the same .tflite byte for byte but one, the conversion metadata's source model type. A
    quantization-aware MobileNetV2 (alpha 0.35, 32x32) to int8 took 28.9 s the old way and
    8.4 s this way (2-core VM, 2026-12-06). Other models (Keras 3, which the converter exports
    quickly itself, or subclassed) and any model this signature cannot save go through
    ``from_keras_model`` as before.
    """
    import tensorflow as tf

    with tempfile.TemporaryDirectory(prefix="accelbench-convert-") as folder:
        try:
            _save_serving_signature(model, folder)
        except Exception:  # noqa: BLE001 - the converter's own path still handles such models
            yield tf.lite.TFLiteConverter.from_keras_model(model)
        else:
            yield tf.lite.TFLiteConverter.from_saved_model(folder)


def _save_serving_signature(model: Any, folder: str) -> None:
    import tensorflow as tf

    names = getattr(model, "output_names", None)
    if not type(model).__module__.startswith("tf_keras.") or not model.inputs or not names:
        raise TypeError("not a functional tf_keras model")
    specs = [tf.TensorSpec(x.shape, x.dtype, name=x.name.split(":")[0]) for x in model.inputs]

    def serve(*inputs: Any) -> dict[str, Any]:
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        return dict(zip(names, tf.nest.flatten(outputs), strict=True))

    weights = tf.Module()
    weights.variables_list = list(model.weights)  # what the signature reads, and nothing of Keras
    signature = tf.function(serve, input_signature=specs).get_concrete_function()
    tf.saved_model.save(weights, folder, signatures=signature)


def tflite_for_timing(model: Any, precision: str, *, samples: int = 2) -> bytes:
    """A tf_keras ``model`` as .tflite bytes, for graphs timed rather than scored: fp32 as it is,
    or full int8 (int8 in and out) calibrated on ``samples`` uniform random inputs of each of the
    model's input shapes, which set the graph's scales but not its cost."""
    shapes = [tuple(int(d) for d in x.shape[1:]) for x in model.inputs]
    with keras_tflite_converter(model) as converter:
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
