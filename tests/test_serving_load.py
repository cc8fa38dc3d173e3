"""Load-testing HTTP endpoints: the LoadGen HTTP SUT, `accelbench load`, the serving scenario."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from accelbench.benchmarks.serving import endpoint_samples, run_endpoint
from accelbench.cli import main
from accelbench.records import read_records
from accelbench.runtimes.remote import open_remote
from accelbench.serving import LISTENING_PREFIX

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).parent / "data"
SCRIPT = REPO / "scripts" / "bench_serving.py"


def _start(command: list[str]) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=REPO
    )
    line = proc.stdout.readline()
    assert line.startswith(LISTENING_PREFIX), line
    return proc, line.removeprefix(LISTENING_PREFIX).strip()


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def trivial_url():
    """The trivial Starlette endpoint of scripts/bench_serving.py: echo, overloaded, flaky."""
    proc, url = _start([sys.executable, str(SCRIPT), "trivial-endpoint"])
    yield url
    _stop(proc)


@pytest.fixture(scope="module")
def served_cnn(tmp_path_factory):
    """accelbench's own server on a small .tflite (a private copy, to find its process by path)."""
    model = tmp_path_factory.mktemp("served") / "cnn.tflite"
    shutil.copy(DATA / "cnn_f32.tflite", model)
    proc, url = _start(
        [
            sys.executable,
            "-m",
            "accelbench.cli.serve_subprocess",
            str(model),
            "--name",
            "cnn",
            "--port",
            "0",
        ]
    )
    yield url
    _stop(proc)


@pytest.mark.parametrize(
    ("scenario", "target_qps"), [("single-stream", None), ("offline", 200.0), ("server", 300.0)]
)
def test_http_sut_completes_every_loadgen_query(trivial_url, tmp_path, scenario, target_qps):
    runtime = open_remote(trivial_url, "echo")
    try:
        samples = endpoint_samples(runtime, None, seed=0)
        # A generous bound: this checks the plumbing, not the endpoint's speed on a busy host.
        bound = 1000.0 if scenario == "server" else None
        run = run_endpoint(
            runtime,
            samples,
            scenario,
            "quick",
            tmp_path,
            target_qps=target_qps,
            latency_bound_ms=bound,
        )
    finally:
        runtime.close()
    loadgen_samples = run.scenario.metrics["sample_count"]["value"]
    calibration = (run.scenario.settings["calibration"] or {}).get("single_stream_query_count", 0)
    # Every sample LoadGen issued (its calibration run's too) went out and came back answered.
    assert loadgen_samples >= 64
    assert run.requests["requests"] == loadgen_samples + calibration
    assert run.requests["ok"] == run.requests["requests"]
    assert run.requests["errors"] == 0
    # Offline's expected QPS is set low to keep the test short, so its run may end before
    # LoadGen's minimum duration; nothing else may make a run INVALID.
    failed = [name for name, ok in run.scenario.criteria.items() if not ok]
    assert failed in ([], ["min_duration_satisfied"] if scenario == "offline" else [])
    assert run.result()["status"] == ("ok" if not failed else "invalid")
    assert run.scenario.settings["sut"]["asynchronous"] is True


