"""The built-in datasets of the reference models: scikit-learn's real data, or synthetic data."""

from __future__ import annotations

import numpy as np

from accelbench.models import synthetic
from accelbench.models.data import stratified_split
from accelbench.models.spec import Dataset

# Sizes keep the default suite (digits, breast cancer, ResNet-8) within minutes on 2 cores.
IC_TRAIN, IC_TEST = 2000, 500
KWS_TRAIN, KWS_TEST = 2400, 600
VWW_TRAIN, VWW_TEST = 1600, 400
AD_TRAIN_NORMAL, AD_TEST_NORMAL, AD_TEST_ANOMALOUS = 1200, 300, 300


def _split(x: np.ndarray, y: np.ndarray, n_train: int, names: tuple, source: str) -> Dataset:
    # Generators shuffle their labels, so the first n_train samples are a fair train split.
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], names, source)


def digits(seed: int = 0) -> Dataset:
    """scikit-learn's 8x8 digits (1797 real images), scaled to [0, 1], stratified 80/20."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[..., None]
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y, seed)
    names = tuple(str(n) for n in bunch.target_names)
    return Dataset(x[train], y[train], x[test], y[test], names, "scikit-learn digits (real)")


def breast_cancer(seed: int = 0) -> Dataset:
    """scikit-learn's Wisconsin breast-cancer table (569 real samples, 30 features)."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y, seed)
    names = tuple(str(n) for n in bunch.target_names)
    data = Dataset(x[train], y[train], x[test], y[test], names, "scikit-learn breast cancer (real)")
    return standardize(data)


def standardize(data: Dataset) -> Dataset:
    """Scale each feature to zero mean and unit variance with the train split's statistics."""
    mean = data.x_train.mean(axis=0)
    std = data.x_train.std(axis=0)
    std[std == 0] = 1.0  # a constant feature carries no information; leave it at zero
    data.x_train = (data.x_train - mean) / std
    data.x_test = (data.x_test - mean) / std
    return data


def images(seed: int = 0) -> Dataset:
    x, y = synthetic.pattern_images(IC_TRAIN + IC_TEST, seed)
    return _split(x, y, IC_TRAIN, synthetic.IMAGE_CLASSES, "synthetic texture patterns")


def keywords(seed: int = 0) -> Dataset:
    from accelbench.models.audio import mfcc

    audio, y = synthetic.keyword_audio(KWS_TRAIN + KWS_TEST, seed)
    return _split(mfcc(audio), y, KWS_TRAIN, synthetic.KWS_CLASSES, "synthetic keywords")


def wake_words(seed: int = 0) -> Dataset:
    x, y = synthetic.wake_word_images(VWW_TRAIN + VWW_TEST, seed)
    return _split(x, y, VWW_TRAIN, synthetic.VWW_CLASSES, "synthetic person / no person")


def machine_sounds(seed: int = 0) -> Dataset:
    from accelbench.models.audio import machine_logmel

    clips, labels = synthetic.machine_audio(
        AD_TRAIN_NORMAL + AD_TEST_NORMAL, AD_TEST_ANOMALOUS, seed
    )
    features = machine_logmel(clips)
    # The detector learns from normal sounds only; the rest of the normals and every anomaly
    # make up the test split.
    normal = np.flatnonzero(labels == 0)
    train = normal[:AD_TRAIN_NORMAL]
    test = np.setdiff1d(np.arange(len(labels)), train)
    return Dataset(
        features[train],
        labels[train],
        features[test],
        labels[test],
        synthetic.AD_CLASSES,
        "synthetic machine sounds",
    )
