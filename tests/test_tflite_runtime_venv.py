"""The edge runner on tflite-runtime, in its own slim venv (numpy < 2), as on a real device.

The venv is built once under $ACCELBENCH_CACHE_DIR (default ~/.cache/accelbench) and reused. The
test is skipped, with pip's reason, only when pip cannot get the packages; under CI it fails then.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest
from conftest import unavailable

from accelbench.runtimes import edge, make_inputs, open_runtime

DATA = Path(__file__).parent / "data"
PACKAGES = ["tflite-runtime==2.14.0", "numpy<2"]


def _cache_dir() -> Path:
    root = os.environ.get("ACCELBENCH_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "accelbench"


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    probe = "import tflite_runtime, numpy; assert tflite_runtime.__version__ == '2.14.0'"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def tflite_runtime_python() -> Path:
    target = _cache_dir() / "venv-tflite-runtime"
    python = target / "bin" / "python"
    if _works(python):
        return python
    # Built beside the target and renamed into place, so a concurrent run never sees half a venv.
    staging = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    venv.create(staging, with_pip=True)
    pip = [staging / "bin" / "python", "-m", "pip", "install", "--quiet", *PACKAGES]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        unavailable(f"pip could not install {' '.join(PACKAGES)}: {lines[-1] if lines else '?'}")
    shutil.rmtree(target, ignore_errors=True)
    try:
        staging.rename(target)
    except OSError:  # another run got there first
        shutil.rmtree(staging, ignore_errors=True)
    assert _works(python), f"{target} was built but cannot import tflite_runtime 2.14.0"
    return python


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "batch_size", "xnnpack"),
    [
        ("mlp_f32", 1, True),
        ("cnn_int8", 1, True),
        ("multi_io_f32", 1, False),
        ("dynamic_batch_f32", 3, True),
    ],
)
def test_lone_edge_py_on_tflite_runtime_matches_litert(
    tflite_runtime_python, tmp_path, model, batch_size, xnnpack
):
    shutil.copy(edge.__file__, tmp_path / "edge.py")
    shutil.copy(DATA / f"{model}.tflite", tmp_path / "model.tflite")
    litert = open_runtime(DATA / f"{model}.tflite", xnnpack=xnnpack)
    sample = make_inputs(litert.inputs(), 1, batch_size=batch_size, seed=9)[0]
    np.savez(tmp_path / "inputs.npz", *sample)
    expected = litert.run(sample)

    command = [tflite_runtime_python, "edge.py", "model.tflite", "--interpreter", "tflite-runtime"]
    command += ["--inputs", "inputs.npz", "--save-outputs", "outputs.npz", "--json"]
    command += [] if xnnpack else ["--no-xnnpack"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)["info"]
    assert (info["interpreter_package"], info["interpreter_version"]) == (
        "tflite-runtime",
        "2.14.0",
    )
    assert info["xnnpack"] is xnnpack
    with np.load(tmp_path / "outputs.npz") as saved:
        got = [saved[f"arr_{i}"] for i in range(len(expected))]
    for want, have in zip(expected, got, strict=True):
        assert have.dtype == want.dtype and have.shape == want.shape
        if want.dtype.kind == "f":
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
        else:  # integer kernels may round one step apart between versions
            assert np.abs(have.astype(int) - want.astype(int)).max() <= 1
