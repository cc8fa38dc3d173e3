"""Model -> artifact transforms that compose: PTQ, QAT, pruning, clustering, and their analysis.

``prune(0.5) | int8`` is a pipeline of two transforms; ``optimize(model, "prune50+int8", ...)``
runs the one a record name stands for. Importing this package imports no framework: TensorFlow
and tensorflow-model-optimization load inside the transforms that need them.
"""

from accelbench.optimizers.analysis import KernelWeights, artifact_stats, kernel_weights
from accelbench.optimizers.base import Artifact, OptimizationState, Pipeline, Transform
from accelbench.optimizers.converters import (
    CONVERTERS,
    Converter,
    dynamic,
    float16,
    fp32,
    int8,
    int16x8,
)
from accelbench.optimizers.evaluation import compare_predictions, predict_tflite, predicted_classes
from accelbench.optimizers.pipeline import as_pipeline, optimize, parse_optimization
from accelbench.optimizers.training import (
    TFMOT_LIMIT,
    cluster,
    prune,
    prune_2of4,
    qat,
    tfmot_problem,
)
from accelbench.optimizers.user_models import load_user_model

__all__ = [
    "CONVERTERS",
    "TFMOT_LIMIT",
    "Artifact",
    "Converter",
    "KernelWeights",
    "OptimizationState",
    "Pipeline",
    "Transform",
    "artifact_stats",
    "as_pipeline",
    "cluster",
    "compare_predictions",
    "dynamic",
    "float16",
    "fp32",
    "int8",
    "int16x8",
    "kernel_weights",
    "load_user_model",
    "optimize",
    "parse_optimization",
    "predict_tflite",
    "predicted_classes",
    "prune",
    "prune_2of4",
    "qat",
    "tfmot_problem",
]
