"""What the sandbox costs: a process's start with and without bubblewrap (and with Landlock, the
alternative), and a model's p50 latency with and without the sandbox.

python scripts/bench_sandbox.py [--runs 20] [--bench-pairs 5]

1. Start-up, N runs of each, the variants alternating (so a machine's drift touches all alike):
   ``python -c pass`` plain, under bubblewrap (the worker's own command line from
   accelbench.runner.sandbox), and under Landlock (the same interpreter restricting itself to
   read-only system and Python folders through the kernel's Landlock system calls, as the
   ``landlock`` package does), and the worker's shortest real path (a cell that fails at once,
   ACCELBENCH_WORKER_FAULT=raise: interpreter, accelbench imports, the result written) plain and
   under bubblewrap. Medians and the median of the per-run differences.
2. p50: ``accelbench bench tests/data/mlp_f32.tflite --threads 1`` run alternately with the
   sandbox and with --no-sandbox, pairs of runs in alternating order; the p50 of each run and
   the median per-pair ratio (sandboxed / not). Runs minutes apart can drift on a shared
   machine: this pairs whole runs, not queries (ab cannot pair a sandbox with no sandbox).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "tests" / "data" / "mlp_f32.tflite"

# Landlock through its system calls (x86_64 numbers), as the `landlock` package issues them:
# create a ruleset handling every filesystem access, allow reading the folders Python needs,
# forbid new privileges, restrict this process.
LANDLOCK = r"""
import ctypes, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute, read file, read dir
ALL = (1 << 13) - 1
attr = struct.pack("QQQ", ALL, 0, 0)
fd = libc.syscall(444, attr, 24, 0)
assert fd >= 0, os.strerror(ctypes.get_errno())
for folder in sys.argv[1:]:
    parent = os.open(folder, os.O_PATH)
    rule = struct.pack("=QiI", READ, parent, 0)[:12]
    assert libc.syscall(445, fd, 1, rule, 0) == 0, os.strerror(ctypes.get_errno())
    os.close(parent)
libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
assert libc.syscall(446, fd, 0) == 0, os.strerror(ctypes.get_errno())
"""


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": path}


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, capture_output=True, check=False)
    return time.perf_counter() - start


def _worker_cell(folder: Path) -> list[str]:
    """The worker's arguments for a cell that stops at its first step (fault injection)."""
    from accelbench.runner.suite import expand, suite_from_mapping

    suite = suite_from_mapping({"models": [{"path": str(MODEL)}], "threads": [1]}, "bench")
    (cell,) = expand(suite)
    cell_file, work = folder / "cell.json", folder / "work"
    work.mkdir()
    cell_file.write_text(json.dumps(cell.to_dict()))
    return [str(cell_file), str(work / "result.json"), str(work)]


def startup(runs: int) -> None:
    from accelbench.runner.sandbox import choose, python_paths

    box = choose(True)
    if not box.active:
        print(f"no bubblewrap here ({box.reason}); nothing to compare")
        return
    folders = sorted({"/usr", "/etc", *python_paths()})
    with tempfile.TemporaryDirectory() as tmp:
        args = _worker_cell(Path(tmp))
        work = Path(args[2])
        worker = [sys.executable, "-m", "accelbench.runner.worker", *args]
        fault = {**_env(), "ACCELBENCH_WORKER_FAULT": "raise"}
        wrapped, env = box.command(worker, read=args[:1], write=[work])
        variants = {
            "python -c pass": ([sys.executable, "-c", "pass"], _env()),
            "python under bubblewrap": box.command([sys.executable, "-c", "pass"]),
            "python under Landlock": ([sys.executable, "-c", LANDLOCK, *folders], _env()),
            "worker, no-op cell": (worker, fault),
            "worker under bubblewrap": (wrapped, {**env, "ACCELBENCH_WORKER_FAULT": "raise"}),
        }
        order = [
            ("python -c pass", "python under bubblewrap", "python under Landlock"),
            ("worker, no-op cell", "worker under bubblewrap"),
        ]
        times: dict[str, list[float]] = {name: [] for group in order for name in group}
        for i in range(runs):
            for group in order:
                names = group if i % 2 == 0 else tuple(reversed(group))
                for name in names:
                    command, env = variants[name]
                    times[name].append(_timed(command, env))
    print(f"start-up, median of {runs} alternating runs (ms):")
    for group in order:
        base = times[group[0]]
        print(f"  {group[0]:28} {statistics.median(base) * 1e3:8.1f}")
        for name in group[1:]:
            extra = [t - b for t, b in zip(times[name], base, strict=True)]
            print(
                f"  {name:28} {statistics.median(times[name]) * 1e3:8.1f}"
                f"   (+{statistics.median(extra) * 1e3:.1f} per run, median)"
            )


def p50_pairs(pairs: int) -> None:
    ratios, seen = [], {"sandbox": [], "no-sandbox": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(pairs):
            order = ["sandbox", "no-sandbox"] if i % 2 == 0 else ["no-sandbox", "sandbox"]
            p50 = {}
            for side in order:
                out = Path(tmp) / f"{side}-{i}"
                flags = ["--no-sandbox"] if side == "no-sandbox" else []
                command = [sys.executable, "-m", "accelbench.cli", "bench", str(MODEL)]
                command += ["--threads", "1", "--no-progress", "--out", str(out), *flags]
                subprocess.run(command, env=_env(), capture_output=True, check=True)
                (record,) = [json.loads(line) for line in (out / "records.jsonl").open()]
                p50[side] = record["metrics"]["latency_p50_ms"]["value"]
                seen[side].append(p50[side])
            ratios.append(p50["sandbox"] / p50["no-sandbox"])
    print(f"p50 of {MODEL.name}, 1 thread, quick preset, {pairs} pairs of whole runs (ms):")
    for side, values in seen.items():
        print(f"  {side:11} median {statistics.median(values):.4f}  runs {values}")
    print(f"  sandboxed / not, median per-pair ratio {statistics.median(ratios):.3f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="start-up runs per variant (20)")
    ap.add_argument("--bench-pairs", type=int, default=5, help="pairs of bench runs (5; 0: none)")
    args = ap.parse_args()
    startup(args.runs)
    if args.bench_pairs:
        p50_pairs(args.bench_pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
