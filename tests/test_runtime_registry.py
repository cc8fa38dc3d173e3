"""The runtime registry: a runtime added from outside accelbench (tests/toy_runtime.py, x @ W
for a .npy W) is opened by the library, accepted by every list of runtimes, and measured end to
end by `accelbench bench` in the runner's workers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import toy_runtime
from conftest import DATA, run_cli

from accelbench.errors import UsageError
from accelbench.runtimes import RUNTIMES, artifact_kind, open_runtime, runtimes_for
from accelbench.runtimes.registry import (
    RUNTIMES_ENV,
    RuntimeInfo,
    register_runtime,
    unregister_runtime,
)

TESTS = Path(__file__).parent
BUILTIN = ("litert", "tflite-runtime", "tensorflow", "jax")


@pytest.fixture
def toy() -> Iterator[RuntimeInfo]:
    """The toy runtime registered in this process, unregistered after the test."""
    register_runtime(toy_runtime.TOY)
    yield toy_runtime.TOY
    unregister_runtime("toy")


@pytest.fixture
def toy_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy runtime named in $ACCELBENCH_RUNTIMES, as a user adds one to the CLI: this
    process and every one it starts (the runner's workers) registers it; gone after the test."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv(RUNTIMES_ENV, "toy_runtime:TOY")


@pytest.fixture
def weights(tmp_path: Path) -> np.ndarray:
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    np.save(tmp_path / "w.npy", matrix)
    return matrix


def test_a_registered_runtime_opens_its_own_kind_of_artifact(toy, weights, tmp_path):
    assert tuple(RUNTIMES) == (*BUILTIN, "toy")
    assert artifact_kind(tmp_path / "w.npy") == "matmul-npy"
    assert runtimes_for("matmul-npy") == ("toy",)
    runtime = open_runtime(tmp_path / "w.npy")  # the default runtime for its kind
    x = np.ones((2, 4), np.float32)
    (y,) = runtime.run([x])
    np.testing.assert_allclose(y, x @ weights)
    assert runtime.info()["runtime"] == "toy"
    with pytest.raises(UsageError, match="runtime 'toy' cannot run .* use 'litert' or"):
        open_runtime(DATA / "mlp_f32.tflite", "toy")


def test_every_list_of_runtimes_follows_the_registry(toy, capsys):
    from accelbench.cli import main
    from accelbench.hardware_profiles import host
    from accelbench.hardware_profiles.schema import profile_from_mapping
    from accelbench.runner.suite import suite_from_mapping

    suite = suite_from_mapping({"models": [str(DATA / "mlp_f32.tflite")], "runtime": "toy"}, "t")
    assert suite.runtime == "toy"
    profile = {
        "name": "board",
        "kind": "cpu",
        "vendor": "v",
        "model": "m",
        "cores": 1,
        "memory_gb": 1,
        "supported_precisions": ["fp32"],
        "execution": "emulated",
        "runtimes": ["toy", "remote"],
    }
    assert profile_from_mapping(profile, "board.yaml").runtimes == ["toy", "remote"]
    assert "toy" in host.installed_runtimes()  # numpy, its module, is installed
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    bench_help = " ".join(capsys.readouterr().out.split())
    assert "--runtime RUNTIME litert, tflite-runtime, tensorflow, jax or toy" in bench_help


def test_an_unregistered_runtime_is_unknown_again(weights, tmp_path):
    register_runtime(toy_runtime.TOY)
    unregister_runtime("toy")
    assert tuple(RUNTIMES) == BUILTIN
    with pytest.raises(UsageError, match="unknown runtime 'toy'; use one of litert, "):
        open_runtime(tmp_path / "w.npy", "toy")
    with pytest.raises(UsageError, match="is not a model accelbench can run"):
        artifact_kind(tmp_path / "w.npy")


def test_registration_refuses_a_taken_or_reserved_name(toy):
    for name in ("litert", "toy", "remote"):
        with pytest.raises(ValueError, match=f"runtime name '{name}' is taken"):
            register_runtime(RuntimeInfo(name, toy.artifact_kinds, "numpy", (), "m:f"))
    with pytest.raises(ValueError, match="write it as 'module:callable'"):
        RuntimeInfo("other", toy.artifact_kinds, "numpy", (), "no_colon")


def test_bench_measures_a_runtime_named_in_the_environment(toy_in_environment, weights, tmp_path):
    assert "toy" in RUNTIMES  # this process reads the variable too
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(tmp_path / "w.npy"),
        "--runtime",
        "toy",
        "--profile",
        "host",
        "--threads",
        "1",
        "--scenario",
        "single-stream",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (record,) = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert record["status"] == "ok", record["error"]
    assert record["runtime_info"]["runtime"] == "toy"  # opened in the worker, by the toy
    assert record["metrics"]["latency_p50_ms"]["value"] > 0


def test_a_runtime_path_that_does_not_import_is_one_usage_line(monkeypatch, tmp_path):
    monkeypatch.setenv(RUNTIMES_ENV, "no_such_module:TOY")
    proc = run_cli("bench", str(DATA / "mlp_f32.tflite"), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("accelbench: error: $ACCELBENCH_RUNTIMES entry 'no_such_module")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()
