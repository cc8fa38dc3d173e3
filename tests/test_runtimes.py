"""Runtimes through their public API: open_runtime on every test model, inputs, and validation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from accelbench.errors import UsageError
from accelbench.runtimes import (
    RUNTIME_NAMES,
    Runtime,
    load_inputs,
    make_inputs,
    open_runtime,
    validate_tflite,
)
from accelbench.runtimes.edge import TFLiteRuntime

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]

# model -> (inputs, outputs) as (name, shape, dtype); names come from the signature when present.
TFLITE_MODELS = {
    "mlp_f32": ([("features", (1, 64), "float32")], [("output_0", (1, 10), "float32")]),
    "cnn_f32": ([("image", (1, 16, 16, 3), "float32")], [("output_0", (1, 10), "float32")]),
    "cnn_int8": ([("image", (1, 16, 16, 3), "int8")], [("output_0", (1, 10), "int8")]),
    "mlp_uint8io": ([("features", (1, 64), "uint8")], [("output_0", (1, 10), "uint8")]),
    "multi_io_f32": (
        [("image", (1, 8, 8, 1), "float32"), ("vector", (1, 4), "float32")],
        [("output_0", (1, 3), "float32"), ("output_1", (1, 2), "float32")],
    ),
    "no_signature": (
        [("serving_default_features:0", (1, 64), "float32")],
        [("StatefulPartitionedCall_1:0", (1, 10), "float32")],
    ),
    "dynamic_batch_f32": ([("features", (-1, 64), "float32")], [("output_0", (-1, 10), "float32")]),
    "embed_int32": ([("token_ids", (1, 16), "int32")], [("output_0", (1, 2), "float32")]),
}


def _io(specs):
    return [(s.name, s.shape, s.dtype) for s in specs]


def _dequantize(array, spec):
    scale, zero_point = spec.quantization
    return (array.astype(np.float32) - zero_point) * scale


@pytest.mark.parametrize("model", sorted(TFLITE_MODELS))
def test_every_tflite_model_runs_with_its_declared_io(model):
    runtime = open_runtime(DATA / f"{model}.tflite")
    assert isinstance(runtime, Runtime)
    want_inputs, want_outputs = TFLITE_MODELS[model]
    assert _io(runtime.inputs()) == want_inputs
    assert _io(runtime.outputs()) == want_outputs
    sample = make_inputs(runtime.inputs(), 1)[0]
    results = runtime.run(sample)
    assert [(r.shape, r.dtype.name) for r in results] == [
        (tuple(1 if d == -1 else d for d in shape), dtype) for _, shape, dtype in want_outputs
    ]
    assert runtime.info()["runtime"] == "litert"
    assert runtime.info()["interpreter_package"] == "ai-edge-litert"
    runtime.close()


def test_quantized_inputs_take_quantized_data_and_match_the_float_model(tmp_path):
    float_model = open_runtime(DATA / "cnn_f32.tflite")
    int8_model = open_runtime(DATA / "cnn_int8.tflite")
    (in_spec,) = int8_model.inputs()
    assert in_spec.quantization is not None and in_spec.quantization[0] > 0
    images = np.random.default_rng(1).uniform(-1, 1, size=(4, 16, 16, 3)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    # load_inputs quantizes float data for a quantized input with its scale and zero point.
    quantized = load_inputs(tmp_path / "images.npy", int8_model.inputs())
    assert quantized[0][0].dtype == np.int8 and quantized[0][0].shape == (1, 16, 16, 3)
    out_spec = int8_model.outputs()[0]
    for image, (q_image,) in zip(images, quantized, strict=True):
        expected = float_model.run([image[None]])[0]
        got = _dequantize(int8_model.run([q_image])[0], out_spec)
        assert np.abs(got - expected).max() < 0.03
        assert abs(got.sum() - 1) < 0.05  # still a softmax after dequantization


def test_uint8_model_outputs_probabilities_after_dequantization():
    runtime = open_runtime(DATA / "mlp_uint8io.tflite")
    for sample in make_inputs(runtime.inputs(), 3, seed=5):
        probs = _dequantize(runtime.run(sample)[0], runtime.outputs()[0])
        assert abs(probs.sum() - 1) < 0.05


def test_multi_io_order_is_by_name_and_matches_the_signature_runner():
    from ai_edge_litert.interpreter import Interpreter

    runtime = open_runtime(DATA / "multi_io_f32.tflite")
    image, vector = make_inputs(runtime.inputs(), 1, seed=3)[0]
    classes, box = runtime.run([image, vector])
    reference = Interpreter(model_path=str(DATA / "multi_io_f32.tflite"))
    expected = reference.get_signature_runner("serving_default")(image=image, vector=vector)
    np.testing.assert_allclose(classes, expected["output_0"], rtol=1e-6)
    np.testing.assert_allclose(box, expected["output_1"], rtol=1e-6)
    assert classes.shape == (1, 3) and box.shape == (1, 2)


def test_model_without_signature_runs_like_the_original():
    plain = open_runtime(DATA / "no_signature.tflite")
    signed = open_runtime(DATA / "mlp_f32.tflite")
    assert plain.info()["signature_keys"] == [] and signed.info()["signature_keys"] == [
        "serving_default"
    ]
    sample = make_inputs(signed.inputs(), 1, seed=4)[0]
    np.testing.assert_allclose(plain.run(sample)[0], signed.run(sample)[0], rtol=1e-6)


def test_dynamic_batch_resizes_to_four_and_follows_the_data():
    runtime = open_runtime(DATA / "dynamic_batch_f32.tflite")
    assert runtime.max_batch_size is None
    runtime.set_batch_size(4)
    (batch,) = make_inputs(runtime.inputs(), 1, batch_size=4)[0]
    assert batch.shape == (4, 64)
    (out,) = runtime.run([batch])
    assert out.shape == (4, 10)
    rows = [runtime.run([batch[i : i + 1]])[0] for i in range(4)]  # resized back to 1 on the fly
    np.testing.assert_allclose(np.concatenate(rows), out, rtol=1e-5, atol=1e-6)
    assert runtime.run([batch[:2]])[0].shape == (2, 10)


def test_fixed_batch_refuses_another_batch_size():
    runtime = open_runtime(DATA / "mlp_f32.tflite")
    assert runtime.max_batch_size == 1
    runtime.set_batch_size(1)
    with pytest.raises(ValueError, match="fixed batch dimension of 1"):
        runtime.set_batch_size(4)
    with pytest.raises(ValueError, match=r"takes shape \[1, 64\]"):
        runtime.run([np.zeros((2, 64), np.float32)])
    with pytest.raises(ValueError, match="takes float32, got float64"):
        runtime.run([np.zeros((1, 64))])


def test_threads_and_xnnpack_off_are_applied_and_reported():
    sample = make_inputs(open_runtime(DATA / "cnn_f32.tflite").inputs(), 1)[0]
    on = open_runtime(DATA / "cnn_f32.tflite", threads=2)
    off = open_runtime(DATA / "cnn_f32.tflite", "litert", threads=1, xnnpack=False)
    assert (on.info()["threads"], on.info()["xnnpack"]) == (2, True)
    assert (off.info()["threads"], off.info()["xnnpack"]) == (1, False)
    np.testing.assert_allclose(on.run(sample)[0], off.run(sample)[0], rtol=1e-4, atol=1e-6)


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated")
def test_litert_and_tensorflow_give_the_same_outputs():
    litert = open_runtime(DATA / "mlp_f32.tflite")
    saved_model = open_runtime(DATA / "mlp_savedmodel")
    keras_model = open_runtime(DATA / "mlp.keras")
    tf_lite = TFLiteRuntime(DATA / "mlp_f32.tflite", interpreter="tensorflow")
    assert saved_model.info()["format"] == "savedmodel" and saved_model.name == "tensorflow"
    assert keras_model.info()["keras"].startswith("keras ")
    assert tf_lite.info()["interpreter_package"] == "tensorflow"
    for sample in make_inputs(litert.inputs(), 5, seed=7):
        expected = litert.run(sample)[0]
        for other in (saved_model, keras_model, tf_lite):
            np.testing.assert_allclose(other.run(sample)[0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_tf_keras_h5_loads_with_legacy_keras_and_takes_any_batch(tmp_path, monkeypatch):
    import tf_keras

    inp = tf_keras.Input(shape=(4,), name="x")
    model = tf_keras.Model(inp, tf_keras.layers.Dense(2, name="y")(inp))
    model.save(tmp_path / "legacy.h5")
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", "1")
    runtime = open_runtime(tmp_path / "legacy.h5")
    assert runtime.info()["keras"].startswith("tf_keras ")
    assert _io(runtime.inputs()) == [("x", (-1, 4), "float32")]
    assert runtime.max_batch_size is None
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(runtime.run([x])[0], model(x).numpy(), rtol=1e-5, atol=1e-6)


def test_shipped_jax_export_runs():
    runtime = open_runtime(DATA / "mlp.jaxexport")
    assert _io(runtime.inputs()) == [("input_0", (1, 64), "float32")]
    (probs,) = runtime.run(make_inputs(runtime.inputs(), 1)[0])
    assert probs.shape == (1, 10) and abs(float(probs.sum()) - 1) < 1e-5


def test_jax_export_round_trip_with_dynamic_batch(tmp_path):
    from accelbench.runtimes.jax_runtime import save_jax_export

    w = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)

    def fn(x, y):
        return x @ w + y, (x * 2).sum(axis=1)

    x = np.ones((2, 4), np.float32)
    y = np.full((2, 3), 0.5, np.float32)
    path = save_jax_export(fn, [x, y], tmp_path / "f.jaxexport", dynamic_batch=True)
    runtime = open_runtime(path)
    assert runtime.name == "jax" and runtime.max_batch_size is None
    assert _io(runtime.inputs()) == [
        ("input_0", (-1, 4), "float32"),
        ("input_1", (-1, 3), "float32"),
    ]
    batch = make_inputs(runtime.inputs(), 1, batch_size=5, seed=2)[0]
    first, second = runtime.run(batch)
    np.testing.assert_allclose(first, batch[0] @ w + batch[1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(second, (batch[0] * 2).sum(axis=1), rtol=1e-5)
    assert isinstance(first, np.ndarray) and first.shape == (5, 3)


def test_make_inputs_respects_dtypes_ranges_and_seed():
    specs = {
        name: open_runtime(DATA / f"{name}.tflite").inputs()
        for name in ("mlp_f32", "cnn_int8", "mlp_uint8io", "embed_int32")
    }
    floats = np.concatenate([s[0] for s in make_inputs(specs["mlp_f32"], 20)])
    assert floats.dtype == np.float32 and -1 <= floats.min() < -0.9 and 0.9 < floats.max() <= 1
    int8 = np.concatenate([s[0] for s in make_inputs(specs["cnn_int8"], 2)])
    assert int8.dtype == np.int8 and int8.min() == -128 and int8.max() == 127
    uint8 = np.concatenate([s[0] for s in make_inputs(specs["mlp_uint8io"], 20)])
    assert uint8.dtype == np.uint8 and uint8.min() < 10 and uint8.max() > 245
    ids = np.concatenate([s[0] for s in make_inputs(specs["embed_int32"], 20)])
    assert ids.dtype == np.int32 and ids.min() == 0 and ids.max() == 9

    first = make_inputs(specs["mlp_f32"], 3, seed=11)
    np.testing.assert_array_equal(first[2][0], make_inputs(specs["mlp_f32"], 3, seed=11)[2][0])
    np.testing.assert_array_equal(first[1][0], make_inputs(specs["mlp_f32"], 2, seed=11)[1][0])
    assert not np.array_equal(first[0][0], make_inputs(specs["mlp_f32"], 1, seed=12)[0][0])
    with pytest.raises(UsageError, match="fixed batch dimension of 1"):
        make_inputs(specs["mlp_f32"], 1, batch_size=4)


def test_load_inputs_reads_npy_and_npz(tmp_path):
    multi = open_runtime(DATA / "multi_io_f32.tflite").inputs()
    images = np.random.default_rng(0).normal(size=(3, 1, 8, 8, 1)).astype(np.float32)
    vectors = np.random.default_rng(1).normal(size=(3, 4))  # float64: cast to float32
    np.savez(tmp_path / "named.npz", vector=vectors, image=images)
    np.savez(tmp_path / "positional.npz", images, vectors)
    for name in ("named.npz", "positional.npz"):
        samples = load_inputs(tmp_path / name, multi)
        assert len(samples) == 3
        np.testing.assert_array_equal(samples[2][0], images[2])
        assert samples[1][1].shape == (1, 4) and samples[1][1].dtype == np.float32
    ids = np.arange(32).reshape(2, 16)  # int64 ids fit int32
    np.save(tmp_path / "ids.npy", ids)
    (ids_spec,) = open_runtime(DATA / "embed_int32.tflite").inputs()
    loaded = load_inputs(tmp_path / "ids.npy", [ids_spec])
    assert loaded[1][0].dtype == np.int32 and loaded[1][0].tolist() == [list(range(16, 32))]


def test_load_inputs_mismatches_name_the_file_input_and_expectation(tmp_path):
    mlp = open_runtime(DATA / "mlp_f32.tflite").inputs()
    multi = open_runtime(DATA / "multi_io_f32.tflite").inputs()
    ids = open_runtime(DATA / "embed_int32.tflite").inputs()
    np.save(tmp_path / "wrong_shape.npy", np.zeros((5, 32), np.float32))
    np.save(tmp_path / "floats.npy", np.zeros((5, 16), np.float32))
    np.savez(tmp_path / "wrong_keys.npz", a=np.zeros((1, 1, 8, 8, 1)), b=np.zeros((1, 4)))
    np.savez(tmp_path / "counts.npz", image=np.zeros((2, 8, 8, 1)), vector=np.zeros((3, 4)))
    cases = [
        ("wrong_shape.npy", mlp, r"input 'features'.*\[1, 64\].*\[5, 32\]"),
        ("floats.npy", ids, "input 'token_ids'.*expected int32 data, got float32"),
        ("floats.npy", multi, "holds one array but the model takes 2 inputs"),
        ("wrong_keys.npz", multi, r"arrays \['a', 'b'\].*inputs \['image', 'vector'\]"),
        ("counts.npz", multi, "different numbers of samples"),
        ("missing.npz", mlp, "does not exist"),
    ]
    for name, specs, message in cases:
        with pytest.raises(UsageError, match=message) as err:
            load_inputs(tmp_path / name, specs)
        assert name in str(err.value)


def test_open_runtime_refuses_unknown_or_unfitting_runtimes(tmp_path):
    assert RUNTIME_NAMES == ("litert", "tflite-runtime", "tensorflow", "jax")
    cases = [
        (DATA / "mlp_f32.tflite", "onnxruntime", {}, "unknown runtime 'onnxruntime'"),
        (DATA / "mlp_f32.tflite", "jax", {}, "runtime 'jax' cannot run .*use 'litert'"),
        (DATA / "mlp_savedmodel", "litert", {}, "use 'tensorflow'"),
        (DATA / "mlp.jaxexport", "tensorflow", {}, "use 'jax'"),
        (DATA / "mlp_savedmodel", None, {"xnnpack": False}, "xnnpack=False applies to .tflite"),
        (DATA / "mlp_f32.tflite", None, {"threads": 0}, "threads must be a positive integer"),
        (tmp_path / "nothing.tflite", None, {}, "does not exist"),
        (tmp_path, None, {}, "directory without saved_model.pb"),
    ]
    for artifact, runtime, kwargs, message in cases:
        with pytest.raises(UsageError, match=message):
            open_runtime(artifact, runtime, **kwargs)


def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = (DATA / "cnn_f32.tflite").read_bytes()
    files = {
        "missing": (tmp_path / "missing.tflite", "does not exist; pass the path of a .tflite"),
        "directory": (tmp_path / "folder", "is a directory"),
        "savedmodel": (DATA / "mlp_savedmodel", "is a SavedModel directory"),
        "empty": (tmp_path / "empty.tflite", r"is empty \(0 bytes\)"),
        "random": (tmp_path / "random.tflite", "is not a TFLite model"),
        "zip": (tmp_path / "model.tflite", "looks like a zip archive"),
        "hdf5": (tmp_path / "weights.tflite", "looks like an HDF5 file"),
        "truncated": (tmp_path / "truncated.tflite", "is truncated or corrupt"),
        "header_only": (tmp_path / "header.tflite", "is truncated or corrupt"),
    }
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.tflite").write_bytes(b"")
    (tmp_path / "random.tflite").write_bytes(np.random.default_rng(0).bytes(4096))
    with zipfile.ZipFile(tmp_path / "model.tflite", "w") as archive:
        archive.writestr("config.json", "{}")
    (tmp_path / "weights.tflite").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (tmp_path / "truncated.tflite").write_bytes(good[: len(good) // 2])
    (tmp_path / "header.tflite").write_bytes(good[:8])
    return files


def test_validate_tflite_accepts_real_models():
    for model in TFLITE_MODELS:
        validate_tflite(DATA / f"{model}.tflite", load=model == "cnn_int8")


def test_validate_tflite_names_each_bad_file_kind(tmp_path):
    for kind, (path, message) in _bad_files(tmp_path).items():
        with pytest.raises(UsageError, match=message) as err:
            validate_tflite(path)
        text = str(err.value)
        assert str(path) in text and "\n" not in text, kind
    # open_runtime gives the same one-line reasons.
    with pytest.raises(UsageError, match="truncated or corrupt"):
        open_runtime(tmp_path / "truncated.tflite")


def test_validate_tflite_survives_corrupted_bytes(tmp_path):
    good = bytearray((DATA / "mlp_f32.tflite").read_bytes())
    rng = np.random.default_rng(0)
    outcomes = []
    for trial in range(3):
        bad = bytearray(good)
        for i in rng.integers(8, len(bad), 40):
            bad[i] = int(rng.integers(0, 256))
        path = tmp_path / f"corrupt{trial}.tflite"
        path.write_bytes(bytes(bad))
        try:
            validate_tflite(path)  # the load runs in a child: a crash there is a UsageError
            outcomes.append("ok")
        except UsageError as err:
            assert "\n" not in str(err)
            outcomes.append("refused")
    assert "refused" in outcomes


def test_validate_tflite_reports_a_crashing_interpreter_as_one_line(tmp_path, monkeypatch):
    model = tmp_path / "m.tflite"
    shutil.copy(DATA / "mlp_f32.tflite", model)
    fake = tmp_path / "edge.py"
    fake.write_text("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    monkeypatch.setattr("accelbench.runtimes.validate.EDGE_RUNNER", fake)
    with pytest.raises(UsageError, match=r"crashed the TFLite interpreter .*signal 11"):
        validate_tflite(model)


def test_tensorflow_threads_are_set_before_tensorflow_starts():
    code = f"""
from accelbench.runtimes import open_runtime
rt = open_runtime({str(DATA / "mlp_savedmodel")!r}, threads=2)
info = rt.info()
print(info["intra_op_threads"], info["inter_op_threads"])
try:
    open_runtime({str(DATA / "mlp_savedmodel")!r}, threads=3)
except RuntimeError as err:
    print(err)
"""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    threads, refusal = done.stdout.strip().splitlines()[-2:]
    assert threads == "2 1"
    assert "threads cannot be set to 3" in refusal


def test_jax_refuses_a_thread_count_it_cannot_enforce():
    cpus = len(os.sched_getaffinity(0))
    assert open_runtime(DATA / "mlp.jaxexport", threads=cpus).info()["threads_limited_by"] == (
        "cpu affinity"
    )
    with pytest.raises(UsageError, match=f"cannot limit itself to {cpus + 1} threads"):
        open_runtime(DATA / "mlp.jaxexport", threads=cpus + 1)
