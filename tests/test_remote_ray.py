"""Cells of transport: ray profiles on a real local Ray cluster of two nodes serving different
profiles: each cell lands on its profile's node, the two nodes measure at once; --spread sends
local cells to the nodes; Ctrl-C ends the cells in flight; a node killed mid-sweep fails its
cell."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from conftest import DATA, run_cli

if os.environ.get("CI"):
    import ray  # the dev extra has Ray: under CI a missing Ray fails rather than skips
else:
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install '.[ray]'")

from ray.cluster_utils import Cluster  # noqa: E402

from accelbench.runner.devices.ray_cluster import resource_name  # noqa: E402

MODEL = DATA / "conv24_f32.tflite"


def _profile(folder: Path, name: str) -> Path:
    data = {
        "name": name,
        "kind": "cpu",
        "vendor": "test",
        "model": "a Ray node",
        "cores": 1,
        "memory_gb": 1,
        "supported_precisions": ["fp32"],
        "runtimes": ["litert"],
        "execution": "remote",
        "remote": {"transport": "ray"},
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(data))
    return path


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def _ray_processes() -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process(os.getpid()).children(recursive=True)]


@pytest.fixture(scope="module")
def cluster():
    # One cluster for the module (a cluster takes seconds to start); the test that kills a node
    # comes last and puts a new one in its place.
    made = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {resource_name("ray-a"): 1}},
    )
    node_b = made.add_node(num_cpus=1, resources={resource_name("ray-b"): 1})
    made.wait_for_nodes()
    yield made, node_b
    made.shutdown()
    deadline = time.monotonic() + 20
    while _ray_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_processes(), "Ray processes left behind"


def test_cells_land_on_their_nodes_at_once_and_spread_cells_on_any(cluster, tmp_path: Path) -> None:
    made, node_b = cluster
    profiles = [
        _profile(tmp_path, "ray-a"),
        _profile(tmp_path, "ray-b"),
        _profile(tmp_path, "ray-c"),
        "host",
    ]
    out = tmp_path / "run"
    proc = run_cli(
        "bench",
        str(MODEL),
        "--profile",
        ",".join(map(str, profiles)),
        "--threads",
        "1",
        "--cluster",
        made.address,
        "--spread",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    records = {r["profile"]: r for r in _records(out)}
    head_id = made.head_node.node_id
    a, b = records["ray-a"], records["ray-b"]
    assert a["status"] == "ok", a["error"]
    assert a["remote"]["node_id"] == head_id
    assert b["status"] == "ok", b["error"]
    assert b["remote"]["node_id"] == node_b.node_id
    assert b["execution"] == "remote"
    assert b["metrics"]["latency_p50_ms"]["value"] > 0
    # Both nodes measured at once: each cell started there before the other ended.
    started = max(a["remote"]["started_at"], b["remote"]["started_at"])
    assert started < min(a["remote"]["ended_at"], b["remote"]["ended_at"]), (
        a["remote"],
        b["remote"],
    )
    assert records["ray-c"]["status"] == "skipped"
    assert "no node of the Ray cluster" in records["ray-c"]["error"]
    assert "ray-b (remote)" in proc.stdout
    # --spread: the host cell ran on a node of the cluster, which its record names, and stays
    # a local measurement (of that node's CPU), sandboxed as a local cell here is.
    host = records["host"]
    assert host["status"] == "ok", host["error"]
    assert host["execution"] == "local" and host["remote"] is None
    assert host["artifact"]["path"] == str(MODEL.resolve())
    assert host["node"]["node_id"] in {head_id, node_b.node_id}
    assert host["node"]["transport"] == "ray" and host["node"]["hostname"]
    assert host["environment"]["host_fingerprint_id"]
    from accelbench.runner.sandbox import choose

    assert host["sandbox"] == choose(True).mode
    assert "host (remote)" not in proc.stdout


def test_ctrl_c_ends_the_cells_in_flight_and_keeps_the_finished(cluster, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    made, _ = cluster
    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "accelbench.cli",
        "bench",
        str(MODEL),
        "--scenario",
        "single-stream,multi-stream,offline,server",
        "--threads",
        "1",
        "--cluster",
        made.address,
        "--spread",
        "--out",
        str(out),
        "--no-progress",
    ]
    sweep = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records = out / "records.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (records.is_file() and records.read_text()):
        assert sweep.poll() is None, sweep.communicate()
        time.sleep(0.1)
    sweep.send_signal(signal.SIGINT)
    stdout, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, stderr + stdout
    kept = _records(out)
    assert 1 <= len(kept) < 4 and all(r["status"] in ("ok", "invalid") for r in kept), kept
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _worker_running():
        time.sleep(0.2)
    assert not _worker_running(), "an interrupted cell's worker still runs on its node"
    proc = run_cli("bench", "--resume", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert len(_records(out)) == 4


def test_a_cell_past_its_timeout_fails_with_the_reason_and_the_sweep_ends(
    cluster, tmp_path: Path
) -> None:
    made, _ = cluster
    out = tmp_path / "run"
    # The standard preset measures for 10 s at least: past the 8 s timeout.
    proc = run_cli(
        "bench",
        str(MODEL),
        "--preset",
        "standard",
        "--timeout",
        "8",
        "--threads",
        "1",
        "--cluster",
        made.address,
        "--spread",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 1, proc.stderr + proc.stdout
    (record,) = _records(out)
    assert record["status"] == "failed" and record["error"] == "timed out after 8 s"
    assert record["wall_s"] < 8 and record["node"]["node_id"]
    assert not _worker_running()


def test_spread_needs_a_cluster() -> None:
    proc = run_cli("bench", str(MODEL), "--spread", "--no-progress", env={"ACCELBENCH_CLUSTER": ""})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "--cluster" in proc.stderr


def test_an_unreachable_cluster_fails_its_cells_with_the_reason_at_once(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "run"
    started = time.monotonic()
    proc = run_cli(
        "bench",
        str(MODEL),
        "--profile",
        str(_profile(tmp_path, "ray-a")),
        "--cluster",
        f"127.0.0.1:{port}",
        "--threads",
        "1",
        "--out",
        str(out),
        "--no-progress",
    )
    assert time.monotonic() - started < 60, "ray.init retried an address that refuses"
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    (record,) = [r for r in _records(out) if r["profile"] == "ray-a"]
    assert record["status"] == "failed"
    assert f"127.0.0.1:{port} cannot be reached" in record["error"]
    assert "agent start --head" in record["error"]


def test_a_node_killed_mid_sweep_fails_its_cell_and_resume_completes(
    cluster, tmp_path: Path
) -> None:
    import subprocess
    import sys

    made, node_b = cluster
    profile = _profile(tmp_path, "ray-b")
    out = tmp_path / "run"
    argv = [
        sys.executable,
        "-m",
        "accelbench.cli",
        "bench",
        str(MODEL),
        "--profile",
        str(profile),
        "--threads",
        "1",
        "--preset",
        "standard",
        "--cluster",
        made.address,
        "--out",
        str(out),
        "--no-progress",
    ]
    sweep = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _worker_running():
        time.sleep(0.2)
    assert _worker_running(), "the cell never started on the node"
    made.remove_node(node_b)
    stdout, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 1, stderr + stdout
    (record,) = _records(out)
    assert record["status"] == "failed"
    assert "the Ray node serving ray-b failed" in record["error"], record["error"]
    made.add_node(num_cpus=1, resources={resource_name("ray-b"): 1})
    made.wait_for_nodes()
    # As for any failed cell: delete its line, and --resume runs it again.
    (out / "records.jsonl").write_text("")
    proc = run_cli("bench", "--resume", str(out), "--cluster", made.address, "--no-progress")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (record,) = _records(out)
    assert record["status"] == "ok", record["error"]


def _worker_running() -> bool:
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if "accelbench.runner.worker" in cmdline and any(
            "accelbench-ray-cell-" in a for a in cmdline
        ):
            return True
    return False


def test_agent_start_serves_its_profiles_to_a_sweep(tmp_path: Path) -> None:
    import signal
    import socket
    import subprocess
    import sys

    import psutil
    from loopback_sshd import free_port

    port = free_port()
    profile = _profile(tmp_path, "agent-served")
    before = {p.pid for p in psutil.process_iter()}
    # --block: the node lives as long as this process group, which the test ends.
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "accelbench.cli",
            "agent",
            "start",
            "--head",
            "--port",
            str(port),
            "--num-cpus",
            "1",
            "--profile",
            str(profile),
            "--block",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert agent.poll() is None, agent.stdout.read()
                time.sleep(0.3)
        out = tmp_path / "run"
        cluster_env = {"ACCELBENCH_CLUSTER": f"127.0.0.1:{port}"}
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
            env=cluster_env,
        )
        assert proc.returncode == 0, proc.stderr + proc.stdout
        (record,) = _records(out)
        assert record["status"] == "ok", record["error"]
        assert record["remote"]["transport"] == "ray"
    finally:
        os.killpg(agent.pid, signal.SIGTERM)
        output, _ = agent.communicate(timeout=60)
    assert "serving agent-served" in output
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _new_ray_processes(before):
        time.sleep(0.5)
    assert not _new_ray_processes(before)


# What a Ray node's processes carry in their names or command lines.
_RAY_MARKS = ("ray::", "raylet", "gcs_server", "/ray/", "ray start")


def _new_ray_processes(before: set[int], ours: bool = True) -> list[str]:
    """Ray processes not in ``before``; without ``ours``, not this process's children either."""
    import psutil

    mine = set() if ours else set(_ray_processes())
    found = []
    for p in psutil.process_iter(["name", "cmdline", "status"]):
        if p.pid in before or p.pid in mine or p.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        text = " ".join(p.info["cmdline"] or []) or (p.info["name"] or "")
        if any(mark in text for mark in _RAY_MARKS) and "pytest" not in text:
            found.append(text[:80])
    return found