def test_http_errors_are_counted_and_fail_or_invalidate_the_result(trivial_url, tmp_path):
    results = {}
    for model in ("flaky", "overloaded"):
        runtime = open_remote(trivial_url, model)
        try:
            samples = endpoint_samples(runtime, None, seed=0)
            run = run_endpoint(
                runtime, samples, "server", "quick", tmp_path / model, target_qps=400.0
            )
        finally:
            runtime.close()
        results[model] = (run.requests, run.result())
    flaky_counts, flaky = results["flaky"]
    # Every second request answers 503: half of them are errors, and the run is not a clean one.
    assert flaky_counts["http_errors"]["503"] == flaky_counts["requests"] // 2
    assert flaky["status"] == "invalid" and "503" in flaky["error"]
    assert flaky["metrics"]["request_errors"]["value"] == flaky_counts["errors"]
    over_counts, over = results["overloaded"]
    assert over_counts["http_429"] == over_counts["requests"] > 0
    assert over["status"] == "failed"
    assert "every request failed" in over["error"] and "429" in over["error"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_load_refuses_unreachable_url_and_unknown_model(trivial_url, tmp_path, capsys):
    out = tmp_path / "run"
    url = f"http://127.0.0.1:{_free_port()}"
    assert main(["load", url, "--model", "echo", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("accelbench: error: nothing answers at")
    assert main(["load", trivial_url, "--model", "nope", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not serve model 'nope'" in err[0] and "404" in err[0]
    assert main(["load", trivial_url, "--model", "echo", "--scenario", "multi-stream"]) == 2
    assert "cannot load an endpoint" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_load_refuses_a_model_name_that_is_a_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default results/ folder would appear
    url = f"http://127.0.0.1:{_free_port()}"
    for name in ("../evil", str(tmp_path / "evil"), ".hidden"):  # relative, absolute, hidden
        assert main(["load", url, "--model", name]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("accelbench: error: --model"), err
        assert repr(name) in err[0] and "letters, digits" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_load_cli_finds_the_peak_of_accelbench_server(served_cnn, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "load",
            served_cnn,
            "--model",
            "cnn",
            "--find-peak",
            "--latency-bound-ms",
            "1000",
            "--target-qps",
            "400",
            "--curve-points",
            "2",
            "--search-steps",
            "1",
            "--out",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    [record] = read_records(out)
    assert record["execution"] == "remote" and record["profile"] == "remote"
    assert record["settings"]["url"] == served_cnn
    assert record["settings"]["server"]["settings"]["model"] == "cnn"  # from /v1/accelbench/stats
    assert record["settings"]["mode"] == "online"
    peak = record["metrics"]["server_peak_qps"]
    assert peak["unit"] == "qps" and peak["direction"] == "higher" and peak["value"] > 0
    curve = record["settings"]["curve"]
    # 2 curve points, 1 bisection, then the peak's target once more (confirmed: bound 1000 ms)
    assert len(curve) == 4 and all(p["errors"] == 0 for p in curve)
    assert peak["value"] == max(p["target_qps"] for p in curve if p["meets_bound"])
    assert record["settings"]["peak_confirmed"] is True
    assert [p["target_qps"] for p in curve].count(peak["value"]) == 2
    assert {200, 400} <= {p["target_qps"] for p in curve}  # the curve up to --target-qps
    assert record["metrics"]["latency_p99_ms"]["value"] <= 1000
    assert "server peak (p99 <= 1000 ms)" in printed and "met the bound again" in printed
    assert (out / "results.parquet").is_file() and (out / "summary.md").is_file()


def _servers_of(path: Path) -> list[int]:
    """Live processes whose command line names path (the served model's private copy)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(") ")[-1][:1]
        except OSError:
            continue
        if str(path) in cmdline and state != "Z":
            pids.append(int(entry.name))
    return pids


def _suite(tmp_path: Path, model: Path, timeout_s: float) -> Path:
    suite = {
        "name": "serving-test",
        "models": [{"path": str(model), "name": "cnn"}],
        "profiles": ["host"],
        "threads": [1],
        "scenarios": ["serving"],
        "preset": "quick",
        "timeout_s": timeout_s,
        # A bound no healthy run misses, even on a busy host; the curve's top given, to be short.
        "serving": {
            "curve_points": 1,
            "search_steps": 1,
            "latency_bound_ms": 1000,
            "max_qps": 400,
        },
    }
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    return path


def test_serving_suite_scenario_measures_every_mode_and_leaves_no_server(tmp_path):
    model = tmp_path / "suite_model.tflite"
    shutil.copy(DATA / "cnn_f32.tflite", model)
    out = tmp_path / "run"
    assert main(["run", str(_suite(tmp_path, model, 300)), "--out", str(out), "--no-progress"]) == 0
    records = read_records(out)
    by_mode = {r["settings"]["mode"]: r for r in records}
    assert sorted(by_mode) == ["batching", "cache", "online"]
    for mode, record in by_mode.items():
        assert record["status"] == "ok", record["error"]
        assert record["cell_id"].endswith("." + mode) and record["scenario"] == "serving"
        curve = record["settings"]["curve"]
        # 1 curve point, 1 bisection above it, the peak's target once more
        assert len(curve) == 3 and 400 in {p["target_qps"] for p in curve}
        assert record["settings"]["peak_confirmed"] is True
        peak = max(p["target_qps"] for p in curve if p["meets_bound"])
        assert record["metrics"]["server_peak_qps"]["value"] == peak
        server = record["settings"]["server"]
        assert server["requests"] >= record["settings"]["curve"][0]["requests"]
    assert by_mode["batching"]["settings"]["serving_mode"]["max_batch_size"] == 32
    assert by_mode["batching"]["settings"]["server"]["settings"]["batching"]
    assert by_mode["cache"]["settings"]["server"]["cache"]["hits"] > 0
    assert by_mode["online"]["settings"]["server"]["cache"]["hits"] == 0
    assert _servers_of(model) == []

    from accelbench.report.serving import serving_html, serving_markdown

    markdown = serving_markdown(records)
    assert "For a p99 bound of 1000 ms: pick " in markdown
    assert all(mode in markdown for mode in by_mode)
    html = serving_html(records)
    assert 'src="data:image/png;base64,iVBOR' in html  # an embedded PNG
    assert serving_markdown([]) == "" and serving_html([]) == ""


@pytest.mark.slow
def test_serving_cell_killed_by_its_timeout_leaves_no_server(tmp_path):
    model = tmp_path / "timeout_model.tflite"
    shutil.copy(DATA / "cnn_f32.tflite", model)
    out = tmp_path / "run"
    started = time.time()
    code = main(["run", str(_suite(tmp_path, model, 6)), "--out", str(out), "--no-progress"])
    assert code == 1
    assert time.time() - started < 60
    assert {r["status"] for r in read_records(out)} == {"failed"}
    assert "timed out" in read_records(out)[0]["error"]
    assert list(out.glob("cells/*/online/server.log"))  # a server had started when it was killed
    deadline = time.time() + 5
    while _servers_of(model) and time.time() < deadline:
        time.sleep(0.1)  # the kernel delivers the parent-death signal at once; give it a moment
    assert _servers_of(model) == []


def test_serving_suite_options_are_checked_before_anything_runs(tmp_path, capsys):
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        json.dumps(
            {
                "models": [{"path": str(DATA / "cnn_f32.tflite")}],
                "scenarios": ["serving"],
                "serving": {"modes": ["online", "fast"]},
            }
        )
    )
    out = tmp_path / "run"
    assert main(["run", str(suite), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "serving" in err[0] and "unknown mode 'fast'" in err[0]
    assert not out.exists()
