"""What a remote cell costs over SSH: the same cell run locally and on this machine over loopback.

python scripts/bench_remote_overhead.py [--pairs 5] [--model tests/data/conv24_f32.tflite]

A private OpenSSH server on 127.0.0.1 (tests/loopback_sshd.py: its own host key and authorized
key, no system service) stands for the device, with this machine's Python as the profile's
``python:``. Each pair runs ``accelbench bench MODEL --threads 1`` once with ``--profile host`` and
once with the loopback profile, the order alternating from pair to pair, so that the machine's
drift touches both alike. Per cell: the worker's wall time (the record's ``wall_s``: the worker's
start, the copy check, ssh's connections, the model's load and the measurement) and its p50.
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


def bench(model: Path, profile: str, out: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "accelbench.cli", "bench", str(model), "--profile", profile,
         "--threads", "1", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
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
    args = parser.parse_args()
    sshd = find_sshd()
    if sshd is None:
        sys.exit("sshd is not installed: apt-get install -y --no-install-recommends openssh-server")
    with tempfile.TemporaryDirectory() as tmp, LoopbackSshd(Path(tmp) / "sshd", sshd) as server:
        profile = Path(tmp) / "loopback.yaml"
        profile.write_text(
            json.dumps(
                {
                    "name": "loopback", "kind": "cpu", "vendor": "this machine",
                    "model": "over SSH on loopback", "cores": 1, "memory_gb": 1,
                    "supported_precisions": ["fp32"], "execution": "remote",
                    "remote": {
                        "transport": "ssh", "host": server.host, "python": sys.executable,
                        "identity_file": str(server.client_key),
                        "known_hosts": str(server.known_hosts), "folder": f"{tmp}/device",
                    },
                }
            )
        )  # fmt: skip
        rows = []
        for pair in range(args.pairs):
            order = ["host", str(profile)] if pair % 2 == 0 else [str(profile), "host"]
            got = {}
            for i, name in enumerate(order):
                record = bench(args.model, name, Path(tmp) / f"run-{pair}-{i}")
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
    median = statistics.median
    print(f"machine: {platform.node()} {platform.machine()}, {platform.processor() or ''}")
    print(f"model {args.model.name}, {args.pairs} pairs, remote timing: {rows[0]['timing']}")
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


if __name__ == "__main__":
    sys.exit(main())
