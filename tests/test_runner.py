"""Worker isolation: a crash, a kill, an exception or a hang fails one cell; the sweep goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import DATA, run_cli, workers_of


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "records.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("segv", "SIGSEGV"),
        ("kill", "SIGKILL"),
        ("raise", "RuntimeError: injected fault"),
    ],
)
def test_a_dying_worker_fails_only_its_cell(tmp_path: Path, fault: str, reason: str) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(DATA / "mlp_f32.tflite"),
        "--scenario",
        "single-stream,offline",
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
        env={"ACCELBENCH_WORKER_FAULT": f"{fault}:offline"},
    )
    assert proc.returncode == 1, proc.stderr  # a failed cell makes bench exit 1
    by_scenario = {r["scenario"]: r for r in _records(out)}
    assert by_scenario["single-stream"]["status"] == "ok"
    failed = by_scenario["offline"]
    assert failed["status"] == "failed" and reason in failed["error"], failed["error"]


def test_a_hanging_worker_times_out_and_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(DATA / "mlp_f32.tflite"),
        "--threads",
        "1",
        "--timeout",
        "4",
        "--out",
        str(out),
        "--no-progress",
        env={"ACCELBENCH_WORKER_FAULT": "hang"},
    )
    assert proc.returncode == 1
    (record,) = _records(out)
    assert record["status"] == "failed" and "timed out after 4 s" in record["error"]
    assert not workers_of(out)


def test_ctrl_c_keeps_finished_records_and_resume_completes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "accelbench.cli",
        "bench",
        str(DATA / "mlp_f32.tflite"),
        "--threads",
        "1",
        "--scenario",
        "single-stream,offline,multi-stream",
        "--out",
        str(out),
        "--no-progress",
    ]
    # The last scenario hangs so that the interrupt surely lands while a worker is running.
    env = {**os.environ, "ACCELBENCH_WORKER_FAULT": "hang:multi-stream"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline:
        if (out / "records.jsonl").exists() and len(_records(out)) == 2 and workers_of(out):
            break
        time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("the first two cells did not finish in time")
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    assert len(_records(out)) == 2
    assert not workers_of(out)
    resumed = run_cli("bench", "--resume", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    records = _records(out)
    assert sorted(r["scenario"] for r in records) == ["multi-stream", "offline", "single-stream"]


def test_emulated_memory_cap_fails_the_cell_with_the_reason(tmp_path: Path) -> None:
    profile = tmp_path / "tiny.yaml"
    profile.write_text(
        "name: tiny-board\nkind: edge-cpu\nvendor: Example\nmodel: 64 MB board\ncores: 1\n"
        "memory_gb: 0.0625\npeak_compute: {fp32: 0.001}\nmemory_bandwidth_gbps: 0.5\n"
        "tdp_watts: 1\nsupported_precisions: [fp32]\nruntimes: [litert]\nexecution: emulated\n"
        "emulation: {threads: 1, memory_mb: 64}\n"
    )
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(DATA / "cnn_f32.tflite"),
        "--profile",
        f"host,{profile}",
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 1
    by_profile = {r["profile"]: r for r in _records(out)}
    assert by_profile["host"]["status"] == "ok"
    capped = by_profile["tiny-board"]
    assert capped["status"] == "failed"
    assert "64 MB memory cap" in capped["error"], capped["error"]
