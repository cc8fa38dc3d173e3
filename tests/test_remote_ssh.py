"""Remote cells over SSH against a real OpenSSH server on loopback: the device is this machine."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import DATA, run_cli, unavailable
from loopback_sshd import LoopbackSshd, _descendants, find_sshd

MODEL = DATA / "conv24_f32.tflite"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    path = find_sshd()
    if path is None:
        unavailable(
            "sshd is not installed (apt-get install -y --no-install-recommends openssh-server)"
        )
    server = LoopbackSshd(tmp_path_factory.mktemp("sshd"), path).start()
    pid = server._proc.pid
    yield server
    server.stop()
    assert not Path(f"/proc/{pid}").exists() or _zombie(pid)
    assert not _descendants(pid)


def _zombie(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _profile(
    folder: Path, server: LoopbackSshd, name: str, *, python: str = sys.executable, **over
) -> Path:
    remote = {
        "transport": "ssh",
        "host": server.host,
        "identity_file": str(server.client_key),
        "known_hosts": str(server.known_hosts),
        "python": python,
        "folder": str(folder / "device"),
        **over.pop("remote", {}),
    }
    data = {
        "name": name,
        "kind": "cpu",
        "vendor": "test",
        "model": "this machine over SSH",
        "cores": 1,
        "memory_gb": 1,
        "supported_precisions": ["fp32", "int8"],
        "runtimes": ["litert"],
        "execution": "remote",
        "remote": remote,
        **over,
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def test_remote_cell_agrees_with_local_and_says_where_it_ran(sshd, tmp_path: Path) -> None:
    # 64 cores and another architecture: the device (this machine) contradicts the profile.
    profile = _profile(tmp_path, sshd, "loop", cores=64, remote={"arch": "riscv64"})
    ratios = []
    for round_ in range(2):  # back to back, twice: the machine is shared and noisy
        out = tmp_path / f"run{round_}"
        proc = run_cli(
            "bench",
            str(MODEL),
            "--profile",
            f"host,{profile}",
            "--threads",
            "1",
            "--out",
            str(out),
            "--no-progress",
        )
        assert proc.returncode == 0, proc.stderr + proc.stdout
        by_execution = {r["execution"]: r for r in _records(out)}
        local, remote = by_execution["local"], by_execution["remote"]
        assert remote["status"] == "ok", remote["error"]
        p50 = [r["metrics"]["latency_p50_ms"]["value"] for r in (remote, local)]
        ratios.append(p50[0] / p50[1])
    assert any(1 / 1.5 <= r <= 1.5 for r in ratios), ratios
    assert "loop (remote)" in proc.stdout
    part = remote["remote"]
    assert part["transport"] == "ssh" and part["host"] == sshd.host
    assert part["fingerprint"]["machine"] == platform.machine()
    assert part["fingerprint"]["packages"]["ai-edge-litert"]
    assert part["timing"] in ("loadgen", "timed-loop")
    assert any("riscv64" in c for c in part["contradictions"])
    assert any("64 cores" in c for c in part["contradictions"])
    # The model went to the device by content hash, under the profile's folder.
    assert part["artifact_path"].endswith(remote["artifact"]["sha256"] + ".tflite")
    assert Path(part["artifact_path"]).is_file()
    assert "peak_rss_mb" not in remote["metrics"]  # this host's worker is not the device


def test_each_fault_fails_only_its_cell_with_the_reason(sshd, tmp_path: Path) -> None:
    bare = tmp_path / "bare"  # a Python without numpy or an interpreter package
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    other_key = tmp_path / "other_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    profiles = [
        _profile(tmp_path, sshd, "ok-device"),
        _profile(tmp_path, sshd, "refused", remote={"host": f"{sshd.user}@127.0.0.1:1"}),
        _profile(tmp_path, sshd, "bad-key", remote={"identity_file": str(other_key)}),
        _profile(tmp_path, sshd, "bare-python", python=str(bare / "bin" / "python")),
    ]
    out = tmp_path / "run"
    started = time.monotonic()
    proc = run_cli(
        "bench",
        str(MODEL),
        "--profile",
        ",".join(map(str, profiles)),
        "--threads",
        "1",
        "--timeout",
        "60",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 1, proc.stderr + proc.stdout  # some cells failed
    assert time.monotonic() - started < 120
    records = {r["profile"]: r for r in _records(out)}
    assert records["ok-device"]["status"] == "ok"
    assert "Connection refused" in records["refused"]["error"]
    assert "Permission denied" in records["bad-key"]["error"]
    assert "No module named 'numpy'" in records["bare-python"]["error"]
    assert "accelbench device setup bare-python" in records["bare-python"]["error"]


def test_sshd_stopped_mid_sweep_fails_that_cell_and_the_sweep_goes_on(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    path = find_sshd()
    if path is None:
        unavailable("sshd is not installed")
    tmp_path = tmp_path_factory.mktemp("gone")
    server = LoopbackSshd(tmp_path / "sshd", path).start()
    try:
        profile = _profile(tmp_path, server, "goes-away", cores=2)
        out = tmp_path / "run"

        def stop_when_measuring() -> None:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if any(_measuring(pid) for pid in _descendants(server._proc.pid)):
                    time.sleep(0.5)
                    server.stop()
                    return
                time.sleep(0.1)

        killer = threading.Thread(target=stop_when_measuring)
        killer.start()
        proc = run_cli(
            "bench",
            str(MODEL),
            "--profile",
            str(profile),
            "--threads",
            "1,2",
            "--preset",
            "standard",
            "--timeout",
            "60",
            "--out",
            str(out),
            "--no-progress",
        )
        killer.join()
    finally:
        server.stop()
    assert proc.returncode == 1, proc.stderr + proc.stdout
    first, second = _records(out)
    assert first["status"] == "failed" and "ssh to goes-away" in first["error"], first["error"]
    assert first["wall_s"] < 60
    assert second["status"] == "failed" and "Connection refused" in second["error"]


def _measuring(pid: int) -> bool:
    try:
        return b"device_cell.py\x00measure" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


@pytest.mark.parametrize(
    ("remote", "execution", "needle"),
    [
        (None, "remote", "no 'remote:' block"),
        ({"transport": "ssh", "host": "pi@h", "python": "p"}, "emulated", "needs execution"),
        ({"transport": "ssh", "host": "192.168.1.20", "python": "p"}, "remote", "remote.host"),
        ({"transport": "telnet", "host": "pi@h", "python": "p"}, "remote", "remote.transport"),
        ({"transport": "ssh", "host": "pi@h", "python": "p", "port": 22}, "remote", "remote.port"),
        ({"transport": "ssh", "host": "pi@h"}, "remote", "remote.python"),
    ],
)
def test_bad_remote_blocks_are_one_line(tmp_path: Path, remote, execution, needle) -> None:
    data = {
        "name": "board",
        "kind": "edge-cpu",
        "vendor": "v",
        "model": "m",
        "cores": 4,
        "memory_gb": 8,
        "supported_precisions": ["fp32"],
        "execution": execution,
    }
    if remote is not None:
        data["remote"] = remote
    path = tmp_path / "board.yaml"
    path.write_text(json.dumps(data))
    proc = run_cli("profiles", "validate", str(path))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert needle in lines[0], lines[0]


def test_device_check_and_setup(sshd, tmp_path: Path) -> None:
    profile = _profile(tmp_path, sshd, "checked")
    proc = run_cli("device", "check", str(profile))
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert f"machine      {platform.machine()}" in proc.stdout
    assert "ai-edge-litert" in proc.stdout
    venv = tmp_path / "device-venv"
    # The venv sees this Python's packages, so pip finds them installed and needs no network.
    proc = run_cli(
        "device",
        "setup",
        str(profile),
        "--venv",
        str(venv),
        "--base-python",
        sys.executable,
        "--system-site-packages",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert (venv / "bin" / "python").exists()
    bare = _profile(tmp_path, sshd, "bare", python="/nonexistent/python")
    proc = run_cli("device", "check", str(bare))
    assert proc.returncode == 1 and "/nonexistent/python" in proc.stderr, proc.stderr
    refused = _profile(tmp_path, sshd, "refused", remote={"host": f"{sshd.user}@127.0.0.1:1"})
    proc = run_cli("device", "check", str(refused))
    assert proc.returncode == 1 and "Connection refused" in proc.stderr


def test_a_new_host_key_is_refused_until_device_check_accepts_it(sshd, tmp_path: Path) -> None:
    known_hosts = tmp_path / "empty_known_hosts"
    known_hosts.write_text("")
    strict = _profile(tmp_path, sshd, "strict", remote={"known_hosts": str(known_hosts)})
    proc = run_cli("device", "check", str(strict))
    assert proc.returncode == 1 and "Host key verification failed" in proc.stderr, proc.stderr
    assert known_hosts.read_text() == ""
    trusting = _profile(
        tmp_path,
        sshd,
        "trusting",
        remote={"known_hosts": str(known_hosts), "host_key_checking": "accept-new"},
    )
    # A cell never accepts a new key: its sandboxed worker could not record it.
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(MODEL),
        "--profile",
        str(trusting),
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    (record,) = _records(out)
    assert "Host key verification failed" in record["error"]
    assert "accelbench device check trusting" in record["error"]
    proc = run_cli("device", "check", str(trusting))
    assert proc.returncode == 0, proc.stderr
    assert known_hosts.read_text().split()[1:] == sshd.known_hosts.read_text().split()[1:]
    proc = run_cli(
        "bench",
        str(MODEL),
        "--profile",
        str(trusting),
        "--threads",
        "1",
        "--out",
        str(tmp_path / "run2"),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout


def test_a_device_without_loadgen_is_timed_in_a_loop_and_says_so(sshd, tmp_path: Path) -> None:
    hidden = tmp_path / "no_loadgen"
    (hidden / "mlperf_loadgen").mkdir(parents=True)
    (hidden / "mlperf_loadgen" / "__init__.py").write_text("raise ImportError('not here')\n")
    python = tmp_path / "python-without-loadgen"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={hidden} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    profile = _profile(tmp_path, sshd, "no-loadgen", python=str(python))
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(MODEL),
        "--profile",
        str(profile),
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (record,) = _records(out)
    assert record["remote"]["timing"] == "timed-loop"
    metrics = record["metrics"]
    assert metrics["query_count"]["value"] >= 64  # the quick preset's minimum
    assert metrics["duration_s"]["value"] >= 1.0
    assert 0 < metrics["latency_p50_ms"]["value"] <= metrics["latency_p90_ms"]["value"]
