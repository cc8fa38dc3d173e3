"""Reference model zoo: registry, architectures, training, evaluation and the audio front ends."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from accelbench import models
from accelbench.errors import UsageError

NAMES = [
    "ic_resnet8",
    "kws_dscnn",
    "vww_mobilenet",
    "ad_autoencoder",
    "digits_cnn",
    "breast_cancer_mlp",
]


def test_registry_names_and_unknown_name():
    assert [spec.name for spec in models.list_specs()] == [
        *NAMES,
        "digits_cnn_jax",
        "breast_cancer_mlp_jax",
    ]
    spec = models.get_spec("kws_dscnn")
    assert spec.metric == "accuracy" and spec.num_classes == len(spec.class_names) == 12
    assert models.get_spec("ad_autoencoder").metric == "auc"
    with pytest.raises(UsageError, match="resnet99.*ic_resnet8.*breast_cancer_mlp"):
        models.get_spec("resnet99")


def test_importing_the_zoo_does_not_import_tensorflow():
    code = (
        "import sys, accelbench.models as m; m.list_specs(); m.get_spec('digits_cnn'); "
        "print(sorted(k for k in ('tensorflow', 'tf_keras', 'pandas', 'sklearn') "
        "if k in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# name -> (input shape, output shape, parameter range). MLPerf Tiny reference sizes: ResNet-8
# 78,666 (16-32-64 filters); DS-CNN 24,908 (23,756 trainable); MobileNetV1 0.25 at 96x96 with 2
# classes ~0.22 M; the FC autoencoder ~0.27 M.
SHAPES = {
    "ic_resnet8": ((32, 32, 3), (10,), (78_000, 79_500)),
    "kws_dscnn": ((49, 10, 1), (12,), (23_500, 25_500)),
    "vww_mobilenet": ((96, 96, 3), (2,), (200_000, 240_000)),
    "ad_autoencoder": ((640,), (640,), (260_000, 280_000)),
    "digits_cnn": ((8, 8, 1), (10,), (10_000, 60_000)),
    "breast_cancer_mlp": ((30,), (2,), (500, 5_000)),
}


@pytest.mark.parametrize("name", NAMES)
def test_each_spec_builds_compiled_with_the_reference_shape(name):
    spec = models.get_spec(name)
    model = spec.build(0)
    inputs, outputs, (low, high) = SHAPES[name]
    assert tuple(model.input_shape[1:]) == inputs == tuple(spec.input_shape)
    assert tuple(model.output_shape[1:]) == outputs
    assert low <= model.count_params() <= high
    assert model.optimizer is not None and model.loss is not None  # ready to fit
    # Same seed, same initial weights; another seed, other weights.
    again, other = spec.build(0), spec.build(1)
    first = model.get_weights()[0]
    assert np.array_equal(first, again.get_weights()[0])
    assert not np.array_equal(first, other.get_weights()[0])


@pytest.fixture(scope="module")
def trained_digits():
    spec = models.get_spec("digits_cnn")
    data = spec.load_data()
    return spec, data, models.train(spec, data, seed=0)


@pytest.mark.parametrize("name", ["digits_cnn", "breast_cancer_mlp"])
def test_real_data_models_train_to_target(name, trained_digits):
    spec = models.get_spec(name)
    if name == "digits_cnn":
        _, data, result = trained_digits
    else:
        data = spec.load_data()
        result = models.train(spec, data, seed=0)
    assert result.quality >= spec.target
    assert result.epochs == spec.epochs == len(result.history["quality"])
    assert result.time_to_target_s is not None
    first_hit = next(i for i, q in enumerate(result.history["quality"]) if q >= spec.target)
    assert result.time_to_target_s == result.history["elapsed_s"][first_hit]
    assert 0 < result.time_to_target_s <= result.wall_s < 60
    assert result.history["elapsed_s"] == sorted(result.history["elapsed_s"])


def test_training_is_repeatable_per_seed():
    spec = models.get_spec("breast_cancer_mlp")
    data = spec.load_data()
    a = models.train(spec, data, seed=5, epochs=2)
    b = models.train(spec, data, seed=5, epochs=2)
    c = models.train(spec, data, seed=6, epochs=2)
    assert a.history["quality"] == b.history["quality"]
    pairs = zip(a.model.get_weights(), b.model.get_weights(), strict=True)
    assert all(np.array_equal(x, y) for x, y in pairs)
    assert not np.array_equal(a.model.get_weights()[0], c.model.get_weights()[0])
    with pytest.raises(UsageError, match="epochs"):
        models.train(spec, data, epochs=0)


def test_training_refuses_data_of_the_wrong_shape():
    spec = models.get_spec("breast_cancer_mlp")
    data = spec.load_data()
    data.x_train = data.x_train[:, :20]
    with pytest.raises(UsageError, match=r"\(20,\).*\(30,\)"):
        models.train(spec, data, epochs=1)


def test_evaluate_gives_the_same_answer_for_a_model_and_a_predict_fn(trained_digits):
    spec, data, result = trained_digits
    by_model = models.evaluate(spec, result.model, data)
    by_fn = models.evaluate(spec, lambda x: result.model(x, training=False).numpy(), data)
    assert by_model["quality"] == pytest.approx(by_fn["quality"])
    assert by_model["accuracy"] == by_model["quality"] == pytest.approx(result.quality)
    assert np.array_equal(by_model["predictions"], by_fn["predictions"])
    assert set(by_model["per_class_accuracy"]) == set(data.class_names)
    # Per-class accuracies average back to the overall accuracy, weighted by class size.
    counts = np.bincount(data.y_test, minlength=10)
    weighted = sum(counts[i] * by_model["per_class_accuracy"][str(i)] for i in range(10))
    assert weighted / counts.sum() == pytest.approx(by_model["quality"])


def test_evaluate_per_class_exposes_a_predictor_that_forgets_a_class(trained_digits):
    spec, data, result = trained_digits

    def forgets_sevens(x):
        scores = result.model(x, training=False).numpy()
        scores[:, 7] = 0.0  # never predicts a 7
        return scores

    full = models.evaluate(spec, result.model, data)
    broken = models.evaluate(spec, forgets_sevens, data)
    assert broken["per_class_accuracy"]["7"] == 0.0
    assert full["per_class_accuracy"]["7"] > 0.9
    assert full["quality"] - broken["quality"] < 0.15  # the average hides most of it


def test_quality_from_scores_checks_its_inputs():
    spec = models.get_spec("digits_cnn")
    scores = np.eye(10)[[0, 1, 2, 3]]
    assert models.quality_from_scores(spec, scores, [0, 1, 2, 0]) == 0.75
    with pytest.raises(UsageError, match="3 scores per sample, expected 10"):
        models.quality_from_scores(spec, np.zeros((4, 3)), [0, 1, 2, 3])
    with pytest.raises(UsageError, match="4 predictions for 3 labels"):
        models.quality_from_scores(spec, scores, [0, 1, 2])


def test_roc_auc_matches_pairwise_counting():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    scores = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounded: plenty of ties
    pos, neg = scores[y == 1], scores[y == 0]
    pairwise = np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :]))
    assert models.roc_auc(y, scores) == pytest.approx(pairwise)
    assert models.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert models.roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert models.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(UsageError, match="both normal"):
        models.roc_auc([0, 0], [0.1, 0.2])


def test_autoencoder_is_scored_by_auc_of_reconstruction_error():
    spec = models.get_spec("ad_autoencoder")
    data = spec.load_data()
    assert set(np.unique(data.y_train)) == {0} and set(np.unique(data.y_test)) == {0, 1}
    result = models.train(spec, data, seed=0, epochs=20)
    report = models.evaluate(spec, result.model, data)
    assert 0.5 < report["auc"] <= 1.0
    assert report["auc"] == pytest.approx(result.quality)
    # One path whoever predicts: reconstructions plus x, or ready-made anomaly scores.
    recon = result.model.predict(data.x_test, verbose=0)
    errors = models.anomaly_scores(recon, data.x_test)
    assert models.quality_from_scores(spec, recon, data.y_test, x=data.x_test) == pytest.approx(
        report["auc"]
    )
    assert models.quality_from_scores(spec, errors, data.y_test) == pytest.approx(report["auc"])
    with pytest.raises(UsageError, match="pass x="):
        models.quality_from_scores(spec, recon, data.y_test)
    # Anomalies are flagged above a threshold set on normal training data.
    assert np.array_equal(report["predictions"], (errors > report["threshold"]).astype(int))
    assert report["per_class_accuracy"]["normal"] > 0.5


def test_mfcc_front_end_shapes_and_sensitivity():
    t = np.arange(16000) / 16000
    low = 0.5 * np.sin(2 * np.pi * 300 * t)
    high = 0.5 * np.sin(2 * np.pi * 2500 * t)
    single = models.mfcc(low)
    batch = models.mfcc(np.stack([low, high]))
    short = models.mfcc(low[:12000])
    assert single.shape == short.shape == (49, 10, 1) and batch.shape == (2, 49, 10, 1)
    assert single.dtype == np.float32
    np.testing.assert_allclose(batch[0], single, rtol=1e-4, atol=1e-3)
    assert np.abs(batch[0] - batch[1]).mean() > 1.0  # another tone, other features
    # A short clip is zero-padded: its last frames differ, its first ones do not.
    np.testing.assert_allclose(short[:30], single[:30], rtol=1e-4, atol=1e-3)
    assert np.abs(short[-5:] - single[-5:]).mean() > 1.0


def test_machine_logmel_uses_the_centre_frames():
    rng = np.random.default_rng(0)
    clip = rng.normal(0, 0.1, 8000).astype(np.float32)
    features = models.machine_logmel(clip)
    assert features.shape == (640,)
    # 8000 samples give 14 frames; the centre five start at frame 4 (sample 2048).
    centre = models.machine_logmel(clip[2048 : 2048 + 3072])
    np.testing.assert_allclose(features, centre, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="3072"):
        models.machine_logmel(clip[:3000])
