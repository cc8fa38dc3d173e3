"""Keras 3 files (what ``model.save("x.keras")`` writes since TF 2.16) get every optimization:
their tfmot steps run on a verified tf_keras rebuild, and `accelbench train` trains them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import shuffled_digits

from accelbench.cli import main
from accelbench.errors import UsageError
from accelbench.optimizers import load_user_model, optimize, predict_tflite
from accelbench.optimizers.keras_bridge import TOLERANCE, BridgeError, bridge_to_tf_keras
from accelbench.records import read_records


def _keras3() -> Any:
    from accelbench.keras_compat import legacy_keras

    legacy_keras()  # the process's tf.keras stays Keras 2; Keras 3 is the package itself
    import keras

    return keras


def _outputs_differ(a: Any, b: Any, x: np.ndarray) -> float:
    return float(
        np.max(np.abs(np.asarray(a(x, training=False)) - np.asarray(b(x, training=False))))
    )


@pytest.fixture(scope="module")
def digits_k3(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A depthwise-separable residual CNN (BatchNorm, Add, ReLU6) trained in Keras 3 on digits."""
    keras = _keras3()
    x, y = shuffled_digits()
    keras.utils.set_random_seed(0)
    layers = keras.layers
    inputs = keras.Input((8, 8, 1))
    h = layers.Conv2D(16, 3, padding="same", use_bias=False)(inputs)
    h = layers.ReLU(max_value=6.0)(layers.BatchNormalization()(h))
    r = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(h)
    r = layers.Activation("relu6")(layers.BatchNormalization()(r))
    r = layers.BatchNormalization()(layers.Conv2D(16, 1, use_bias=False)(r))
    h = layers.ReLU(max_value=6.0)(layers.Add()([h, r]))
    outputs = layers.Dense(10, activation="softmax")(layers.Flatten()(h))
    model = keras.Model(inputs, outputs, name="digits_k3")
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy")
    model.fit(x[:1400], y[:1400], epochs=8, batch_size=32, verbose=0)
    folder = tmp_path_factory.mktemp("digits_k3")
    model.save(folder / "digits.keras")
    np.savez(
        folder / "digits.npz", x_train=x[:1400], y_train=y[:1400], x_test=x[1400:], y_test=y[1400:]
    )
    return SimpleNamespace(
        path=folder / "digits.keras",
        data=folder / "digits.npz",
        x_train=x[:1400],
        y_train=y[:1400],
        x_test=x[1400:],
        y_test=y[1400:],
    )


def _accuracy(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(predict_tflite(path, x), axis=1) == y))


def test_a_keras3_cnn_gets_every_training_time_optimization(
    digits_k3: SimpleNamespace, tmp_path: Path
) -> None:
    model = load_user_model(digits_k3.path)
    assert type(model).__module__.startswith("keras.")  # Keras 3 read it, not tf_keras
    train = (digits_k3.x_train[:500], digits_k3.y_train[:500])  # a few hundred: fine-tuning
    base = optimize(model, "fp32", train, tmp_path)
    base_accuracy = _accuracy(base.path, digits_k3.x_test, digits_k3.y_test)
    assert base_accuracy > 0.85
    assert base.notes["keras"]["keras_source"].startswith("keras 3")
    assert "bridged_to" not in base.notes["keras"]  # post-training cells use the model as saved
    for name in ("prune50+int8", "qat_int8", "cluster16+int8"):
        made = optimize(model, name, train, tmp_path, fine_tune_epochs=1)
        accuracy = _accuracy(made.path, digits_k3.x_test, digits_k3.y_test)
        assert accuracy >= base_accuracy - 0.03, (name, accuracy, base_accuracy)
        step = made.notes[name.split("+")[0].replace("_int8", "")]
        assert step["fine_tune_mode"] == "eager"  # 16 steps: under EAGER_MAX_STEPS
        keras_notes = made.notes["keras"]
        assert keras_notes["keras_source"].startswith("keras 3")
        assert keras_notes["bridged_to"].startswith("tf_keras 2")
        assert keras_notes["bridge_max_abs_diff"] <= TOLERANCE


