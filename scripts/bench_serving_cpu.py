"""Where the serving CPU goes: user and system CPU per request of each server thread, and of the
load client, at a fixed LoadGen Server rate, for each serving mode.

    python scripts/bench_serving_cpu.py MODEL.tflite [--qps 800] [--preset standard]
        [--modes online,batching]

Starts ``python -m accelbench.cli.serve_subprocess`` with the suite scenario's settings for each
mode, runs one LoadGen Server test at ``--qps`` against it, and prints, from /proc, each server
thread's user and system CPU per request and its voluntary + involuntary context switches per
request (the event loop is ``main``; the inference threads follow), this process's (LoadGen and
the load client) CPU per request, and, for scale, the model's own time per call in process (the
server's runtime, 1 thread, batch 1). Linux only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from bench_serving import Server, call_times_us  # noqa: E402

from accelbench.benchmarks.serving import (  # noqa: E402
    DEFAULTS,
    endpoint_samples,
    run_endpoint,
    server_args,
)


def thread_times(pid: int) -> dict[str, tuple[float, float, int, int]]:
    """(user s, system s, voluntary, involuntary context switches) of each thread of pid."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for task in sorted(Path(f"/proc/{pid}/task").iterdir()):
        stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        status = (task / "status").read_text()
        vol = int(status.split("voluntary_ctxt_switches:")[1].split()[0])
        invol = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
        name = "main" if task.name == str(pid) else f"thread {task.name}"
        out[name] = (int(stat[11]) / tick, int(stat[12]) / tick, vol, invol)
    return out


def measure(model: Path, mode: str, qps: float, preset: str, work: Path) -> None:
    from accelbench.runtimes.remote import open_remote

    cell = {"model_path": str(model), "model": "m", "threads": 1, "runtime": None}
    command = [
        sys.executable,
        "-m",
        "accelbench.cli.serve_subprocess",
        *server_args(cell, DEFAULTS, mode),
    ]
    with Server(command) as server:
        runtime = open_remote(server.url, "m")
        try:
            samples = endpoint_samples(runtime, None, seed=0)
            before, mine = thread_times(server.proc.pid), os.times()
            run = run_endpoint(
                runtime,
                samples,
                "server",
                preset,
                work / mode,
                target_qps=qps,
                latency_bound_ms=1000.0,
            )
            after, mine_after = thread_times(server.proc.pid), os.times()
        finally:
            runtime.close()
    n = run.requests["requests"]
    metrics = run.scenario.metrics
    p50, p99 = (metrics[f"latency_{p}_ms"]["value"] for p in ("p50", "p99"))
    print(f"{mode} at {qps:g} req/s: {n} requests, p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    for name, (usr, sys_, vol, invol) in after.items():
        u0, s0, v0, i0 = before.get(name, (0.0, 0.0, 0, 0))
        if usr + sys_ - u0 - s0 <= 0:
            continue
        print(
            f"  server {name:>14}: user {1e6 * (usr - u0) / n:6.0f} us, system "
            f"{1e6 * (sys_ - s0) / n:5.0f} us per request; context switches "
            f"{(vol - v0) / n:.2f} + {(invol - i0) / n:.2f} per request"
        )
    print(
        f"  client + LoadGen     : user {1e6 * (mine_after.user - mine.user) / n:6.0f} us, "
        f"system {1e6 * (mine_after.system - mine.system) / n:5.0f} us per request"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--qps", type=float, default=800.0)
    parser.add_argument("--preset", default="standard", choices=("quick", "standard"))
    parser.add_argument("--modes", default="online,batching")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-cpu-"))
    per_call = call_times_us(args.model, None, batches=(1,), calls=5000)[1]
    print(f"model in process: {per_call:.1f} us per call (batch 1, 1 thread)")
    for mode in args.modes.split(","):
        measure(args.model, mode, args.qps, args.preset, work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
