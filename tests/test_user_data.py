"""A user's own model with data in any format the loaders read: optimize and train --data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from accelbench.cli import main
from accelbench.models.data import save_tfrecord

QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "3"}
IMAGE_SIDE = 8
FEATURES = 4


@pytest.fixture(scope="module")
def user_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny compiled tf_keras CNN (8x8 RGB, 2 classes) and MLP (4 features, 2 classes)."""
    folder = tmp_path_factory.mktemp("models")
    code = f"""
import os
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tf_keras as keras
keras.utils.set_random_seed(0)
cnn = keras.Sequential([
    keras.Input(({IMAGE_SIDE}, {IMAGE_SIDE}, 3)),
    keras.layers.Conv2D(4, 3, activation="relu"),
    keras.layers.GlobalAveragePooling2D(),
    keras.layers.Dense(2, activation="softmax"),
])
cnn.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
cnn.save({str(folder / "cnn.h5")!r})
mlp = keras.Sequential([
    keras.Input(({FEATURES},)),
    keras.layers.Dense(8, activation="relu"),
    keras.layers.Dense(2, activation="softmax"),
])
mlp.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
mlp.save({str(folder / "mlp.h5")!r})
"""
    env = {**os.environ, **QUIET_TF}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    return {"cnn": folder / "cnn.h5", "mlp": folder / "mlp.h5"}


def _image_folder(root: Path, per_class: int = 10, side: int = 12) -> Path:
    """Dark 'night' and bright 'day' PNGs, larger than the model's input so they are resized."""
    rng = np.random.default_rng(0)
    for name, low, high in (("day", 150, 255), ("night", 0, 100)):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(low, high, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def _table(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, FEATURES)) + y[:, None] * 2.0
    frame = pd.DataFrame(x.astype(np.float32), columns=[f"f{i}" for i in range(FEATURES)])
    frame["target"] = y
    return frame


def _records(out: Path) -> list[dict[str, Any]]:
    lines = (out / "records.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _optimize(model: Path, data: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "optimize",
            str(model),
            "--data",
            str(data),
            "--optimizations",
            "fp32,int8",
            "--scenario",
            "single-stream",
            "--preset",
            "quick",
            "--threads",
            "1",
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ]
    )


def _write_data(kind: str, tmp: Path) -> tuple[Path, tuple[str, ...]]:
    """The data file or folder of ``kind`` and the extra flags it needs."""
    if kind == "images":
        return _image_folder(tmp / "images"), ()
    frame = _table()
    if kind == "csv":
        frame.to_csv(tmp / "data.csv", index=False)
        return tmp / "data.csv", ("--label", "target")
    if kind == "parquet":
        frame.rename(columns={"target": "label"}).to_parquet(tmp / "data.parquet")
        return tmp / "data.parquet", ()  # the default label column
    x = frame.drop(columns="target").to_numpy()
    save_tfrecord(tmp / "data.tfrecord", x, frame["target"].to_numpy())
    return tmp / "data.tfrecord", ()


@pytest.mark.parametrize("kind", ["images", "csv", "parquet", "tfrecord"])
def test_optimize_reads_each_data_format(kind: str, user_models, tmp_path: Path) -> None:
    data, extra = _write_data(kind, tmp_path)
    model = user_models["cnn" if kind == "images" else "mlp"]
    out = tmp_path / "run"
    assert _optimize(model, data, out, *extra) == 0
    records = _records(out)
    accuracy = {r["optimization"]: r for r in records if r["scenario"] == "accuracy"}
    assert accuracy["fp32"]["status"] == "ok" and accuracy["int8"]["status"] == "ok"
    settings = accuracy["fp32"]["settings"]
    assert settings["data_split"] == "stratified 80/20 train/test, seed 0", settings
    if kind == "images":
        assert settings["data_format"] == "image folder"
        assert settings["data_scaling"] == "pixels / 255, to [0, 1]"
        assert settings["data_resize"] == f"bilinear to {IMAGE_SIDE}x{IMAGE_SIDE}"
    else:
        assert settings["data_label"] == ("target" if kind == "csv" else "label")
    bench = {r["optimization"]: r for r in records if r["scenario"] == "single-stream"}
    assert bench["int8"]["status"] == "ok", bench["int8"].get("error")
    # The tables' labels are ids, kept as the class names; an image folder's are its folders'.
    names = ["day", "night"] if kind == "images" else ["0", "1"]
    for record in (*accuracy.values(), *bench.values()):
        assert list(record["quality"]["per_class"]) == names, record["cell_id"]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_optimize_names_classes_by_a_tables_string_labels(kind, user_models, tmp_path) -> None:
    frame = _table()
    frame["target"] = np.array(["virginica", "setosa"])[frame["target"]]  # sorted: setosa is 0
    data = tmp_path / f"data.{kind}"
    frame.to_csv(data, index=False) if kind == "csv" else frame.to_parquet(data)
    out = tmp_path / "run"
    assert _optimize(user_models["mlp"], data, out, "--label", "target") == 0
    scored = [r for r in _records(out) if r["scenario"] in ("accuracy", "single-stream")]
    assert len(scored) == 4 and all(r["status"] == "ok" for r in scored)
    for record in scored:
        quality = record["quality"]
        assert list(quality["per_class"]) == ["setosa", "virginica"], record["cell_id"]
        assert set(quality["flagged_classes"]) <= {"setosa", "virginica"}


