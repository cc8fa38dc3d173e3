"""Start-up time of `accelbench --help` (target: under 0.5 s; no framework imported at start-up).

python scripts/bench_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    help_s = timed([sys.executable, "-m", "accelbench.cli", "--help"], args.runs)
    bare_s = timed([sys.executable, "-c", "pass"], args.runs)
    print(f"accelbench --help: median {statistics.median(help_s):.3f} s, max {max(help_s):.3f} s")
    print(f"bare python:       median {statistics.median(bare_s):.3f} s (interpreter start alone)")
    print("target: under 0.5 s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