def test_accelbench_train_trains_a_keras3_file(digits_k3: SimpleNamespace, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            str(digits_k3.path),
            "--data",
            str(digits_k3.data),
            "--target",
            "0.15",
            "--epochs",
            "3",
            "--seeds",
            "1",
            "--out",
            str(run_dir),
            "--no-progress",
        ]
    )
    assert code == 0
    _assert_trained_on_the_bridge(run_dir)


def _assert_trained_on_the_bridge(run_dir: Path) -> None:
    """Every training configuration is ok, timed, at its target, on the tf_keras rebuild."""
    configurations = [
        r
        for r in read_records(run_dir)
        if r["scenario"] == "training" and "framework" in (r.get("settings") or {})
    ]
    assert configurations
    for record in configurations:
        assert record["status"] == "ok", record["error"]
        for metric in ("step_time_ms", "examples_per_s", "time_to_target_s"):
            assert record["metrics"][metric]["value"] > 0, metric
        keras_settings = record["settings"]["keras"]
        assert keras_settings["keras_source"].startswith("keras 3")
        assert keras_settings["bridged_to"].startswith("tf_keras 2")
        assert keras_settings["bridge_max_abs_diff"] <= TOLERANCE


def _application(keras: Any, name: str, side: int) -> Any:
    make = getattr(keras.applications, name)
    extra = {"alpha": 0.35} if name == "MobileNetV2" else {}
    # Logits, not softmax: near-uniform probabilities would hide a wrong rebuild.
    return make(
        input_shape=(side, side, 3), weights=None, classes=10, classifier_activation=None, **extra
    )


def _int8_throughout(path: Path) -> bool:
    """True when no op of the .tflite falls back to float (which would need a DEQUANTIZE)."""
    from ai_edge_litert.interpreter import Interpreter

    ops = {op["op_name"] for op in Interpreter(str(path))._get_ops_details()}
    return "DEQUANTIZE" not in ops


@pytest.mark.slow  # 1 to 3 minutes each on 2 shared cores: three tfmot wrappings and conversions
@pytest.mark.parametrize("name", ["MobileNetV2", "ResNet50", "EfficientNetB0"])
def test_keras_applications_get_the_training_time_optimizations_and_train(
    name: str, tmp_path: Path
) -> None:
    keras = _keras3()
    keras.utils.set_random_seed(0)
    original = _application(keras, name, 32)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(64, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, size=64)
    for layer in original.layers:
        if isinstance(layer, keras.layers.Normalization):
            layer.adapt(x)  # not the identity that weights=None leaves: its weights must carry
    original.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    original.save(tmp_path / "app.keras")
    loaded = load_user_model(tmp_path / "app.keras")

    result = bridge_to_tf_keras(loaded, x)
    rebuilt = result.model
    assert type(rebuilt).__module__.startswith("tf_keras.")
    assert result.max_abs_diff <= TOLERANCE
    assert _outputs_differ(original, rebuilt, x[:8]) <= TOLERANCE
    assert rebuilt.count_params() == original.count_params()
    if name == "EfficientNetB0":
        kinds = {type(layer).__name__ for layer in rebuilt.layers}
        assert {"Rescaling", "Normalization"} <= kinds

    for optimization in ("prune50+int8", "qat_int8", "cluster16+int8"):
        made = optimize(loaded, optimization, (x, y), tmp_path, fine_tune_epochs=1)
        assert predict_tflite(made.path, x[:4]).shape == (4, 10), optimization
        assert made.notes["keras"]["bridged_to"].startswith("tf_keras 2")
        assert made.notes["keras"]["bridge_max_abs_diff"] <= TOLERANCE
        assert _int8_throughout(made.path), optimization  # QAT's float layers calibrated too
        if name == "EfficientNetB0" and optimization != "cluster16+int8":
            # tfmot prunes and quantizes no Rescaling or Normalization: left as they are, named.
            step = made.notes["prune50" if optimization.startswith("prune") else "qat"]
            assert {"rescaling", "normalization"} <= set(step["layers_left_unwrapped"])

    # The training benchmark on the same file, one epoch of random images. Each test image comes
    # once with every label, so any model scores exactly 0.1 and the 0.05 target is met at the
    # first epoch's end: this checks that these architectures train and are timed; whether a
    # model learns to its target is checked on digits above.
    x_test, y_test = np.repeat(x[:4], 10, axis=0), np.tile(np.arange(10), 4)
    np.savez(tmp_path / "data.npz", x_train=x, y_train=y, x_test=x_test, y_test=y_test)
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            str(tmp_path / "app.keras"),
            "--data",
            str(tmp_path / "data.npz"),
            "--target",
            "0.05",
            "--epochs",
            "1",
            "--seeds",
            "1",
            "--batch-size",
            "32",
            "--out",
            str(run_dir),
            "--no-progress",
        ]
    )
    assert code == 0
    _assert_trained_on_the_bridge(run_dir)


