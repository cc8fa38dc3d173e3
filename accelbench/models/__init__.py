"""Reference model zoo: one registry of specs (builder, dataset, quality metric, target).

Importing this package is instant: TensorFlow loads only when a model is built, trained or
evaluated, or when audio or TFRecord data is read.

    from accelbench import models
    spec = models.get_spec("digits_cnn")
    data = spec.load_data()            # or spec.load_data("my_digits.npz")
    result = models.train(spec, data, seed=0)
    report = models.evaluate(spec, result.model, data)   # or a predict_fn(x) -> scores
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from accelbench.errors import UsageError
from accelbench.models import architectures, jax_models, reference_data, synthetic
from accelbench.models.audio import KWS_FEATURE_SHAPE, machine_logmel, mfcc
from accelbench.models.data import load_dataset
from accelbench.models.spec import Dataset, ModelSpec, TrainResult
from accelbench.models.training import (
    anomaly_scores,
    evaluate,
    quality_from_scores,
    roc_auc,
    train,
)

__all__ = [
    "Dataset",
    "ModelSpec",
    "TrainResult",
    "anomaly_scores",
    "evaluate",
    "get_spec",
    "list_specs",
    "load_dataset",
    "machine_logmel",
    "mfcc",
    "quality_from_scores",
    "roc_auc",
    "train",
]


def _spec(
    *,
    builder: Callable[..., Any],
    builtin_data: Callable[[int], Dataset],
    standardize: bool = False,
    **fields: Any,
) -> ModelSpec:
    """A spec whose ``build`` compiles with its own learning rate and whose ``load_data`` reads
    the built-in data, or the user's through `load_dataset` (then standardized like the
    built-in data where the spec asks)."""
    name = fields["name"]

    def load_data(path: str | None = None, seed: int = 0) -> Dataset:
        if path is None:
            data = builtin_data(seed)
            data.source = f"{fields['data_source']}, seed {seed}"
            return data
        data = load_dataset(path, get_spec(name), seed=seed)
        return reference_data.standardize(data) if standardize else data

    build = partial(builder, learning_rate=fields["learning_rate"])
    return ModelSpec(build=build, load_data=load_data, **fields)


_SPECS: tuple[ModelSpec, ...] = (
    _spec(
        name="ic_resnet8",
        task="image classification",
        description="MLPerf Tiny ResNet-8 (16-32-64 filters, ~78k parameters), 32x32 RGB",
        metric="accuracy",
        target=0.85,
        input_shape=(32, 32, 3),
        num_classes=10,
        class_names=synthetic.IMAGE_CLASSES,
        data_source=(
            "synthetic, learnable: 10 texture patterns, random colour and phase, plus noise "
            f"({reference_data.IC_TRAIN} train / {reference_data.IC_TEST} test)"
        ),
        epochs=6,
        batch_size=32,
        learning_rate=2e-3,
        builder=architectures.resnet8,
        builtin_data=reference_data.images,
        modality="image",
    ),
    _spec(
        name="kws_dscnn",
        task="keyword spotting",
        description="MLPerf Tiny DS-CNN (64 filters, 4 depthwise-separable blocks), 49x10 MFCCs",
        metric="accuracy",
        target=0.90,
        input_shape=KWS_FEATURE_SHAPE,
        num_classes=12,
        class_names=synthetic.KWS_CLASSES,
        data_source=(
            "synthetic, learnable: formant-synthesised words plus noise, as MFCCs "
            f"({reference_data.KWS_TRAIN} train / {reference_data.KWS_TEST} test)"
        ),
        epochs=12,
        batch_size=64,
        learning_rate=3e-3,
        builder=architectures.ds_cnn,
        builtin_data=reference_data.keywords,
        modality="audio",
        front_end=mfcc,
    ),
    _spec(
        name="vww_mobilenet",
        task="visual wake words",
        description="MLPerf Tiny MobileNetV1 alpha 0.25, 96x96 RGB, person / no person",
        metric="accuracy",
        target=0.80,
        input_shape=(96, 96, 3),
        num_classes=2,
        class_names=synthetic.VWW_CLASSES,
        data_source=(
            "synthetic, learnable: a person-like figure or decoys on textured backgrounds "
            f"({reference_data.VWW_TRAIN} train / {reference_data.VWW_TEST} test)"
        ),
        epochs=8,
        batch_size=16,
        learning_rate=3e-3,
        builder=architectures.mobilenet_v1,
        builtin_data=reference_data.wake_words,
        modality="image",
    ),
    _spec(
        name="ad_autoencoder",
        task="anomaly detection",
        description="MLPerf Tiny FC autoencoder (640-128x4-8-128x4-640), scored by ROC AUC",
        metric="auc",
        target=0.85,
        input_shape=(640,),
        num_classes=2,
        class_names=synthetic.AD_CLASSES,
        data_source=(
            "synthetic, learnable: harmonic machine hum vs shifted, extra or missing "
            f"harmonics and rattles, as log-mel frames ({reference_data.AD_TRAIN_NORMAL} normal "
            f"train / {reference_data.AD_TEST_NORMAL} + {reference_data.AD_TEST_ANOMALOUS} test)"
        ),
        epochs=100,
        batch_size=64,
        learning_rate=1e-3,
        builder=architectures.fc_autoencoder,
        builtin_data=reference_data.machine_sounds,
        modality="audio",
        front_end=machine_logmel,
    ),
    _spec(
        name="digits_cnn",
        task="image classification",
        description="small CNN (conv 16, conv 32, max pool, dense 64) on 8x8 grey digits",
        metric="accuracy",
        target=0.95,
        input_shape=(8, 8, 1),
        num_classes=10,
        class_names=tuple(str(i) for i in range(10)),
        data_source="scikit-learn digits (real, 1797 images), stratified 80/20",
        epochs=10,
        batch_size=32,
        learning_rate=3e-3,
        builder=architectures.digits_cnn,
        builtin_data=reference_data.digits,
        modality="image",
    ),
    _spec(
        name="breast_cancer_mlp",
        task="tabular classification",
        description="MLP (dense 32, dense 16) on 30 standardized features, malignant / benign",
        metric="accuracy",
        target=0.95,
        input_shape=(30,),
        num_classes=2,
        class_names=("malignant", "benign"),
        data_source="scikit-learn breast cancer (real, 569 samples, 30 features), 80/20",
        epochs=20,
        batch_size=32,
        learning_rate=3e-3,
        builder=architectures.tabular_mlp,
        builtin_data=reference_data.breast_cancer,
        standardize=True,
        modality="tabular",
    ),
)
# The JAX twins of two Keras models: same data, target and recipe (`jax_models.BASES`).
_SPECS = (*_SPECS, *jax_models.derived_specs({spec.name: spec for spec in _SPECS}))
_BY_NAME = {spec.name: spec for spec in _SPECS}


def list_specs() -> list[ModelSpec]:
    """Every reference model, in registry order."""
    return list(_SPECS)


def get_spec(name: str) -> ModelSpec:
    """The reference model called ``name``; UsageError listing the known names otherwise."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        raise UsageError(
            f"unknown reference model {name!r}; choose one of {', '.join(_BY_NAME)}"
        ) from None
