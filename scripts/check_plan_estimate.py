"""Is `accelbench run --dry-run`'s estimate within 1.5x of the run's real wall time?

Checked as a new user meets it: a fresh cache folder (no learnt costs, no artifact cache, no
calibration), so the estimate comes from the shipped costs (``DEFAULT_COSTS``), which were
measured on earlier runs and not on this one. The script prints the plan's estimate, runs the
same suite (default: the default suite) in a child process, and prints the real wall time and
the ratio real / estimate. ``--learnt`` keeps this machine's cache instead (learnt costs, the
artifact cache): the estimate then comes from the runs before this one.

    python scripts/check_plan_estimate.py [--suite SUITE] [--learnt]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LIMIT = 1.5
PLAN = """
from accelbench.runner.plan import plan_suite
from accelbench.runner.suite import host_cores, suite_from_mapping
from accelbench.runner.suites import builtin_suite

plan = plan_suite(suite_from_mapping(builtin_suite("{suite}", host_cores()), "built-in suite"))
print(plan.describe())
print(plan.total_s)
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="default", help="a built-in suite's name")
    ap.add_argument("--learnt", action="store_true", help="keep this machine's cache and costs")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        if not args.learnt:
            env["ACCELBENCH_CACHE_DIR"] = str(Path(tmp) / "cache")
        # The plan as `run --dry-run` makes it, its total in seconds rather than rounded.
        plan = subprocess.run(
            [sys.executable, "-c", PLAN.format(suite=args.suite)],
            env=env,
            capture_output=True,
            text=True,
        )
        if plan.returncode != 0:
            print(plan.stdout + plan.stderr, file=sys.stderr)
            return 2
        lines = plan.stdout.splitlines()
        estimate_s = float(lines[-1])
        print("\n".join(lines[:2]))
        started = time.monotonic()
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from accelbench.cli import main; sys.exit(main(sys.argv[1:]))",
                "run",
                "--suite",
                args.suite,
                "--out",
                str(Path(tmp) / "run"),
                "--no-progress",
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        real_s = time.monotonic() - started
        load = os.getloadavg()[0]
    print(f"run exit status {run.returncode}; its first line: {run.stdout.splitlines()[:1]}")
    ratio = real_s / estimate_s
    print(
        f"estimate {estimate_s / 60:.1f} min, real {real_s / 60:.1f} min, real/estimate "
        f"{ratio:.2f} (within {LIMIT}x: {'yes' if 1 / LIMIT <= ratio <= LIMIT else 'NO'}); "
        f"load average at the end {load:.1f} on {os.cpu_count()} cores"
    )
    return 0 if run.returncode in (0, 1) else run.returncode


if __name__ == "__main__":
    raise SystemExit(main())