def test_agent_needs_head_or_address(tmp_path: Path) -> None:
    proc = run_cli("agent", "start", "--profile", "host")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = run_cli("bench", str(MODEL), "--cluster", "nohost", "--no-progress")
    assert proc.returncode == 2 and "HOST:PORT" in proc.stderr, proc.stderr


def test_agent_stop_stops_only_the_node_agent_start_started(cluster, tmp_path: Path) -> None:
    import socket

    import psutil
    from loopback_sshd import free_port

    made, _ = cluster
    port = free_port()
    before = {p.pid for p in psutil.process_iter()}
    profile = _profile(tmp_path, "agent-stopped")
    start = ["agent", "start", "--head", "--port", str(port), "--num-cpus", "1"]
    proc = run_cli(*start, "--profile", str(profile))
    try:
        assert proc.returncode == 0, proc.stderr + proc.stdout
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        stop = run_cli("agent", "stop")
    assert stop.returncode == 0 and "stopped" in stop.stdout, stop.stderr + stop.stdout
    # The module's cluster (this process's children) starts and ends workers of its own.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _new_ray_processes(before, ours=False):
        time.sleep(0.5)
    assert not _new_ray_processes(before, ours=False)
    # The other cluster of this machine (the module's) runs on: ray stop would have ended it.
    assert made.head_node.remaining_processes_alive()
    again = run_cli("agent", "stop")
    assert again.returncode == 0 and "no Ray node" in again.stdout
