"""A run folder survives kills and misuse: torn lines, lost records, half-recorded cells, two
writers at once, corrupt files, and derived files written beside each other."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import DATA, run_cli

from accelbench.records import append_record, metric

BENCH = [
    "bench",
    str(DATA / "mlp_f32.tflite"),
    "--profile",
    "host",
    "--threads",
    "1",
    "--scenario",
    "single-stream,offline",
    "--preset",
    "quick",
    "--no-progress",
]


def _lines(run_dir: Path) -> list[str]:
    return (run_dir / "records.jsonl").read_text().splitlines()


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in _lines(run_dir)]


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("accelbench: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> Path:
    """A finished two-cell run; each test works on its own copy."""
    out = tmp_path_factory.mktemp("bench") / "run"
    proc = run_cli(*BENCH, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert len(_lines(out)) == 2
    return out


@pytest.fixture
def run_copy(bench_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(bench_run, tmp_path / "run"))


def test_torn_last_line_is_kept_aside_and_its_cell_reruns(run_copy: Path) -> None:
    lines = _lines(run_copy)
    cells = {json.loads(line)["cell_id"] for line in lines}
    fragment = lines[1][: len(lines[1]) // 2]  # a writer killed mid-line: no newline
    (run_copy / "records.jsonl").write_text(lines[0] + "\n" + fragment)

    resumed = run_cli("bench", "--resume", str(run_copy), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert "torn" in resumed.stderr
    records = _records(run_copy)
    assert len(records) == 2 and {r["cell_id"] for r in records} == cells
    assert all(r["status"] == "ok" for r in records)
    (kept,) = run_copy.glob("records.jsonl.torn-*")
    assert kept.read_text() == fragment

    shown = run_cli("results", "show", str(run_copy))
    assert shown.returncode == 0, shown.stderr
    assert "single-stream" in shown.stdout and "offline" in shown.stdout

    before = (run_copy / "records.jsonl").read_bytes()
    again = run_cli("bench", "--resume", str(run_copy), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert (run_copy / "records.jsonl").read_bytes() == before  # nothing ran twice


def test_whole_last_record_without_its_newline_is_kept(run_copy: Path) -> None:
    lines = _lines(run_copy)
    (run_copy / "records.jsonl").write_text(lines[0] + "\n" + lines[1])  # only "\n" lost
    append_record(run_copy, {"cell_id": "extra", "metrics": {"x": metric(1, "s", "lower")}})
    assert _lines(run_copy) == [*lines, _lines(run_copy)[2]]
    assert not list(run_copy.glob("records.jsonl.torn-*"))


def test_resume_on_a_corrupt_suite_file_is_one_line(run_copy: Path) -> None:
    (run_copy / "suite.json").write_text('{"name": "cut sh')
    before = (run_copy / "records.jsonl").read_bytes()
    proc = run_cli("bench", "--resume", str(run_copy), "--no-progress")
    _one_line_error(proc, str(run_copy / "suite.json"), "corrupt", "new --out")
    assert (run_copy / "records.jsonl").read_bytes() == before


def test_resume_on_a_corrupt_record_line_is_one_line(run_copy: Path) -> None:
    lines = _lines(run_copy)
    (run_copy / "records.jsonl").write_text("{not json\n" + "\n".join(lines) + "\n")
    before = (run_copy / "records.jsonl").read_bytes()
    proc = run_cli("bench", "--resume", str(run_copy), "--no-progress")
    _one_line_error(proc, f"{run_copy / 'records.jsonl'}:1", "delete that line")
    assert (run_copy / "records.jsonl").read_bytes() == before


def _workers_running(run_dir: Path) -> bool:
    import psutil

    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "accelbench.runner.worker" in cmd and str(run_dir) in cmd:
            return True
    return False


def test_a_second_process_on_a_run_folder_is_refused_with_the_holder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "accelbench.cli", *BENCH, "--out", str(out)]
    env = {**os.environ, "ACCELBENCH_WORKER_FAULT": "hang:offline"}  # holds the folder
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 120
        while not ((out / "records.jsonl").is_file() and _workers_running(out)):
            assert time.time() < deadline, "the first cell did not finish in time"
            assert first.poll() is None, first.communicate()
            time.sleep(0.2)
        second = run_cli("bench", "--resume", str(out), "--no-progress")
        line = _one_line_error(second, str(out), f"pid {first.pid}", "since", "in use")
        assert "bench" in line
        assert len(_lines(out)) == 1  # the second process wrote nothing
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=60)
    assert first.returncode == 130
    # The holder gone, its lock is too.
    done = run_cli("bench", "--resume", str(out), "--no-progress")
    assert done.returncode == 0, done.stderr
    assert sorted(r["scenario"] for r in _records(out)) == ["offline", "single-stream"]


def test_a_cell_cut_short_between_its_configurations_reruns_the_missing_ones(
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "input-pipeline",
        "breast_cancer_mlp",
        "--formats",
        "csv",
        "--pipelines",
        "naive,best",
        "--examples",
        "32",
        "--min-seconds",
        "0.01",
        "--no-check-training",
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    lines = _lines(out)
    cells = [json.loads(line)["cell_id"] for line in lines]
    assert len(cells) == 2 and all(c.endswith((".csv.naive", ".csv.best")) for c in cells)
    # Killed after appending the first configuration's record, before the second's.
    (out / "records.jsonl").write_text(lines[0] + "\n")

    resumed = run_cli("run", "--resume", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    after = _lines(out)
    assert after[0] == lines[0]  # the recorded configuration is kept, not measured again
    assert [json.loads(line)["cell_id"] for line in after] == cells

    again = run_cli("run", "--resume", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert _lines(out) == after


def test_prepared_model_records_follow_their_marker(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "models": [{"name": "breast_cancer_mlp"}],
                "optimizations": ["fp32"],
                "profiles": ["host"],
                "threads": [1],
                "scenarios": ["single-stream"],
                "preset": "quick",
                "epochs": 1,
            }
        )
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(suite), "--out", str(out), "--no-progress", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = _lines(out)
    prepared = [ln for ln in lines if json.loads(ln)["scenario"] in ("training", "accuracy")]
    assert len(prepared) == 2
    marker = out / "artifacts" / "breast_cancer_mlp" / "prepared.json"
    log = out / "artifacts" / "breast_cancer_mlp" / "prepare.log"
    trained_at = log.stat().st_mtime_ns

    # The marker written, the preparation's records lost (a crash between the two):
    # resume appends them from the marker, without preparing again.
    (out / "records.jsonl").write_text("".join(ln + "\n" for ln in lines if ln not in prepared))
    resumed = run_cli("run", "--resume", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(_lines(out)) == sorted(lines)
    assert log.stat().st_mtime_ns == trained_at

    # The records there, the marker not (the crash after the records): prepared again,
    # no record twice.
    marker.unlink()
    again = run_cli("run", "--resume", str(out), "--no-progress", timeout=900)
    assert again.returncode == 0, again.stderr
    assert marker.is_file() and log.stat().st_mtime_ns != trained_at
    cell_ids = [r["cell_id"] for r in _records(out)]
    assert sorted(cell_ids) == sorted(json.loads(ln)["cell_id"] for ln in lines)


def test_results_table_writers_never_share_a_temporary_file(run_copy: Path) -> None:
    # Another writer's temporary file, as a fixed name would share it: never touched.
    other = run_copy / "results.parquet.tmp"
    other.write_text("another writer's")
    # Writers in processes of their own, at once (the figures' matplotlib is not thread-safe).
    code = (
        "import sys, pathlib, accelbench.report.run_outputs as outputs\n"
        "outputs.write_run_outputs(pathlib.Path(sys.argv[1]))"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", code, run_copy], stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    for writer in writers:
        _, stderr = writer.communicate(timeout=300)
        assert writer.returncode == 0, stderr
    assert other.read_text() == "another writer's"
    table = pd.read_parquet(run_copy / "results.parquet")
    assert sorted(table["scenario"]) == ["offline", "single-stream"]
    strays = [p.name for p in run_copy.iterdir() if ".tmp" in p.name and p != other]
    assert not strays, strays
