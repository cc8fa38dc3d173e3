"""Cells of one worker environment share a worker; a cell that kills, breaks or hangs it fails
alone, and the cells after it run on a new worker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import DATA, run_cli, workers_of

SCENARIOS = "single-stream,offline,multi-stream"


def _bench(out: Path, fault: str, *extra: str):
    return run_cli(
        "bench",
        str(DATA / "mlp_f32.tflite"),
        "--scenario",
        SCENARIOS,
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
        *extra,
        env={"ACCELBENCH_WORKER_FAULT": fault},
    )


def _by_scenario(run_dir: Path) -> dict[str, dict]:
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return {r["scenario"]: r for r in map(json.loads, lines)}


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("segv", "worker crashed with SIGSEGV"),
        ("kill", "worker killed by SIGKILL, most likely out of memory"),
        ("raise", "RuntimeError: injected fault"),
    ],
)
def test_the_middle_cell_of_a_shared_worker_fails_alone(
    tmp_path: Path, fault: str, reason: str
) -> None:
    out = tmp_path / "run"
    proc = _bench(out, f"{fault}:offline")
    assert proc.returncode == 1, proc.stderr  # a failed cell makes bench exit 1
    cells = _by_scenario(out)
    first, middle, last = cells["single-stream"], cells["offline"], cells["multi-stream"]
    assert first["status"] == "ok" and last["status"] == "ok", (first["error"], last["error"])
    assert middle["status"] == "failed" and reason in middle["error"], middle["error"]
    # The first two cells on one worker, the third on a new one.
    assert first["worker"] == {"id": first["worker"]["id"], "earlier_cells": 0}
    assert middle["worker"] == {"id": first["worker"]["id"], "earlier_cells": 1}
    assert last["worker"]["id"] != first["worker"]["id"] and last["worker"]["earlier_cells"] == 0
    # Each cell's output in its own log.
    logs = {name: Path(r["log"]).read_text() for name, r in cells.items()}
    if fault == "raise":
        assert "injected fault" in logs["offline"]
        assert "injected fault" not in logs["single-stream"] + logs["multi-stream"]
    assert not workers_of(out)


def test_a_hanging_cell_on_a_shared_worker_times_out_alone(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # The whole timeout is waited out: short, yet well above a healthy cell's few seconds.
    proc = _bench(out, "hang:offline", "--timeout", "8")
    assert proc.returncode == 1, proc.stderr
    cells = _by_scenario(out)
    hung = cells["offline"]
    assert hung["status"] == "failed" and hung["error"] == "timed out after 8 s"
    assert 8 <= hung["wall_s"] < 18
    assert hung["worker"]["earlier_cells"] == 1
    assert cells["single-stream"]["status"] == "ok" and cells["multi-stream"]["status"] == "ok"
    assert cells["multi-stream"]["worker"]["id"] != hung["worker"]["id"]
    assert not workers_of(out)


def test_cells_of_other_thread_counts_get_workers_of_their_own(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(DATA / "mlp_f32.tflite"),
        "--scenario",
        "single-stream,offline",
        "--threads",
        "1,2",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    workers: dict[int, set[int]] = {}
    for r in records:
        assert r["status"] == "ok", r["error"]
        workers.setdefault(r["threads"], set()).add(r["worker"]["id"])
    # One worker per thread count, none shared between them.
    assert all(len(ids) == 1 for ids in workers.values()) and len(workers) == 2
    assert not set.intersection(*workers.values())
