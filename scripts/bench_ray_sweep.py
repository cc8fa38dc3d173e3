"""A sweep of 40 quick cells run on this machine, and the same sweep spread over a local Ray
cluster of two nodes (``--cluster --spread``): wall times and their ratio.

python scripts/bench_ray_sweep.py [--repeats 1] [--nodes 2] [--cpus-per-node 1]

The sweep: the ten .tflite models of tests/data × single-stream, multi-stream, offline and server,
on ``host`` at one thread, preset quick: 40 cells. The cluster (ray.cluster_utils.Cluster) runs on
this machine: its nodes share this machine's cores, so spreading can win only what one sweep
leaves idle (a one-thread cell uses about one core). Each repeat runs ``accelbench run SUITE``
once as it is and once with ``--cluster ADDRESS --spread``, the order alternating from repeat
to repeat. Printed per run: its wall time (the whole command), the median cell wall time (the
record's ``wall_s``) and the load average; then the medians over repeats and spread / local.
The per-cell figures give the scaling for a real fleet of N nodes of C CPUs on paper:
wall ≈ outside + ceil(cells × threads / (N × C)) × spread cell wall, where "outside" is what the
run spends outside its cells (start, plan, Ray's connection, the report), printed per side.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = "cnn_f32 cnn_int8 conv24_f32 conv2_f32 conv6_f32 mlp_f32 mlp_uint8io multi_io_f32"
MODELS += " dynamic_batch_f32 embed_int32"
SCENARIOS = ["single-stream", "multi-stream", "offline", "server"]


def write_suite(folder: Path) -> Path:
    suite = {
        "name": "sweep40",
        "models": [{"path": str(REPO / "tests" / "data" / f"{m}.tflite")} for m in MODELS.split()],
        "profiles": ["host"],
        "threads": [1],
        "scenarios": SCENARIOS,
        "preset": "quick",
    }
    path = folder / "suite.yaml"
    path.write_text(json.dumps(suite))  # JSON is YAML
    return path


def sweep(suite: Path, out: Path, cluster: str | None) -> dict:
    extra = ["--cluster", cluster, "--spread"] if cluster else []
    load = os.getloadavg()[0]
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "accelbench.cli", "run", str(suite), "--out", str(out)]
        + ["--no-progress", *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    wall_s = time.perf_counter() - started
    if proc.returncode not in (0, 1):
        sys.exit(f"run failed ({proc.returncode}): {proc.stderr.strip()[-800:]}")
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    on_nodes = {r["node"]["node_id"] for r in records if r.get("node")}
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    return {
        "side": "spread" if cluster else "local",
        "wall_s": round(wall_s, 2),
        "cells": len(records),
        "statuses": statuses,
        "cell_wall_s_median": round(statistics.median(r["wall_s"] for r in records), 3),
        "cell_wall_s_sum": round(sum(r["wall_s"] for r in records), 2),
        "nodes_used": len(on_nodes),
        "spread_cells": sum(1 for r in records if r.get("node")),
        "load_1min_before": round(load, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1)
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        suite = write_suite(folder)
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": args.cpus_per_node})
        try:
            for _ in range(args.nodes - 1):
                cluster.add_node(num_cpus=args.cpus_per_node)
            cluster.wait_for_nodes()
            rows = []
            for repeat in range(args.repeats):
                order = [None, cluster.address]
                if repeat % 2:
                    order.reverse()
                for i, address in enumerate(order):
                    row = sweep(suite, folder / f"run-{repeat}-{i}", address)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
        finally:
            cluster.shutdown()
    median = statistics.median
    local = [r for r in rows if r["side"] == "local"]
    spread = [r for r in rows if r["side"] == "spread"]
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} logical cores; "
        f"cluster: {args.nodes} nodes × {args.cpus_per_node} CPU on this machine"
    )
    slots = {"local": 1, "spread": args.nodes * args.cpus_per_node}
    for name, side in (("local", local), ("spread", spread)):
        wall = median(r["wall_s"] for r in side)
        # What the run spends outside its cells (start, plan, Ray's connection, the report).
        outside = median(r["wall_s"] - r["cell_wall_s_sum"] / slots[name] for r in side)
        print(
            f"{name:6}  wall {wall:.1f} s  cell wall (median) "
            f"{median(r['cell_wall_s_median'] for r in side):.2f} s  outside the cells "
            f"{outside:.1f} s  ({slots[name]} cell(s) at a time)"
        )
    ratio = median(s["wall_s"] for s in spread) / median(r["wall_s"] for r in local)
    print(f"spread / local wall: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
