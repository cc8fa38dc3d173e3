"""An artifact's accuracy against the fp32 model on the same samples, overall and per class."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError

PREDICT_BATCH = 256


def predict_tflite(
    path: str | Path, x: np.ndarray, *, threads: int | None = None, batch_size: int = PREDICT_BATCH
) -> np.ndarray:
    """The model's output for every row of ``x``, as float32 scores, through the edge runtime.

    Float inputs are quantized with the input tensor's (scale, zero point) when the model takes
    int8/uint8/int16, and integer outputs are dequantized with the output's; a model with a
    dynamic batch dimension runs ``batch_size`` rows at a time, a fixed-batch one row by row.
    """
    from accelbench.runtimes.edge import TFLiteRuntime

    x = np.asarray(x)
    runtime = TFLiteRuntime(path, threads=threads)
    inputs, outputs = runtime.inputs(), runtime.outputs()
    if len(inputs) != 1 or len(outputs) != 1:
        raise UsageError(
            f"{Path(path).name} has {len(inputs)} inputs and {len(outputs)} outputs; "
            "predict_tflite scores models with one input and one output"
        )
    spec_in, spec_out = inputs[0], outputs[0]
    if x.ndim != len(spec_in.shape) or any(
        want not in (-1, got) for want, got in zip(spec_in.shape[1:], x.shape[1:], strict=True)
    ):
        raise UsageError(
            f"{Path(path).name} takes inputs of shape {list(spec_in.shape)} (-1 = any), "
            f"not {list(x.shape)}; reshape the data to match"
        )
    fixed = runtime.max_batch_size
    if fixed not in (None, 1):
        raise UsageError(
            f"{Path(path).name} has a fixed batch of {fixed}; "
            "convert it with a dynamic batch dimension or a batch of 1"
        )
    step = 1 if fixed == 1 else max(1, batch_size)
    results = []
    with runtime:
        for start in range(0, len(x), step):
            chunk = _quantize(x[start : start + step], spec_in.dtype, spec_in.quantization)
            (output,) = runtime.run([chunk])
            results.append(_dequantize(output, spec_out.quantization))
    if not results:
        return np.zeros((0, *[max(d, 1) for d in spec_out.shape[1:]]), np.float32)
    return np.concatenate(results).astype(np.float32)


def _quantize(x: np.ndarray, dtype: str, quantization: tuple[float, int] | None) -> np.ndarray:
    target = np.dtype(dtype)
    if target.kind == "f":
        return np.ascontiguousarray(x, dtype=target)
    if quantization is None or x.dtype.kind not in "f":
        return np.ascontiguousarray(x, dtype=target)  # already integers (token ids, raw codes)
    scale, zero_point = quantization
    info = np.iinfo(target)
    q = np.round(x.astype(np.float64) / scale + zero_point)
    return np.ascontiguousarray(np.clip(q, info.min, info.max).astype(target))


def _dequantize(y: np.ndarray, quantization: tuple[float, int] | None) -> np.ndarray:
    if quantization is None or y.dtype.kind == "f":
        return y.astype(np.float32)
    scale, zero_point = quantization
    return ((y.astype(np.float64) - zero_point) * scale).astype(np.float32)


def predicted_classes(scores: np.ndarray) -> np.ndarray:
    """Argmax over classes; one score per sample (a sigmoid) means class 1 at >= 0.5."""
    scores = np.asarray(scores)
    if scores.ndim == 1 or (scores.ndim == 2 and scores.shape[1] == 1):
        return (scores.reshape(-1) >= 0.5).astype(np.int64)
    if scores.ndim != 2:
        raise UsageError(f"scores must be (samples,) or (samples, classes), not {scores.shape}")
    return np.argmax(scores, axis=1)


def compare_predictions(
    y_true: np.ndarray,
    scores: np.ndarray,
    baseline_scores: np.ndarray,
    class_names: Sequence[str],
    *,
    threshold_points: float = 2.0,
) -> dict[str, Any]:
    """How an optimized model's predictions differ from the fp32 model's on the same samples.

    Deltas are fractions (``accuracy_delta`` = -0.004 is 0.4 points lost), with ``*_points``
    twins in percentage points. ``per_class`` accuracy is the share of each true class predicted
    right; ``agreement`` is the share of samples where both models predict the same class;
    ``flagged_classes`` are the classes (worst first) whose accuracy fell by more than
    ``threshold_points`` points, which the mean hides when the class is rare.
    """
    y_true = np.asarray(y_true).reshape(-1)
    names = [str(n) for n in class_names]
    predicted = predicted_classes(scores)
    baseline = predicted_classes(baseline_scores)
    if not (len(y_true) == len(predicted) == len(baseline)) or len(y_true) == 0:
        raise UsageError(
            f"y_true, scores and baseline_scores must describe the same samples, not "
            f"{len(y_true)}, {len(predicted)} and {len(baseline)}"
        )
    classes = max(len(names), 2)
    width = np.asarray(scores).shape[1] if np.asarray(scores).ndim == 2 else 2
    if np.asarray(scores).shape[1:] != np.asarray(baseline_scores).shape[1:]:
        raise UsageError(
            f"scores {np.asarray(scores).shape} and baseline_scores "
            f"{np.asarray(baseline_scores).shape} must have the same number of classes"
        )
    if len(names) != max(width, 2):
        raise UsageError(
            f"class_names has {len(names)} names but the scores have {width} classes; "
            "give one name per class"
        )
    if not np.issubdtype(y_true.dtype, np.integer) or y_true.min() < 0 or y_true.max() >= classes:
        raise UsageError(
            f"y_true must hold integer class indices 0..{classes - 1}; map the labels to indices"
        )
    if not isinstance(threshold_points, int | float) or threshold_points < 0:
        raise UsageError(
            f"threshold_points must be a non-negative number, not {threshold_points!r}"
        )

    correct = predicted == y_true
    baseline_correct = baseline == y_true
    per_class: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names):
        mask = y_true == index
        support = int(mask.sum())
        if support == 0:
            per_class[name] = {
                "accuracy": None,
                "baseline_accuracy": None,
                "delta": None,
                "delta_points": None,
                "support": 0,
            }
            continue
        accuracy = float(correct[mask].mean())
        baseline_accuracy = float(baseline_correct[mask].mean())
        per_class[name] = {
            "accuracy": accuracy,
            "baseline_accuracy": baseline_accuracy,
            "delta": accuracy - baseline_accuracy,
            "delta_points": 100 * (accuracy - baseline_accuracy),
            "support": support,
        }
    measured = {n: c for n, c in per_class.items() if c["support"]}
    worst = min(measured, key=lambda n: measured[n]["delta"])
    flagged = sorted(
        (n for n, c in measured.items() if c["delta_points"] < -threshold_points),
        key=lambda n: measured[n]["delta"],
    )
    accuracy = float(correct.mean())
    baseline_accuracy = float(baseline_correct.mean())
    return {
        "samples": int(len(y_true)),
        "accuracy": accuracy,
        "baseline_accuracy": baseline_accuracy,
        "accuracy_delta": accuracy - baseline_accuracy,
        "accuracy_delta_points": 100 * (accuracy - baseline_accuracy),
        "agreement": float((predicted == baseline).mean()),
        "per_class": per_class,
        "flagged_classes": flagged,
        "threshold_points": float(threshold_points),
        "worst_class": worst,
        "worst_class_delta": measured[worst]["delta"],
        "worst_class_delta_points": measured[worst]["delta_points"],
    }
