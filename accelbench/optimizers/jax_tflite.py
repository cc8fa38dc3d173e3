"""A JAX reference model's parameters -> .tflite, through jax2tf and the Keras models' own
post-training converters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError
from accelbench.keras_compat import legacy_keras
from accelbench.models.jax_models import JAX_OPTIMIZATIONS, jax_spec, predict_fn
from accelbench.optimizers.base import Artifact, OptimizationState
from accelbench.optimizers.converters import CONVERTERS, convert_to_file
from accelbench.optimizers.pipeline import parse_optimization


def export_tflite(
    name: str,
    params: Any,
    optimization: str,
    out_dir: str | Path,
    *,
    x_train: np.ndarray,
    y_train: np.ndarray,
    seed: int = 0,
) -> Any:
    """Convert ``params``' predict function through jax2tf to ``<out_dir>/<optimization>.tflite``.

    jax2tf (StableHLO, lowered for CPU) -> ``tf.function`` -> the concrete function at batch 1
    -> ``TFLiteConverter.from_concrete_functions``, set up by the same converters as the Keras
    models (`accelbench.optimizers.converters`; int8 calibrates on the training inputs). Returns
    an `Artifact`. Pruning, clustering and QAT are Keras-only: UsageError.
    """
    pipeline = parse_optimization(optimization)
    keras_only = [t.name for t in pipeline.transforms if not t.converts]
    if keras_only:
        raise UsageError(
            f"{pipeline.name}: {', '.join(keras_only)} needs a Keras model "
            "(tensorflow-model-optimization wraps Keras layers); a JAX model takes only "
            f"post-training converters: {', '.join(JAX_OPTIMIZATIONS)}"
        )
    converter_step = CONVERTERS[pipeline.transforms[-1].name]
    spec = jax_spec(name)
    legacy_keras()  # TF must see TF_USE_LEGACY_KERAS before it loads, as everywhere else
    import tensorflow as tf
    from jax.experimental import jax2tf

    converted = jax2tf.convert(
        predict_fn(name, params),
        with_gradient=False,
        native_serialization_platforms=("cpu",),
    )
    # Batch 1, as on a device: a fixed shape keeps the graph free of shape arithmetic (which
    # full-integer quantization and the Edge TPU refuse).
    signature = [tf.TensorSpec((1, *spec.input_shape), tf.float32, name="input")]
    function = tf.function(converted, autograph=False, input_signature=signature)
    concrete = function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], function)
    state = OptimizationState(
        model=None,
        x_train=x_train,
        y_train=y_train,
        out_dir=Path(out_dir),
        artifact_name=pipeline.name,
        seed=seed,
    )
    notes = converter_step.configure(converter, state, tf)
    notes["source"] = "jax2tf (native serialization, cpu) -> from_concrete_functions"
    path, notes["convert_s"] = convert_to_file(converter, state.out_dir, pipeline.name)
    return Artifact(
        path=path,
        name=pipeline.name,
        steps=("jax2tf", converter_step.name),
        fine_tune_s=0.0,
        notes={converter_step.name: notes},
    )
