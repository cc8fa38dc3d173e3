"""Input pipelines: formats round-trip, pipelines agree, CLI records, input-bound detection."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from accelbench.benchmarks import input_pipeline as ip
from accelbench.benchmarks.input_formats import (
    FORMATS,
    reader_for,
    skip_reason,
    to_pixels,
    write_format,
)
from accelbench.cli import main
from accelbench.errors import UsageError

SHAPE = (8, 8, 1)


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images[:n] / 16.0).astype(np.float32)[..., None]
    return x, bunch.target[:n].astype(np.int64)


def _examples(ds) -> list[tuple[int, bytes]]:
    """Every example of a batched dataset as (label, float32 bytes), in the order delivered."""
    out = []
    for features, labels in ds:
        for f, label in zip(features.numpy(), labels.numpy(), strict=True):
            out.append((int(label), np.asarray(f, np.float32).tobytes()))
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    x, y = _digits(23)  # not a multiple of the shards or the batch: ragged ends are exercised
    folder = tmp_path_factory.mktemp("formats")
    readers = {fmt: reader_for(write_format(fmt, x, y, folder, shards=3), SHAPE) for fmt in FORMATS}
    return x, y, readers


def test_each_format_reads_back_the_examples_written(written):
    x, y, readers = written
    for fmt, reader in readers.items():
        assert len(reader.written.shards) == 3 and reader.written.bytes > 0
        got = list(ip.build_pipeline(reader, "naive", batch_size=5).unbatch().as_numpy_iterator())
        features = np.stack([g[0] for g in got])
        labels = np.array([g[1] for g in got])
        assert features.shape == (23, *SHAPE), fmt
        np.testing.assert_array_equal(labels, y, err_msg=fmt)
        if fmt == "png":  # lossless 8-bit pixels
            np.testing.assert_array_equal(features, to_pixels(x).astype(np.float32) / 255.0)
        elif fmt == "jpeg":  # lossy: close to the pixels, not equal
            assert np.abs(features - x).mean() < 0.03, fmt
        else:
            np.testing.assert_array_equal(features, x, err_msg=fmt)


def test_every_pipeline_gives_the_same_examples_as_naive(written):
    _, _, readers = written
    for fmt, reader in readers.items():
        naive = sorted(_examples(ip.build_pipeline(reader, "naive", batch_size=4)))
        assert len(naive) == 23
        for pipeline in ip.PIPELINES[1:]:
            ds = ip.build_pipeline(reader, pipeline, batch_size=4)
            # A cache's second epoch comes from memory: it must give the same examples too.
            for epoch in range(2 if pipeline in ("cache", "best") else 1):
                assert sorted(_examples(ds)) == naive, (fmt, pipeline, epoch)


def test_image_formats_skip_tabular_data_with_a_reason():
    x = np.zeros((4, 30), np.float32)
    assert "shape (30,)" in skip_reason("png", (30,), x)
    assert skip_reason("csv", (30,), x) is None
    assert "outside [0, 1]" in skip_reason("jpeg", SHAPE, np.full((2, *SHAPE), 3.0, np.float32))


@pytest.mark.slow
def test_cli_run_records_every_format_and_pipeline(tmp_path, capsys):
    x, y = _digits(160)
    data = tmp_path / "digits.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / "run"
    code = main(
        [
            "input-pipeline",
            "digits_cnn",
            "--data",
            str(data),
            "--examples",
            "96",
            "--min-seconds",
            "0.02",
            "--batch-size",
            "16",
            "--pipelines",
            "naive,best",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    cells = [r for r in records if r["scenario"] == "input-pipeline"]
    by_key = {
        r["cell_id"].rsplit(".", 2)[-2] + "." + r["cell_id"].rsplit(".", 1)[-1]: r for r in cells
    }
    for fmt in FORMATS:
        speeds = {}
        for pipeline in ("naive", "best"):
            r = by_key[f"{fmt}.{pipeline}"]
            assert r["status"] == "ok", r["error"]
            assert r["settings"]["format"] == fmt and r["settings"]["pipeline"] == pipeline
            assert r["settings"]["examples"] == 96 and r["settings"]["epochs"] >= 1
            assert r["settings"]["inputs"] == str(data.resolve())  # the data it read
            for name in ("examples_per_s", "mb_per_s", "speedup_vs_naive"):
                assert (
                    r["metrics"][name]["direction"] == "higher" and r["metrics"][name]["value"] > 0
                )
            speeds[pipeline] = r["metrics"]["examples_per_s"]["value"]
        fastest = max(speeds, key=speeds.get)
        assert by_key[f"{fmt}.naive"]["settings"]["fastest_pipeline"] == fastest
        assert by_key[f"{fmt}.{fastest}"]["settings"]["fastest"] is True
        stages = by_key[f"{fmt}.naive"]["settings"]["stage_ms_per_example"]
        assert set(stages) == set(ip.STAGES) and sum(stages.values()) > 0
        assert f"\n{fmt}\n" in printed and "fastest:" in printed
    check = next(r for r in cells if r["cell_id"].endswith(".input_bound"))
    m, s = check["metrics"], check["settings"]
    assert m["train_step_examples_per_s"]["value"] > 0
    factor = m["train_step_examples_per_s"]["value"] / m["naive_pipeline_examples_per_s"]["value"]
    assert m["input_bound_factor"]["value"] == pytest.approx(factor)
    assert s["input_bound"] is (factor > 1)
    assert "training step:" in printed
    table = (out / "summary.md").read_text()
    assert "png/best" in table


def test_input_bound_detection_on_a_slow_and_a_fast_pipeline():
    import tensorflow as tf

    from accelbench.models import get_spec

    spec = get_spec("digits_cnn")
    x, y = _digits(512)
    step = ip.measure_train_step(spec.build(0), x, y, 32, min_seconds=0.3)
    assert step["examples_per_s"] > 0 and step["steps"] >= 1

    def slow(features, label):
        # 2 ms per example: at most 500 examples/s, far below any training step here.
        delay = tf.py_function(lambda: time.sleep(0.002) or 0.0, [], tf.float32)
        return features + delay, label

    base = tf.data.Dataset.from_tensor_slices((x[:64], y[:64]))
    slow_ds = base.map(slow).batch(32)
    fast_ds = tf.data.Dataset.from_tensor_slices((np.tile(x, (8, 1, 1, 1)), np.tile(y, 8)))
    fast_ds = fast_ds.batch(32).cache()
    slow_speed = ip.measure(slow_ds, min_seconds=0.1)["examples_per_s"]
    fast_speed = ip.measure(fast_ds, min_seconds=0.2)["examples_per_s"]

    bound = ip.input_bound_verdict(
        step["examples_per_s"], {"naive": slow_speed, "cache": fast_speed}
    )
    assert bound["input_bound"] is True and bound["input_bound_factor"] > 1
    assert bound["fixed_by"] == "cache" and bound["input_bound_with_best"] is False
    free = ip.input_bound_verdict(step["examples_per_s"], {"naive": fast_speed})
    assert free["input_bound"] is False and free["input_bound_factor"] < 1
    assert free["fixed_by"] == "naive"


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: d / "missing.npz", "does not exist"),
        (lambda d: _write(d / "empty.csv", b""), "empty"),
        (lambda d: _write(d / "data.txt", b"1,2,3\n"), "unsupported data format"),
        (lambda d: _npz(d / "wide.npz", np.zeros((20, 30), np.float32)), "(30,)"),
        (lambda d: _npz(d / "rgb.npz", np.zeros((20, 8, 8, 3), np.float32)), "(8, 8, 3)"),
    ],
    ids=["missing", "empty", "wrong-format", "feature-count", "image-shape"],
)
def test_bad_data_is_one_line_and_writes_nothing(tmp_path, capsys, make, expected):
    data = make(tmp_path)
    out = tmp_path / "run"
    code = main(["input-pipeline", "digits_cnn", "--data", str(data), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("accelbench: error:")
    assert str(data.name) in err and expected in err
    assert not out.exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["no_such_model"], "unknown reference model"),
        (["--formats", "csv,avro"], "unknown format 'avro'"),
        (["--pipelines", "turbo"], "unknown pipeline 'turbo'"),
        (["--examples", "0"], "examples must be a positive integer"),
    ],
)
def test_bad_flags_are_one_line(tmp_path, capsys, args, expected):
    code = main(["input-pipeline", *args, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and expected in err
    assert not (tmp_path / "run").exists()


def test_suite_options_are_checked(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        "models: [{name: digits_cnn}]\nscenarios: [input-pipeline]\n"
        "input_pipeline: {formats: [csv], batch: 8}\n"
    )
    assert main(["run", str(suite), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "input_pipeline" in err and "'batch'" in err and "batch_size" in err
    checked = ip.check_options({"formats": "csv,png", "pipelines": ["best"]})
    assert checked["formats"] == ["csv", "png"] and checked["pipelines"] == ["naive", "best"]


def test_worker_fails_a_cell_whose_data_does_not_fit_the_model(tmp_path):
    data = _npz(tmp_path / "wide.npz", np.zeros((20, 30), np.float32))
    cell = {
        "model": "digits_cnn",
        "threads": 1,
        "seed": 0,
        "settings": {"input_pipeline": {}, "data": str(data)},
    }
    with pytest.raises(UsageError, match=r"wide\.npz.*\(30,\)"):
        ip.run_cell(cell, tmp_path / "log")


def _write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _npz(path: Path, x: np.ndarray) -> Path:
    np.savez(path, x=x, y=np.arange(len(x)) % 10)
    return path
