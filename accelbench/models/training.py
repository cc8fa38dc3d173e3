"""Training with fixed seeds, and the one evaluation path every predictor uses."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from accelbench.errors import UsageError
from accelbench.models.spec import Dataset, ModelSpec, TrainResult

# The share of normal training samples an anomaly detector may flag: its threshold is the 95th
# percentile of the anomaly scores on the normal training data.
ANOMALY_THRESHOLD_PERCENTILE = 95.0


def train(
    spec: ModelSpec, data: Dataset, *, seed: int = 0, epochs: int | None = None
) -> TrainResult:
    """Build ``spec``'s model with ``seed``, fit it on ``data`` and measure it.

    Python, numpy and TensorFlow are seeded and TensorFlow's op determinism is on, so the same
    seed, data and machine give the same weights. The test set is scored with `evaluate`'s code
    at the end of every epoch (its time is not counted) to find the time to target.
    """
    if spec.framework == "jax":
        raise UsageError(
            f"{spec.name} is a JAX model; train it with accelbench.models.jax_models.train"
        )
    from accelbench.keras_compat import legacy_keras

    keras = legacy_keras()
    import tensorflow as tf

    epochs = spec.epochs if epochs is None else epochs
    if not isinstance(epochs, int) or epochs < 1:
        raise UsageError(f"epochs must be a positive integer, got {epochs!r}; for example 5")
    check_dataset(spec, data, origin="the dataset given to train()")
    # Cheap on CPU for these layers; it makes reductions (and so the weights) repeatable.
    tf.config.experimental.enable_op_determinism()
    model = spec.build(seed)
    keras.utils.set_random_seed(seed)  # again: shuffling and dropout draw from it during fit
    targets = data.x_train if spec.is_autoencoder else data.y_train

    history: dict[str, list[float]] = {"loss": [], "quality": [], "elapsed_s": []}
    clock = {"train_s": 0.0, "epoch_start": 0.0, "to_target": None}

    class _EpochQuality(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            clock["epoch_start"] = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            clock["train_s"] += time.perf_counter() - clock["epoch_start"]
            quality = quality_from_scores(
                spec, _predict(self.model, data.x_test), data.y_test, data.x_test
            )
            history["loss"].append(float((logs or {}).get("loss", float("nan"))))
            history["quality"].append(quality)
            history["elapsed_s"].append(clock["train_s"])
            if clock["to_target"] is None and quality >= spec.target:
                clock["to_target"] = clock["train_s"]

    def cosine_decay(epoch: int, learning_rate: float) -> float:
        # Few epochs at a high rate leave batch-norm models jumpy from epoch to epoch; decaying
        # to near zero makes the final weights (and the accuracy they score) settle.
        return spec.learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / epochs))

    started = time.perf_counter()
    model.fit(
        data.x_train,
        targets,
        epochs=epochs,
        batch_size=spec.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[keras.callbacks.LearningRateScheduler(cosine_decay), _EpochQuality()],
    )
    wall_s = time.perf_counter() - started
    return TrainResult(
        model=model,
        quality=history["quality"][-1],
        epochs=epochs,
        wall_s=wall_s,
        time_to_target_s=clock["to_target"],
        history=history,
    )


def _predict(model_or_predict_fn: Any, x: np.ndarray) -> np.ndarray:
    if hasattr(model_or_predict_fn, "predict") and hasattr(model_or_predict_fn, "layers"):
        return np.asarray(model_or_predict_fn.predict(x, batch_size=512, verbose=0))
    if not callable(model_or_predict_fn):
        raise UsageError(
            "evaluate() needs a Keras model or a function predict_fn(x) -> scores, "
            f"got {type(model_or_predict_fn).__name__}"
        )
    return np.asarray(model_or_predict_fn(x))


def anomaly_scores(reconstructions: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Mean squared reconstruction error per sample: the autoencoder's anomaly score."""
    recon = np.asarray(reconstructions, dtype=np.float64).reshape(len(x), -1)
    return np.mean((recon - np.asarray(x, dtype=np.float64).reshape(len(x), -1)) ** 2, axis=1)


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve for labels 0/1 and scores where higher means "1" (ties count 1/2).

    Computed as the Mann-Whitney U statistic from average ranks, so it needs only numpy.
    """
    y = np.asarray(y_true).reshape(-1).astype(bool)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise UsageError("ROC AUC needs both normal (0) and anomalous (1) test samples; add both")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_scores = s[order]
    # Average ranks over runs of tied scores.
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _class_scores(spec: ModelSpec, scores: np.ndarray, x: np.ndarray | None) -> np.ndarray:
    """Per-sample outputs as 1-D anomaly scores (autoencoder) or (n, classes) class scores."""
    scores = np.asarray(scores)
    if spec.is_autoencoder:
        if scores.ndim == 1:
            return scores.astype(np.float64)  # already anomaly scores
        if x is None:
            raise UsageError(
                f"{spec.name} outputs reconstructions; pass x= (the inputs) so the reconstruction "
                "error can be computed"
            )
        return anomaly_scores(scores, x)
    scores = scores.reshape(len(scores), -1)
    if scores.shape[1] != spec.num_classes:
        raise UsageError(
            f"{spec.name} predictions have {scores.shape[1]} scores per sample, expected "
            f"{spec.num_classes} (one per class); check the model's output"
        )
    return scores


def quality_from_scores(
    spec: ModelSpec, scores: np.ndarray, y_true: np.ndarray, x: np.ndarray | None = None
) -> float:
    """The spec's quality metric from raw model outputs.

    Classifiers: ``scores`` is ``(n, num_classes)`` and the result is top-1 accuracy. The
    autoencoder: ``scores`` is either the reconstructions ``(n, 640)`` (then pass ``x``) or
    per-sample anomaly scores ``(n,)``, and the result is the ROC AUC against ``y_true``.
    """
    y = np.asarray(y_true).reshape(-1)
    values = _class_scores(spec, scores, x)
    if len(values) != len(y):
        raise UsageError(f"{len(values)} predictions for {len(y)} labels; give one per sample")
    if spec.is_autoencoder:
        return roc_auc(y, values)
    return float(np.mean(np.argmax(values, axis=1) == y))


def evaluate(
    spec: ModelSpec, model_or_predict_fn: Any | Callable[[np.ndarray], np.ndarray], data: Dataset
) -> dict[str, Any]:
    """Score a Keras model or any ``predict_fn(x) -> outputs`` on ``data``'s test split.

    ``predict_fn`` receives the whole input array ``(n, *input_shape)`` and returns the model's
    outputs for it (class scores, or reconstructions for the autoencoder), so a .tflite
    interpreter wrapped in a function is judged by exactly this code.

    Returns ``metric`` and ``quality`` (also under the metric's name), ``per_class_accuracy``
    (class name -> accuracy, None for a class absent from the test set), ``predictions`` (class
    ids), ``scores`` (class scores, or anomaly scores) and ``num_samples``. For the autoencoder,
    predictions flag scores above ``threshold``, the 95th percentile of the anomaly scores on
    the normal training data, so per-class accuracy is the detection rate per class.
    """
    check_dataset(spec, data, origin="the dataset given to evaluate()")
    values = _class_scores(spec, _predict(model_or_predict_fn, data.x_test), data.x_test)
    quality = quality_from_scores(spec, values, data.y_test)
    result: dict[str, Any] = {"metric": spec.metric, "quality": quality, spec.metric: quality}
    if spec.is_autoencoder:
        train_scores = _class_scores(
            spec, _predict(model_or_predict_fn, data.x_train), data.x_train
        )
        threshold = float(np.percentile(train_scores, ANOMALY_THRESHOLD_PERCENTILE))
        predictions = (values > threshold).astype(np.int64)
        result["threshold"] = threshold
    else:
        predictions = np.argmax(values, axis=1).astype(np.int64)
    per_class: dict[str, float | None] = {}
    for class_id, name in enumerate(data.class_names):
        members = data.y_test == class_id
        per_class[name] = (
            float(np.mean(predictions[members] == class_id)) if members.any() else None
        )
    result.update(
        per_class_accuracy=per_class,
        predictions=predictions,
        scores=values,
        num_samples=int(len(data.y_test)),
    )
    return result


def check_dataset(spec: ModelSpec, data: Dataset, origin: str) -> None:
    """Raise UsageError unless ``data`` fits ``spec``: feature shape, label range, sizes."""
    expected = tuple(spec.input_shape)
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if len(x) == 0:
            raise UsageError(f"{origin}: the {split} split is empty; give at least one sample")
        if tuple(x.shape[1:]) != expected:
            raise UsageError(
                f"{origin}: {split} features have shape {tuple(x.shape[1:])} per sample but "
                f"{spec.name} takes {expected}; reshape or resize the data to match"
            )
        if len(x) != len(y):
            raise UsageError(
                f"{origin}: {split} has {len(x)} samples but {len(y)} labels; give one label each"
            )
        if len(y) and (y.min() < 0 or y.max() >= spec.num_classes):
            raise UsageError(
                f"{origin}: {split} labels run from {y.min()} to {y.max()} but {spec.name} has "
                f"{spec.num_classes} classes; use class ids 0..{spec.num_classes - 1}"
            )
        if not np.all(np.isfinite(x)):
            raise UsageError(f"{origin}: {split} features contain NaN or infinity; clean them")
