"""Model files that would run their own code when loaded (Keras Lambda layers) are refused.

Every model here has a Lambda whose function writes a marker file: the marker appearing means
the file's code ran. Building and saving a model calls the function, so the marker is deleted
once the files are written.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from conftest import run_cli

from accelbench.cli import main
from accelbench.errors import UsageError


def _marker_lambda(marker: Path):
    # A lambda, not a def: Keras stores a lambda's bytecode (and defaults) in the file, a def
    # only by name.
    return lambda x, path=str(marker): (open(path, "w").close(), x)[1]


@pytest.fixture(scope="module")
def unsafe(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The same small classifier with a code-writing Lambda, in every format that holds one."""
    from accelbench.keras_compat import legacy_keras

    tmp = tmp_path_factory.mktemp("unsafe")
    marker = tmp / "MARKER"
    keras2 = legacy_keras()
    inputs = keras2.Input((4,))
    hidden = keras2.layers.Lambda(_marker_lambda(marker), name="writes_marker")(inputs)
    inner = keras2.Model(inputs, hidden, name="inner")  # a nested model: the Lambda is inside
    outer_inputs = keras2.Input((4,))
    outputs = keras2.layers.Dense(3, activation="softmax")(inner(outer_inputs))
    model = keras2.Model(outer_inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    files = SimpleNamespace(marker=marker, h5=tmp / "evil.h5", keras2=tmp / "evil2.keras")
    model.save(files.h5)
    model.save(files.keras2)
    files.saved_model = tmp / "evil_savedmodel"
    model.save(files.saved_model)
    files.legacy_saved_model = _legacy_saved_model(files.saved_model, tmp / "evil_pre_tf25")

    import keras  # Keras 3, the package itself

    k3_inputs = keras.Input((4,))
    k3_hidden = keras.layers.Lambda(_marker_lambda(marker), name="k3_lambda")(k3_inputs)
    k3_outputs = keras.layers.Dense(3, activation="softmax")(k3_hidden)
    files.keras3 = tmp / "evil3.keras"
    keras.Model(k3_inputs, k3_outputs).save(files.keras3)

    safe = keras2.Sequential([keras2.Input((4,)), keras2.layers.Dense(3)])
    files.safe_h5 = tmp / "safe.h5"
    safe.save(files.safe_h5)
    rng = np.random.default_rng(0)
    files.data = tmp / "data.npz"
    np.savez(files.data, x=rng.normal(size=(40, 4)).astype(np.float32), y=rng.integers(0, 3, 40))
    marker.unlink()
    return files


def _legacy_saved_model(saved_model: Path, copy: Path) -> Path:
    """The layout of SavedModels before keras_metadata.pb: each layer's JSON in saved_model.pb."""
    import shutil

    from tensorflow.core.protobuf import saved_model_pb2
    from tf_keras.protobuf import saved_metadata_pb2

    shutil.copytree(saved_model, copy)
    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString((copy / "keras_metadata.pb").read_bytes())
    (copy / "keras_metadata.pb").unlink()
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((copy / "saved_model.pb").read_bytes())
    nodes = proto.meta_graphs[0].object_graph_def.nodes
    for node in metadata.nodes:
        nodes[node.node_id].user_object.metadata = node.metadata
    (copy / "saved_model.pb").write_bytes(proto.SerializeToString())
    return copy


def _refused(err: str, *needles: str) -> None:
    assert err.startswith("accelbench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)


def test_h5_with_lambda_is_refused_by_every_command(unsafe, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default results/ folder would appear here
    out = tmp_path / "out"
    h5, data = str(unsafe.h5), str(unsafe.data)
    suite = tmp_path / "suite.yaml"
    suite_with_data = tmp_path / "suite_with_data.yaml"
    suite.write_text(yaml.safe_dump({"models": [{"path": h5}]}))
    suite_with_data.write_text(yaml.safe_dump({"models": [{"path": h5, "data": data}]}))
    for argv in (
        ["bench", h5, "--out", str(out)],
        ["optimize", h5, "--data", data, "--out", str(out)],
        ["train", h5, "--data", data, "--target", "0.5", "--out", str(out)],
        ["run", str(suite), "--out", str(out)],
        ["run", str(suite_with_data), "--out", str(out)],
        ["run", str(suite)],
    ):
        assert main([*argv, "--no-progress"]) == 2, argv
        _refused(capsys.readouterr().err, "Lambda layer 'writes_marker'", "evil.h5")
        assert not unsafe.marker.exists(), argv
    # serve runs until stopped when it accepts a model: a fresh process with a deadline.
    served = run_cli("serve", h5, "--port", "0", cwd=tmp_path, timeout=120)
    assert served.returncode == 2 and served.stdout == ""
    _refused(served.stderr, "Lambda layer 'writes_marker'", "evil.h5")
    assert not unsafe.marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["suite.yaml", "suite_with_data.yaml"]


def test_keras_zip_and_saved_model_with_lambda_are_refused(unsafe, tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (unsafe.keras2, ("Lambda layer 'writes_marker'", "config.json")),
        (unsafe.keras3, ("Lambda layer 'k3_lambda'", "config.json")),
        (unsafe.saved_model, ("Lambda layer 'writes_marker'", "keras_metadata.pb")),
        (unsafe.legacy_saved_model, ("Lambda layer 'writes_marker'", "saved_model.pb")),
    ]
    for model, needles in cases:
        for argv in (
            ["bench", str(model), "--out", str(out)],
            ["optimize", str(model), "--data", str(unsafe.data), "--out", str(out)],
        ):
            assert main([*argv, "--no-progress"]) == 2, argv
            _refused(capsys.readouterr().err, model.name, *needles)
            assert not unsafe.marker.exists() and not out.exists(), argv


def test_library_loaders_and_run_suite_refuse_before_loading(unsafe, tmp_path):
    from accelbench.optimizers import load_user_model
    from accelbench.runner.suite import suite_from_mapping
    from accelbench.runner.sweep import run_suite
    from accelbench.runtimes import open_runtime
    from accelbench.runtimes.model_inspect import Finding, find_unsafe

    assert find_unsafe(unsafe.h5) == [Finding("code-layer", "writes_marker", "model_config")]
    assert find_unsafe(unsafe.safe_h5) == []
    # A Python lambda serialized anywhere in a .keras config (here a custom layer's argument).
    lambda_arg = tmp_path / "custom.keras"
    config = {
        "class_name": "Functional",
        "config": {
            "name": "m",
            "layers": [
                {
                    "class_name": "MyLayer",
                    "config": {
                        "name": "custom",
                        "fn": {
                            "class_name": "__lambda__",
                            "config": {"value": ["4wEA", None, None]},
                        },
                    },
                }
            ],
        },
    }
    with zipfile.ZipFile(lambda_arg, "w") as archive:
        archive.writestr("config.json", json.dumps(config))
    assert find_unsafe(lambda_arg) == [Finding("python-lambda", "custom", "config.json")]
    # A Keras HDF5 file under another name is still read as HDF5 by Keras: inspected as one.
    renamed = tmp_path / "looks_like.keras"
    renamed.write_bytes(unsafe.h5.read_bytes())
    for model in (unsafe.h5, unsafe.keras2, unsafe.keras3, unsafe.saved_model, renamed):
        for load in (open_runtime, load_user_model):
            with pytest.raises(UsageError, match="Lambda layer"):
                load(model)
    suite = suite_from_mapping({"models": [{"path": str(unsafe.h5)}]}, "test")
    with pytest.raises(UsageError, match="Lambda layer 'writes_marker'"):
        run_suite(suite, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists() and not unsafe.marker.exists()


def test_unreadable_keras_architecture_is_refused_not_loaded(tmp_path, capsys):
    bad = tmp_path / "bad_config.keras"
    with zipfile.ZipFile(bad, "w") as archive:
        archive.writestr("config.json", "{not json")
    assert main(["bench", str(bad), "--out", str(tmp_path / "out")]) == 2
    _refused(capsys.readouterr().err, "bad_config.keras", "cannot be inspected")
    assert not (tmp_path / "out").exists()
    assert os.listdir(tmp_path) == ["bad_config.keras"]
