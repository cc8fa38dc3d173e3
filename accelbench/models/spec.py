"""The zoo's value types: a model spec, a dataset and a training result (no framework imports)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# The two quality metrics a spec can state; both are "higher is better" and lie in [0, 1].
METRICS = ("accuracy", "auc")


@dataclass
class Dataset:
    """Train and test arrays for one model.

    Features are float32 shaped ``(n, *spec.input_shape)``; labels are int64 class ids. For the
    anomaly autoencoder, labels are 0 (normal) / 1 (anomalous) and the train split holds normal
    samples only, as an anomaly detector never sees anomalies while it learns.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    source: str

    def __post_init__(self) -> None:
        self.x_train = np.ascontiguousarray(self.x_train, dtype=np.float32)
        self.x_test = np.ascontiguousarray(self.x_test, dtype=np.float32)
        self.y_train = np.asarray(self.y_train, dtype=np.int64).reshape(-1)
        self.y_test = np.asarray(self.y_test, dtype=np.int64).reshape(-1)
        self.class_names = tuple(self.class_names)


@dataclass(frozen=True)
class ModelSpec:
    """One reference model: how to build it, what it learns from, and how its quality is judged.

    ``build(seed)`` returns a compiled ``tf_keras.Model`` (Keras 2, so tensorflow-model-optimization
    can prune, cluster and quantize it); ``load_data(path=None, seed=0)`` returns a `Dataset`, the
    built-in one when ``path`` is None, otherwise the user's data read by
    `accelbench.models.data.load_dataset` and checked against this spec.
    """

    name: str
    task: str
    description: str
    metric: str
    target: float
    input_shape: tuple[int, ...]
    num_classes: int
    class_names: tuple[str, ...]
    data_source: str
    epochs: int
    batch_size: int
    learning_rate: float
    build: Callable[[int], Any] = field(repr=False, compare=False)
    load_data: Callable[..., Dataset] = field(repr=False, compare=False)
    # "image", "audio" or "tabular": which on-disk layouts the data loaders accept for it.
    modality: str = "tabular"
    # "keras" (tf_keras, optimized by tensorflow-model-optimization) or "jax".
    framework: str = "keras"
    # For audio models: the data-side front end, 16 kHz audio (n, samples) -> model features.
    front_end: Callable[[np.ndarray], np.ndarray] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def is_autoencoder(self) -> bool:
        """True for the anomaly detector, whose output is a reconstruction of its input."""
        return self.metric == "auc"


@dataclass
class TrainResult:
    """What `train` measured: the fitted model, its test quality and how long it took.

    ``time_to_target_s`` counts training seconds (the per-epoch test evaluation excluded) up to
    the end of the first epoch whose test quality reached the spec's target; None if none did.
    ``history`` holds one entry per epoch under ``loss``, ``quality`` and ``elapsed_s``.
    """

    model: Any
    quality: float
    epochs: int
    wall_s: float
    time_to_target_s: float | None
    history: dict[str, list[float]]