def test_a_custom_layer_fails_only_the_training_time_optimizations(tmp_path: Path) -> None:
    keras = _keras3()

    class Doubling(keras.layers.Layer):
        def call(self, inputs: Any) -> Any:
            return inputs * 2.0

    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(3)(Doubling(name="twice")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    y = np.zeros((32, 3), np.float32)
    assert optimize(model, "dynamic", (x, y), tmp_path).path.is_file()
    for name in ("prune50+int8", "qat_int8"):
        with pytest.raises(BridgeError, match=r"layer 'twice' \(.*Doubling\).*custom layer class"):
            optimize(model, name, (x, y), tmp_path)
    assert issubclass(BridgeError, UsageError)  # one line, the cell's reason, no traceback


def test_an_activation_that_differs_between_the_two_keras_is_named(tmp_path: Path) -> None:
    keras = _keras3()
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="gelu", name="head")(inputs))
    model.compile(optimizer="adam", loss="mse")
    x = np.zeros((8, 4), np.float32)
    with pytest.raises(BridgeError, match=r"layer 'head' \(Dense\).*gelu"):
        optimize(model, "prune50", (x, np.zeros((8, 3), np.float32)), tmp_path)


def test_nested_sub_models_and_several_inputs_and_outputs_bridge(tmp_path: Path) -> None:
    keras = _keras3()
    keras.utils.set_random_seed(0)
    layers = keras.layers
    tower = keras.Sequential(
        [keras.Input((6,)), layers.Dense(8, activation="relu"), layers.BatchNormalization()],
        name="tower",
    )
    inner_in = keras.Input((8,))
    inner = keras.Model(inner_in, layers.Dense(4, activation="tanh")(inner_in), name="inner")
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    shared = layers.Dense(6, name="shared")  # one layer called on both inputs
    joined = layers.Concatenate()([tower(shared(a)), tower(shared(b))])
    head = inner(layers.Dense(8)(joined))
    model = keras.Model([a, b], [layers.Dense(3, name="cls")(head), head], name="two_heads")
    model.compile(optimizer="adam", loss=["mse", "mse"])
    model.save(tmp_path / "nested.keras")
    loaded = load_user_model(tmp_path / "nested.keras")
    x = [np.random.default_rng(i).normal(size=(16, 6)).astype(np.float32) for i in (0, 1)]
    result = bridge_to_tf_keras(loaded, x)
    assert result.max_abs_diff <= TOLERANCE
    rebuilt = result.model
    for want, got in zip(model(x, training=False), rebuilt(x, training=False), strict=True):
        np.testing.assert_allclose(np.asarray(want), np.asarray(got), atol=TOLERANCE)
    assert {type(layer).__name__ for layer in rebuilt.layers} >= {"Sequential", "Functional"}
    assert rebuilt.count_params() == model.count_params()
