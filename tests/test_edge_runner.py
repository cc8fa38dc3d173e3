"""The edge runner alone: no framework imports, a copy of edge.py that runs by itself, its CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accelbench.runtimes import edge

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("tensorflow", "jax", "pandas", "keras", "tf_keras")


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def test_importing_the_edge_runner_pulls_in_no_framework():
    code = f"""
import sys
import numpy as np
import accelbench.runtimes.edge as edge
rt = edge.TFLiteRuntime({str(DATA / "cnn_f32.tflite")!r}, threads=1)
out = rt.run(edge.random_inputs(rt.inputs()))
assert out[0].shape == (1, 10), out[0].shape
print(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules))
"""
    done = _python(code, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_lone_copy_of_edge_py_runs_without_accelbench(tmp_path):
    shutil.copy(Path(edge.__file__), tmp_path / "edge.py")
    shutil.copy(DATA / "multi_io_f32.tflite", tmp_path / "model.tflite")
    code = f"""
import sys
import edge
rt = edge.TFLiteRuntime("model.tflite")
outs = rt.run(edge.random_inputs(rt.inputs()))
assert [o.shape for o in outs] == [(1, 3), (1, 2)]
print(sorted(m for m in {(*FRAMEWORKS, "accelbench")!r} if m in sys.modules))
"""
    done = _python(code, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _edge_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, edge.__file__, *args], capture_output=True, text=True, timeout=120
    )


def test_cli_prints_specs_and_one_run_as_json():
    done = _edge_cli(
        str(DATA / "dynamic_batch_f32.tflite"),
        "--threads",
        "1",
        "--runs",
        "2",
        "--batch-size",
        "3",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["info"]["threads"] == 1 and report["info"]["xnnpack"] is True
    assert report["inputs"][0]["shape"] == [-1, 64]
    assert report["results"][0]["shape"] == [3, 10]


def test_cli_prints_quantization_in_text_mode():
    done = _edge_cli(str(DATA / "cnn_int8.tflite"), "--no-xnnpack")
    assert done.returncode == 0, done.stderr
    assert "xnnpack=off" in done.stdout
    assert "image: [1, 16, 16, 3] int8 q=[" in done.stdout
    assert "result 0: [1, 10] int8" in done.stdout


def test_cli_says_what_is_wrong_in_one_line(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a model at all")
    done = _edge_cli(str(bad))
    assert done.returncode == 2
    assert done.stderr.strip().startswith("edge.py: error:")
    assert len(done.stderr.strip().splitlines()) == 1


def test_unknown_or_missing_interpreter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown interpreter 'onnx'"):
        edge.TFLiteRuntime(DATA / "mlp_f32.tflite", interpreter="onnx")
    with pytest.raises(FileNotFoundError):
        edge.TFLiteRuntime(DATA / "absent.tflite")
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        edge.TFLiteRuntime(DATA / "mlp_f32.tflite", threads=0)


def test_requesting_an_absent_interpreter_names_the_package():
    from accelbench.errors import UsageError
    from accelbench.runtimes import open_runtime

    model = DATA / "mlp_f32.tflite"
    if importlib.util.find_spec("tflite_runtime") is not None:
        assert open_runtime(model, "tflite-runtime").info()["runtime"] == "tflite-runtime"
        return
    with pytest.raises(ImportError, match="pip install tflite-runtime"):
        edge.TFLiteRuntime(model, interpreter="tflite-runtime")
    with pytest.raises(UsageError, match="needs the tflite-runtime package"):
        open_runtime(model, "tflite-runtime")
