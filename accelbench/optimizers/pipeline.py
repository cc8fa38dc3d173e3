"""Record names <-> pipelines (`parse_optimization`) and running one on a model (`optimize`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError
from accelbench.optimizers.base import (
    ACCEPTED_NAMES,
    RANK_QAT,
    Artifact,
    OptimizationState,
    Pipeline,
    Transform,
)
from accelbench.optimizers.converters import CONVERTERS, fp32, int8
from accelbench.optimizers.keras_bridge import bridged, is_keras3_model, keras_source
from accelbench.optimizers.training import cluster, prune, prune_2of4, qat

_PRUNE = re.compile(r"prune(\d+)")
_CLUSTER = re.compile(r"cluster(\d+)")


def _parse_step(token: str, name: str) -> tuple[Transform, ...]:
    if token in CONVERTERS:
        return (CONVERTERS[token],)
    if token == "qat_int8":
        return (qat, int8)
    if token == "prune_2of4":
        return (prune_2of4,)
    if match := _PRUNE.fullmatch(token):
        return (prune(int(match.group(1)) / 100),)
    if match := _CLUSTER.fullmatch(token):
        return (cluster(int(match.group(1))),)
    raise UsageError(f"unknown step '{token}' in optimization '{name}'; names are {ACCEPTED_NAMES}")


def parse_optimization(name: str) -> Pipeline:
    """The pipeline a record name stands for: ``prune50+int8`` -> ``prune(0.5) | int8``.

    Steps are joined with '+' in the order applied; a name without a converter at the end
    converts to fp32. ``parse_optimization(n).name == n`` for every canonical name.
    """
    if not isinstance(name, str) or not name.strip():
        raise UsageError(f"an optimization name is needed; names are {ACCEPTED_NAMES}")
    tokens = name.strip().lower().split("+")
    transforms = tuple(t for token in tokens for t in _parse_step(token.strip(), name))
    return _completed(Pipeline(transforms))


def as_pipeline(optimization: str | Transform) -> Pipeline:
    """A name or a transform as a complete pipeline (one that ends in a converter)."""
    if isinstance(optimization, str):
        return parse_optimization(optimization)
    if not isinstance(optimization, Transform):
        raise UsageError(
            f"an optimization is a name such as 'prune50+int8' or a transform, "
            f"not a {type(optimization).__name__}"
        )
    pipeline = optimization if isinstance(optimization, Pipeline) else Pipeline((optimization,))
    return _completed(pipeline)


def _completed(pipeline: Pipeline) -> Pipeline:
    """``pipeline`` ending in a converter: fp32 when it has none (int8 after QAT)."""
    if pipeline.transforms[-1].converts:
        return pipeline
    last = pipeline.transforms[-1]
    return Pipeline((*pipeline.transforms, int8 if last.rank == RANK_QAT else fp32))


def optimize(
    model: Any,
    name: str | Transform,
    train_data: tuple[np.ndarray, np.ndarray],
    out_dir: str | Path,
    *,
    fine_tune_epochs: int = 2,
    seed: int = 0,
    batch_size: int = 32,
) -> Artifact:
    """Apply an optimization to a Keras model and write its .tflite into ``out_dir``.

    ``train_data`` is (x_train, y_train): fine-tuning uses it with the model's own compiled
    loss, and int8/int16x8 calibrate on it. The model passed in is not modified. A Keras 3
    model's training steps (tensorflow-model-optimization) run on its tf_keras rebuild
    (`keras_bridge`); the artifact's ``notes["keras"]`` say which Keras built it.
    """
    pipeline = as_pipeline(name)
    x_train, y_train = _check_train_data(train_data)
    keras_notes: dict[str, Any] = {"keras_source": keras_source(model)}
    if is_keras3_model(model) and any(not t.converts for t in pipeline.transforms):
        # tfmot wraps tf_keras models only: its steps run on a verified tf_keras rebuild.
        rebuilt = bridged(model, x_train)
        model, keras_notes = rebuilt.model, rebuilt.notes()
    problem = pipeline.supports(model)
    if problem:
        raise UsageError(f"cannot apply {pipeline.name}: {problem}")
    if isinstance(fine_tune_epochs, bool) or not isinstance(fine_tune_epochs, int):
        raise UsageError(f"fine_tune_epochs must be a positive integer, not {fine_tune_epochs!r}")
    if fine_tune_epochs < 1:
        raise UsageError(f"fine_tune_epochs must be a positive integer, not {fine_tune_epochs}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}")
    state = OptimizationState(
        model=model,
        x_train=x_train,
        y_train=y_train,
        out_dir=Path(out_dir),
        artifact_name=pipeline.name,
        seed=seed,
        fine_tune_epochs=fine_tune_epochs,
        batch_size=batch_size,
    )
    final = pipeline.apply(state)
    assert final.tflite_path is not None  # a completed pipeline ends in a converter
    return Artifact(
        path=final.tflite_path,
        name=pipeline.name,
        steps=final.steps,
        fine_tune_s=final.fine_tune_s,
        notes={**final.notes, "keras": keras_notes},
    )


def _check_train_data(train_data: Any) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(train_data, tuple | list) or len(train_data) != 2:
        raise UsageError("train_data must be a pair (x_train, y_train) of numpy arrays")
    x_train, y_train = (np.asarray(a) for a in train_data)
    if len(x_train) == 0 or len(x_train) != len(y_train):
        raise UsageError(
            f"train_data must hold as many labels as inputs and at least one of each, "
            f"not {len(x_train)} inputs and {len(y_train)} labels"
        )
    return x_train, y_train