@pytest.mark.parametrize("kind", ["images", "csv"])
def test_train_reads_image_folder_and_csv(kind: str, user_models, tmp_path: Path) -> None:
    data, extra = _write_data(kind, tmp_path)
    model = user_models["cnn" if kind == "images" else "mlp"]
    out = tmp_path / "run"
    code = main(
        [
            "train",
            str(model),
            "--data",
            str(data),
            *extra,
            "--target",
            "0.01",
            "--seeds",
            "1",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    trained = [r for r in _records(out) if "framework" in (r.get("settings") or {})]
    assert trained and all(r["status"] == "ok" for r in trained), trained
    settings = trained[0]["settings"]
    assert settings["data_split"] == "stratified 80/20 train/test, seed 0"
    assert settings["data_format"] == ("image folder" if kind == "images" else "csv")
    # What the model was trained on, as a bench record names its --inputs: not "synthetic".
    assert settings["inputs"] == settings["data"] == str(data.resolve())


def _empty_class(tmp: Path) -> Path:
    root = _image_folder(tmp / "images")
    (root / "empty").mkdir()
    return root


def _one_class(tmp: Path) -> Path:
    root = tmp / "images" / "only"
    root.mkdir(parents=True)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a.png")
    return root.parent


def _undecodable(tmp: Path) -> Path:
    root = _image_folder(tmp / "images")
    (root / "day" / "broken.png").write_bytes(b"not a png at all")
    return root


def _csv_without_label(tmp: Path) -> Path:
    _table().to_csv(tmp / "data.csv", index=False)  # its label column is 'target'
    return tmp / "data.csv"


def _folder_for_table_model(tmp: Path) -> Path:
    return _image_folder(tmp / "images")


def _file_for_image_model(tmp: Path) -> Path:
    root = _image_folder(tmp / "images")
    return root / "day" / "0.png"


def _folder_named_csv(tmp: Path) -> Path:
    (tmp / "data.csv").mkdir()
    return tmp / "data.csv"


def _unknown_extension(tmp: Path) -> Path:
    (tmp / "data.xlsx").write_bytes(b"PK\x03\x04 spreadsheet")
    return tmp / "data.xlsx"


# Each: the model, the bad data, and words its one error line must hold (problem and fix).
BAD_DATA = {
    "empty class folder": ("cnn", _empty_class, ("'empty'", "no image files", "remove it")),
    "one class folder": ("cnn", _one_class, ("1 class folder", "at least 2")),
    "undecodable image": ("cnn", _undecodable, ("broken.png", "not a decodable image")),
    "missing label column": ("mlp", _csv_without_label, ("'label'", "target", "--label")),
    "folder for a table model": ("mlp", _folder_for_table_model, ("is a folder", ".csv")),
    "one image for a folder": ("cnn", _file_for_image_model, ("one image file", "sub-folder")),
    "folder named as a file": ("mlp", _folder_named_csv, ("is a folder", "give the file")),
    "unknown extension": ("mlp", _unknown_extension, ("'.xlsx'", ".npz", "image folder")),
}


@pytest.mark.parametrize("command", ["optimize", "train"])
@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_exits_2_with_one_line(case: str, command: str, user_models, tmp_path, capsys):
    model_kind, make, words = BAD_DATA[case]
    data = make(tmp_path)
    out = tmp_path / "run"
    argv = [command, str(user_models[model_kind]), "--data", str(data), "--out", str(out)]
    if command == "train":
        argv += ["--target", "0.5"]
    capsys.readouterr()
    assert main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("accelbench: error: ") and "\n" not in err, err
    for word in words:
        assert word in err, (word, err)
    assert not out.exists()
