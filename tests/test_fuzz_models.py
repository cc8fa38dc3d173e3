"""Damaged .tflite files through `accelbench bench`: no traceback on the terminal, no hang."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest
from conftest import DATA, REPO


@pytest.fixture(scope="module")
def fuzz_models():
    spec = importlib.util.spec_from_file_location(
        "fuzz_models", REPO / "scripts" / "fuzz_models.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    spec.loader.exec_module(module)
    return module


def test_mutations_damage_the_file_and_are_reproducible(fuzz_models) -> None:
    data = (DATA / "mlp_f32.tflite").read_bytes()
    for mutation in fuzz_models.MUTATIONS:
        for seed in range(20):
            mutant, detail = fuzz_models.mutate(data, mutation, random.Random(seed))
            assert mutant != data, (mutation, detail)
            assert fuzz_models.mutate(data, mutation, random.Random(seed)) == (mutant, detail)
            if mutation == "truncate":
                assert len(mutant) < len(data)
            if mutation == "identifier":
                assert mutant[4:8] != b"TFL3"
            if mutation == "header":
                assert mutant[8:] == data[8:]


def test_twenty_mutants_no_terminal_traceback_and_no_hang(fuzz_models) -> None:
    # Seed 21 includes a flipped byte in a tensor name, which once failed in the worker.
    report = fuzz_models.fuzz(20, seed=21)
    assert len(report.outcomes) == 20
    assert not report.terminal_tracebacks, report.summary()
    assert not report.hangs, report.summary()
    assert report.worker_log_tracebacks == 0, report.summary()
    # Both paths were taken: mutants refused by validation, and mutants benchmarked.
    assert report.exit_statuses[2] and report.exit_statuses[0] + report.exit_statuses[1]


def test_a_traceback_on_the_terminal_is_counted(fuzz_models, tmp_path: Path) -> None:
    # Not a .tflite at all: a Python file that fails the way an unhandled error would.
    crash = tmp_path / "crash.py"
    crash.write_text("raise RuntimeError('not handled')\n")
    status, output, logs = fuzz_models.run_command(
        [sys.executable, str(crash)], tmp_path, tmp_path / "run", hang_after_s=60
    )
    assert status == 1 and "Traceback" in output and logs == []
    status, _, _ = fuzz_models.run_command(
        [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path, tmp_path / "run", 1
    )
    assert status is None  # a hang


# Mutants the fuzzer found: a flipped byte in a tensor name passed the interpreter's load, then
# failed in the benchmark's worker (a UnicodeDecodeError traceback in its log, exit 1).
FOUND = [
    ("dynamic_batch_f32.tflite", "byte-flip", 3361672518),
    ("embed_int32.tflite", "byte-flip", 1250760152),
    ("cnn_int8.tflite", "byte-flip", 3726124871),
]


@pytest.mark.parametrize(("source", "mutation", "seed"), FOUND)
def test_found_mutants_are_refused_before_the_run(
    fuzz_models, tmp_path: Path, source: str, mutation: str, seed: int
) -> None:
    data = (DATA / source).read_bytes()
    mutant, _ = fuzz_models.mutate(data, mutation, random.Random(seed))
    model = tmp_path / source
    model.write_bytes(mutant)
    out = tmp_path / "run"
    command = fuzz_models.bench_command(model, out)
    status, output, logs = fuzz_models.run_command(command, tmp_path, out)
    assert status == 2, output
    assert "is not UTF-8 text" in output and "Traceback" not in output
    assert not out.exists() and logs == []
