"""What a remote cell costs: the same cell run locally and on this machine as a remote device.

python scripts/bench_remote_overhead.py [--transport ssh|ray] [--pairs 5]
    [--model tests/data/conv24_f32.tflite]

ssh: a private OpenSSH server on 127.0.0.1 (tests/loopback_sshd.py: its own host key and
authorized key, no system service) stands for the device, with this machine's Python as the
profile's ``python:``. ray: a one-node local Ray cluster (ray.cluster_utils.Cluster) serving the
profile, the sweep its driver (--cluster). Each pair runs ``accelbench bench MODEL --threads 1``
once with ``--profile host`` and once with the loopback profile, the order alternating from pair
to pair, so that the machine's drift touches both alike. Per cell: its wall time (the record's
``wall_s``: the worker's start, the copy check and ssh's connections or Ray's task, the model's
load and the measurement) and its p50.
Printed: medians of each, the median per-pair wall-time difference and the median p50 ratio
(remote / local).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from loopback_sshd import LoopbackSshd, find_sshd  # noqa: E402


def bench(model: Path, profile: str, out: Path, cluster: str | None = None) -> dict:
    extra = ["--cluster", cluster] if cluster else []
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "accelbench.cli",
            "bench",
            str(model),
            "--profile",
            profile,
            "--threads",
            "1",
            "--out",
            str(out),
            "--no-progress",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"bench failed: {proc.stderr.strip()[-500:]}")
    record = json.loads((out / "records.jsonl").read_text().splitlines()[0])
    if record["status"] != "ok":
        sys.exit(f"{profile}: {record['error']}")
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--model", type=Path, default=REPO / "tests/data/conv24_f32.tflite")
    parser.add_argument("--transport", choices=["ssh", "ray"], default="ssh")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        measure = _over_ssh if args.transport == "ssh" else _over_ray
        rows = measure(args, Path(tmp))
    median = statistics.median
    print(f"machine: {platform.node()} {platform.machine()}, {platform.processor() or ''}")
    print(
        f"{args.transport}: model {args.model.name}, {args.pairs} pairs, remote timing: "
        f"{rows[0]['timing']}"
    )
    for side in ("local", "remote"):
        print(
            f"{side:6}  wall per cell {median(r[f'{side}_wall_s'] for r in rows):.2f} s  "
            f"p50 {median(r[f'{side}_p50_ms'] for r in rows):.4f} ms"
        )
    extra = median(r["remote_wall_s"] - r["local_wall_s"] for r in rows)
    ratio = median(r["remote_p50_ms"] / r["local_p50_ms"] for r in rows)
    print(f"remote - local wall per cell: {extra:+.2f} s (median of pairs)")
    print(f"remote / local p50: {ratio:.3f} (median of pairs)")
    return 0


def _profile(folder: Path, remote: dict) -> Path:
    profile = folder / "loopback.yaml"
    profile.write_text(
        json.dumps(
            {
                "name": "loopback",
                "kind": "cpu",
                "vendor": "this machine",
                "model": "as a remote device",
                "cores": 1,
                "memory_gb": 1,
                "supported_precisions": ["fp32"],
                "execution": "remote",
                "remote": remote,
            }
        )
    )
    return profile


def _pairs(args: argparse.Namespace, folder: Path, profile: Path, cluster: str | None) -> list:
    rows = []
    for pair in range(args.pairs):
        order = ["host", str(profile)] if pair % 2 == 0 else [str(profile), "host"]
        got = {}
        for i, name in enumerate(order):
            record = bench(args.model, name, folder / f"run-{pair}-{i}", cluster)
            got["local" if name == "host" else "remote"] = record
        local, remote = got["local"], got["remote"]
        row = {
            "local_wall_s": local["wall_s"],
            "remote_wall_s": remote["wall_s"],
            "local_p50_ms": local["metrics"]["latency_p50_ms"]["value"],
            "remote_p50_ms": remote["metrics"]["latency_p50_ms"]["value"],
            "timing": remote["remote"]["timing"],
        }
        rows.append(row)
        print(json.dumps(row))
    return rows


def _over_ssh(args: argparse.Namespace, folder: Path) -> list:
    sshd = find_sshd()
    if sshd is None:
        sys.exit("sshd is not installed: apt-get install -y --no-install-recommends openssh-server")
    with LoopbackSshd(folder / "sshd", sshd) as server:
        remote = {
            "transport": "ssh",
            "host": server.host,
            "python": sys.executable,
            "identity_file": str(server.client_key),
            "known_hosts": str(server.known_hosts),
            "folder": f"{folder}/device",
        }
        return _pairs(args, folder, _profile(folder, remote), None)


def _over_ray(args: argparse.Namespace, folder: Path) -> list:
    from ray.cluster_utils import Cluster

    from accelbench.runner.devices.ray_cluster import resource_name

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {resource_name("loopback"): 1}},
    )
    try:
        profile = _profile(folder, {"transport": "ray"})
        return _pairs(args, folder, profile, cluster.address)
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    sys.exit(main())
