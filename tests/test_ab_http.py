"""`accelbench ab URL URL`: two HTTP endpoints timed against each other request by request, on
real servers on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, REPO, run_cli

from accelbench.serving import LISTENING_PREFIX

KEY = "s3cret-ab-key"
SCRIPT = REPO / "scripts" / "bench_serving.py"


@contextmanager
def _server(*args: str) -> Iterator[str]:
    """A server process on a free loopback port: `python -m accelbench.cli.serve_subprocess ARGS`
    or, with ARGS starting with a script, that script; yields its base URL, then stops it."""
    command = (
        list(args) if args[0].endswith(".py") else ["-m", "accelbench.cli.serve_subprocess", *args]
    )
    process = subprocess.Popen(
        [sys.executable, *command, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    try:
        line = process.stdout.readline()
        assert line.startswith(LISTENING_PREFIX), line
        yield line.removeprefix(LISTENING_PREFIX).strip()
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _served(*models: tuple[str, str], key_file: Path | None = None) -> tuple[ExitStack, list]:
    """accelbench's own server for each (model file, name), started together."""
    stack = ExitStack()
    key = ["--api-key-file", str(key_file)] if key_file else []
    urls = [stack.enter_context(_server(str(DATA / f), "--name", n, *key)) for f, n in models]
    return stack, urls


def _ab(out: Path, base: str, new: str, *extra: str) -> tuple[subprocess.CompletedProcess, list]:
    proc = run_cli(
        "ab", base, new, "--pairs", "60", "--rounds", "3", "--out", str(out), *extra, timeout=120
    )
    records_file = out / "records.jsonl"
    records = [json.loads(line) for line in records_file.open()] if records_file.exists() else []
    return proc, records


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_same_model_on_two_servers_is_not_a_regression_and_the_key_stays_out(tmp_path):
    key_file = tmp_path / "key"
    key_file.write_text(KEY + "\n")
    inputs = tmp_path / "inputs.npz"
    rows = np.random.default_rng(1).uniform(-1, 1, (8, 16, 16, 3)).astype(np.float32)
    np.savez(inputs, image=rows)
    served = (("cnn_f32.tflite", "cnn"), ("cnn_f32.tflite", "cnn"))
    stack, (url_a, url_b) = _served(*served, key_file=key_file)
    with stack:
        # Without the key both endpoints refuse: one line naming HTTP 401, nothing written.
        refused, _ = _ab(tmp_path / "no-key", url_a, url_b, "--model", "cnn")
        assert refused.returncode == 2, refused.stderr
        assert "HTTP 401" in refused.stderr and not (tmp_path / "no-key").exists()
        proc, records = _ab(
            tmp_path / "run",
            url_a,
            url_b,
            "--model",
            "cnn",
            "--api-key",
            KEY,
            "--inputs",
            str(inputs),
        )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (record,) = records
    assert record["status"] == "ok" and record["execution"] == "remote"
    assert record["profile"] == "remote" and record["runtime"] == "remote"
    assert record["scenario"] == "paired" and record["log"] is None
    assert record["settings"]["ab"]["base"]["url"] == url_a
    assert record["settings"]["ab"]["new"]["url"] == url_b
    assert record["settings"]["inputs"] == str(inputs)
    paired = record["paired"]
    assert paired["verdict"] != "regressed"
    assert paired["endpoints"] == {"base": url_a, "new": url_b}
    assert paired["samples"] == 8 and paired["pairs"] == 180 and len(paired["round_ratios"]) == 3
    assert len(paired["times_ms"]["base"]) == len(paired["times_ms"]["new"]) == 180
    # Each side went first in half the pairs of a round.
    assert sum(order[0] == 0 for order in paired["order"]) == 90
    assert 0.8 < paired["ratio"] < 1.25
    assert KEY not in (tmp_path / "run" / "records.jsonl").read_text()
    assert "remote" in proc.stdout and url_a in proc.stdout and url_b in proc.stdout


def test_more_convolutions_behind_an_endpoint_regress_and_fewer_improve(tmp_path):
    # conv24 runs 24 identical convolutions where conv2 runs two (about 0.4 ms more, on requests
    # of about 1.2 ms here); the names differ on purpose.
    served = (("conv2_f32.tflite", "conv2"), ("conv24_f32.tflite", "conv24"))
    stack, (conv2, conv24) = _served(*served)
    with stack:
        proc, (record,) = _ab(
            tmp_path / "run", conv2, conv24, "--base-model", "conv2", "--new-model", "conv24"
        )
        assert proc.returncode == 1, proc.stderr + proc.stdout
        assert record["paired"]["verdict"] == "regressed" and "regressed" in proc.stdout
        assert record["paired"]["ci_low"] > 1.15
        assert record["settings"]["ab"]["new"]["model"] == "conv24"

        swapped, (record,) = _ab(
            tmp_path / "swapped",
            conv24,
            conv2,
            "--base-model",
            "conv24",
            "--new-model",
            "conv2",
            "--format",
            "json",
        )
    assert swapped.returncode == 0, swapped.stderr + swapped.stdout
    (row,) = json.loads(swapped.stdout)["comparisons"]
    assert row["verdict"] == "improved" and row["base_p50_ms"] > row["new_p50_ms"]


def test_a_failing_endpoint_fails_the_comparison_with_its_reason(tmp_path):
    # The trivial endpoint's 'flaky' model answers every second predict with 503.
    with _server(str(SCRIPT), "trivial-endpoint") as url:
        proc, (record,) = _ab(
            tmp_path / "run", url, url, "--base-model", "echo", "--new-model", "flaky"
        )
    assert proc.returncode == 1, proc.stderr + proc.stdout
    assert record["status"] == "failed" and "HTTP 503" in record["error"]
    assert url in record["error"] and "failed" in proc.stdout


def _error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr + proc.stdout
    assert len(lines) == 1 and lines[0].startswith("accelbench: error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{url}", str(DATA / "cnn_f32.tflite"), "--model", "m"], "not an endpoint URL"),
        ([str(DATA / "cnn_f32.tflite"), "{url}", "--model", "m"], "not an endpoint URL"),
        (["{url}", "{url}"], "--model NAME"),
        (["{url}", "{url}", "--model", "m", "--threads", "1"], "--threads applies to model"),
        (["{url}", "{url}", "--model", "m", "--base-model", "m"], "--base-model and"),
        (["{url}", "{url}", "--model", "m"], "nothing answers at"),
        ([str(DATA / "cnn_f32.tflite")] * 2 + ["--model", "m"], "--model applies to two endpoint"),
    ],
)
def test_bad_endpoint_input_exits_2_and_writes_nothing(tmp_path, args, needle):
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    out = tmp_path / "run"
    proc = run_cli("ab", *[a.format(url=url) for a in args], "--out", str(out), timeout=60)
    assert needle in _error_line(proc)
    assert not out.exists()
