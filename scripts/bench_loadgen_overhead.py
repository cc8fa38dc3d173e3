"""How much LoadGen and accelbench's SUT cost per query, on a fake runtime of known service time.

Runs the SingleStream scenario against a runtime that busy-waits a fixed time (default 1 ms) and
prints LoadGen's "QPS w/ loadgen overhead" (queries / wall time: includes LoadGen's issue path and
this SUT) and "QPS w/o loadgen overhead" (1 / mean latency), and their difference in percent.
Target: under 2%. The SUT's own per-query cost sits inside LoadGen's latency, so the script also
prints how far the p50 latency is above the known service time.

    python scripts/bench_loadgen_overhead.py [--service-ms 1.0] [--preset quick] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from accelbench.benchmarks.loadgen import run_scenario

TARGET_PERCENT = 2.0


class BusyRuntime:
    """Spins for a fixed time per call: sleep() overshoots by tens of microseconds, spinning not."""

    def __init__(self, service_ms: float) -> None:
        self._service_ns = int(service_ms * 1e6)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        end = time.perf_counter_ns() + self._service_ns
        while time.perf_counter_ns() < end:
            pass
        return [inputs[0]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service-ms", type=float, default=1.0, help="fake inference time")
    parser.add_argument("--preset", default="quick", help="quick, standard or mlperf")
    parser.add_argument("--repeats", type=int, default=3, help="runs to take the median of")
    args = parser.parse_args(argv)

    runtime = BusyRuntime(args.service_ms)
    samples = [[np.zeros((1, 16), dtype=np.float32)] for _ in range(64)]
    differences = []
    with tempfile.TemporaryDirectory(prefix="accelbench-overhead-") as tmp:
        for repeat in range(args.repeats):
            result = run_scenario(
                runtime, samples, "single-stream", args.preset, Path(tmp) / str(repeat)
            )
            with_overhead = result.metrics["qps"]["value"]
            without_overhead = result.metrics["qps_without_loadgen_overhead"]["value"]
            difference = (without_overhead - with_overhead) / without_overhead * 100
            differences.append(difference)
            p50_ms = result.metrics["latency_p50_ms"]["value"]
            print(
                f"run {repeat + 1}: {result.metrics['query_count']['value']} queries, "
                f"QPS w/ loadgen overhead {with_overhead:.2f}, "
                f"w/o {without_overhead:.2f}, difference {difference:.2f}% "
                f"(p50 {p50_ms:.4f} ms, {(p50_ms / args.service_ms - 1) * 100:+.2f}% over the "
                "service time, "
                f"trace {'on' if result.latencies_source == 'loadgen_trace' else 'off'})"
            )
    median = statistics.median(differences)
    verdict = "within" if median < TARGET_PERCENT else "OVER"
    print(f"median difference {median:.2f}% ({verdict} the {TARGET_PERCENT:.0f}% target)")
    return 0 if median < TARGET_PERCENT else 1


if __name__ == "__main__":
    raise SystemExit(main())
