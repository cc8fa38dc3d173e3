"""The CLI as a user meets it: bench writes a run folder; every bad input exits 2 with one line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, run_cli

from accelbench.hardware_profiles import load_profile
from accelbench.hardware_profiles.projection import projection_record
from accelbench.runtimes.tflite_cost import analyze_tflite


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("accelbench: error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_starts_without_frameworks() -> None:
    code = (
        "import sys, accelbench.cli as c\n"
        "try:\n    c.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = ('tensorflow', 'jax', 'pandas', 'ai_edge_litert', 'numpy', 'starlette',\n"
        "         'aiohttp', 'pydantic')\n"
        "bad = [m for m in heavy if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "bench" in proc.stdout


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "run"
    proc = run_cli(
        "bench",
        str(DATA / "mlp_f32.tflite"),
        "--profile",
        "host,rpi4",
        "--threads",
        "1",
        "--scenario",
        "single-stream,offline",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "p50 ms" in proc.stdout and "rpi4 (emulated)" in proc.stdout
    return out


def test_bench_writes_records_table_and_summary(bench_run: Path) -> None:
    lines = (bench_run / "records.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4  # 2 profiles x 1 thread count x 2 scenarios
    # fmt: skip below: 16 names packed as a paragraph, not one per line.
    required = {
        "schema_version", "run_id", "cell_id", "status", "error", "model", "optimization",
        "profile", "execution", "scenario", "runtime", "threads", "settings", "environment",
        "artifact", "metrics",
    }  # fmt: skip
    for r in records:
        assert required <= set(r), required - set(r)
        assert r["status"] == "ok", r["error"]
        assert (
            r["artifact"]["sha256"]
            and r["artifact"]["bytes"] == (DATA / "mlp_f32.tflite").stat().st_size
        )
        m = r["metrics"]
        for name in (
            "latency_p50_ms",
            "latency_p99_ms",
            "qps",
            "load_ms",
            "first_inference_ms",
            "peak_rss_mb",
            "model_bytes",
        ):
            assert set(m[name]) == {"value", "unit", "direction"}, name
            assert m[name]["value"] > 0, name
        assert m["latency_p50_ms"]["direction"] == "lower" and m["qps"]["direction"] == "higher"
        assert m["latency_p50_ms"]["value"] <= m["latency_p99_ms"]["value"]
        assert len(r["raw_latencies_ms"]) > 10
    by_profile = {r["profile"]: r for r in records}
    assert by_profile["host"]["execution"] == "local"
    rpi = by_profile["rpi4"]
    assert rpi["execution"] == "emulated"
    assert rpi["emulation"]["cpu_affinity"] == [rpi["emulation"]["cpu_affinity"][0]]
    assert rpi["metrics"]["projected_latency_ms"]["value"] > 0
    # The device's figure is the per-op projection from the rpi4 profile alone: no figure of
    # this host (its measured p50 included) enters it, and it carries its band.
    expected = projection_record(analyze_tflite(DATA / "mlp_f32.tflite"), load_profile("rpi4"))
    assert rpi["projection"]["projected_latency_ms"] == pytest.approx(
        expected["projected_latency_ms"]
    )
    assert rpi["projection"]["band"]["rests_on"].startswith("checked on 2 published rows")
    assert "no figure of this host" in rpi["projection"]["method"]


def test_derived_files_and_results_show(bench_run: Path) -> None:
    import pandas as pd

    frame = pd.read_parquet(bench_run / "results.parquet")
    assert len(frame) == 4 and "latency_p50_ms" in frame.columns
    summary = (bench_run / "summary.md").read_text()
    assert "rpi4 (emulated)" in summary and "| model |" in summary
    proc = run_cli("results", "show", str(bench_run))
    assert proc.returncode == 0 and "rpi4 (emulated)" in proc.stdout


def test_resume_runs_only_missing_cells(bench_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(bench_run, copy)
    lines = (copy / "records.jsonl").read_text().splitlines()
    (copy / "records.jsonl").write_text("\n".join(lines[:3]) + "\n")
    proc = run_cli("bench", "--resume", str(copy), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in (copy / "records.jsonl").read_text().splitlines()]
    assert len(records) == 4
    assert len({r["cell_id"] for r in records}) == 4
    assert records[:3] == [json.loads(x) for x in lines[:3]]  # finished records untouched


def test_existing_run_folder_is_never_overwritten(bench_run: Path) -> None:
    before = (bench_run / "records.jsonl").read_bytes()
    proc = run_cli("bench", str(DATA / "mlp_f32.tflite"), "--out", str(bench_run))
    _one_line_error(proc, "already exists", "--resume")
    assert (bench_run / "records.jsonl").read_bytes() == before


def _bad_files(tmp: Path) -> dict[str, Path]:
    good = (DATA / "mlp_f32.tflite").read_bytes()
    files = {
        "text": tmp / "notes.tflite",
        "truncated": tmp / "truncated.tflite",
        "empty": tmp / "empty.tflite",
    }
    files["text"].write_text("this is not a model\n" * 20)
    files["truncated"].write_bytes(good[: len(good) // 3])
    files["empty"].write_bytes(b"")
    return files


@pytest.mark.parametrize(
    ("case", "needles"),
    [
        ("missing", ("does not exist",)),
        ("text", ("not a TFLite",)),
        ("truncated", ("truncated",)),
        ("empty", ("empty",)),
    ],
)
def test_bad_model_file(tmp_path: Path, case: str, needles: tuple[str, ...]) -> None:
    path = tmp_path / "missing.tflite" if case == "missing" else _bad_files(tmp_path)[case]
    out = tmp_path / "out"
    proc = run_cli("bench", str(path), "--out", str(out))
    _one_line_error(proc, *needles)
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (("--profile", "nosuchdevice"), ("nosuchdevice", "rpi4")),
        (("--threads", "two"), ("threads",)),
        (("--threads", "0"), ("threads",)),
        (("--scenario", "burst"), ("burst", "single-stream")),
        (("--preset", "fastest"), ("fastest", "quick")),
        (("--runtime", "onnx"), ("onnx", "litert")),
        (("--timeout", "-1"), ("timeout",)),
        (("--frobnicate",), ("frobnicate",)),
        # mlp_f32.tflite's batch dimension is fixed to 1.
        (("--batch-size", "8", "--scenario", "offline"), ("mlp_f32.tflite", "fixed to 1")),
        (("--batch-size", "8"), ("batch_size", "offline and server")),
        (("--batch-size", "0", "--scenario", "server"), ("batch_size", "positive integer")),
        (("--batch-size", "many"), ("--batch-size", "many")),
    ],
)
def test_bad_flag_values(tmp_path: Path, flags: tuple[str, ...], needles: tuple[str, ...]) -> None:
    out = tmp_path / "out"
    proc = run_cli("bench", str(DATA / "mlp_f32.tflite"), *flags, "--out", str(out))
    _one_line_error(proc, *needles)
    assert not out.exists()


def test_malformed_profile_file(tmp_path: Path) -> None:
    bad = tmp_path / "mydev.yaml"
    bad.write_text("name: mydev\nkind: gpux\ncores: 4\n")
    out = tmp_path / "out"
    proc = run_cli("bench", str(DATA / "mlp_f32.tflite"), "--profile", str(bad), "--out", str(out))
    _one_line_error(proc, "mydev.yaml", "kind")
    assert not out.exists()
    bad.write_text("name: [unclosed\n")
    proc = run_cli("bench", str(DATA / "mlp_f32.tflite"), "--profile", str(bad), "--out", str(out))
    _one_line_error(proc, "mydev.yaml")


def test_bad_suite_file(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("models:\n  - path: model.tflite\nscenarios: [warp]\n")
    proc = run_cli("run", str(suite))
    _one_line_error(proc, "scenarios", "warp")
    suite.write_text("modles: []\n")
    proc = run_cli("run", str(suite))
    _one_line_error(proc, "modles")


def test_results_show_on_missing_folder(tmp_path: Path) -> None:
    proc = run_cli("results", "show", str(tmp_path / "nope"))
    _one_line_error(proc, "does not exist")


def test_projected_and_refused_profiles(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(DATA / "cnn_int8.tflite"),
        "--profile",
        "host,coral-edgetpu,nvidia-t4",
        "--threads",
        "1,2",
        "--scenario",
        "single-stream,offline",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    projected = [r for r in records if r["execution"] == "projected"]
    # One projection per device, never a measured figure for hardware that was not used.
    assert sorted(r["profile"] for r in projected) == ["coral-edgetpu", "nvidia-t4"]
    for r in projected:
        assert r["status"] == "ok"
        assert r["metrics"]["projected_latency_ms"]["value"] > 0
        assert not any(name.startswith("latency_") or name == "qps" for name in r["metrics"])
        # The per-op projection of the profile alone, whatever this host measured, with its band.
        expected = projection_record(
            analyze_tflite(DATA / "cnn_int8.tflite"), load_profile(r["profile"])
        )
        assert r["projection"]["projected_latency_ms"] == pytest.approx(
            expected["projected_latency_ms"]
        )
        assert r["projection"]["band"]["low_ms"] < expected["projected_latency_ms"]
        assert "host_measured_ms" not in r["settings"]
        # The printed table gives the band beside the projected figure.
        band = r["projection"]["band"]
        assert f"[{band['low_ms']:.3g}–{band['high_ms']:.3g}]" in proc.stdout, proc.stdout
    float_run = run_cli(
        "bench",
        str(DATA / "cnn_f32.tflite"),
        "--profile",
        "coral-edgetpu",
        "--out",
        str(tmp_path / "f32"),
        "--no-progress",
    )
    (refused,) = [json.loads(x) for x in (tmp_path / "f32/records.jsonl").read_text().splitlines()]
    assert float_run.returncode == 0
    assert refused["status"] == "skipped" and "int8" in refused["error"]


def test_profiles_commands(tmp_path: Path) -> None:
    listed = run_cli("profiles", "list")
    assert listed.returncode == 0
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    for name in (
        "host",
        "x86-server",
        "rpi4",
        "rpi5",
        "jetson-orin-nano",
        "coral-edgetpu",
        "nvidia-t4",
        "nvidia-l4",
        "nvidia-a100",
        "nvidia-h100",
        "tpu-v5e",
    ):
        assert name in names, name
    shown = run_cli("profiles", "show", "coral-edgetpu")
    assert shown.returncode == 0 and "int8" in shown.stdout and "sources" in shown.stdout
    own = tmp_path / "board.yaml"
    own.write_text(shown.stdout.replace("name: coral-edgetpu", "name: my-board"))
    valid = run_cli("profiles", "validate", str(own))
    assert valid.returncode == 0 and "my-board" in valid.stdout
    detected = run_cli("profiles", "detect")
    assert detected.returncode == 0 and "name: host" in detected.stdout
    _one_line_error(run_cli("profiles", "show", "nosuch"), "nosuch")
    _one_line_error(run_cli("profiles", "validate", str(tmp_path / "none.yaml")), "none.yaml")


def test_profiles_calibrate_measures_and_caches(tmp_path: Path) -> None:
    env = {"ACCELBENCH_CACHE_DIR": str(tmp_path)}
    proc = run_cli("profiles", "calibrate", "--seconds", "1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "fp32_gflops" in proc.stdout and "memory_bandwidth_gbps" in proc.stdout
    assert list(tmp_path.glob("calibration*.json"))
    detected = run_cli("profiles", "detect", env=env)
    assert "fp32:" in detected.stdout  # the calibrated peak now fills the host profile


def test_compare_cli(bench_run: Path, tmp_path: Path) -> None:
    same = run_cli("compare", str(bench_run), str(bench_run), "--format", "markdown")
    assert same.returncode == 0, same.stderr
    assert "0 regressed" in same.stdout
    # A copy whose records claim a bigger artifact: size is exact, one byte is a regression.
    worse = tmp_path / "worse"
    shutil.copytree(bench_run, worse)
    lines = []
    for line in (worse / "records.jsonl").read_text().splitlines():
        record = json.loads(line)
        record["metrics"]["model_bytes"]["value"] += 1
        lines.append(json.dumps(record))
    (worse / "records.jsonl").write_text("\n".join(lines) + "\n")
    regressed = run_cli("compare", str(bench_run), str(worse))
    assert regressed.returncode == 1 and "model_bytes" in regressed.stdout
    _one_line_error(run_cli("compare", str(bench_run), str(tmp_path / "none")), "does not exist")
