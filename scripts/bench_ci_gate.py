"""The real A/A of docs/ci.md, gated the way the CI recipe gates: how often does it cry wolf?

Runs the `ci` suite twice on the same code (`accelbench run --suite ci --out A`, then `--out B`),
saves A as a baseline with its artifacts, checks whether the two runs' artifacts are
byte-identical (the suite retrains with a fixed seed; sha256 per artifact), and then runs
`accelbench compare baseline:aa B --rerun --threshold 5%` K times, each re-measuring the stored
copies of A's artifacts against B's, paired, in fresh workers. Prints, per comparison, its exit
status and the paired ratio, interval and verdict of every artifact pair, then how many of the K
exited 1 (the recipe's target: at most 1 of 15) and the spread of the ratios. For contrast, it
also prints what `compare A B` without --rerun (the recorded latencies) says about the same two
runs. The CPU model, core count and load average are printed at the start and the end: on a
shared machine they say how busy it was.

    python scripts/bench_ci_gate.py [--k 15] [--threshold 5%] [--work DIR [--reuse]]
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
from typing import Any


def accelbench(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """One accelbench command in its own process, as CI runs it."""
    return subprocess.run(
        [sys.executable, "-m", "accelbench.cli", *args], cwd=cwd, capture_output=True, text=True
    )


def must(proc: subprocess.CompletedProcess[str], what: str) -> None:
    if proc.returncode != 0:
        sys.exit(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cpu}; {len(os.sched_getaffinity(0))} usable cores; load average {load}"


def artifacts(run: Path) -> dict[str, str]:
    """sha256 of each artifact of a run, by the artifact's path inside the run folder."""
    out = {}
    for line in (run / "records.jsonl").read_text().splitlines():
        artifact = json.loads(line).get("artifact") or {}
        if artifact.get("sha256") and artifact.get("path"):
            path = Path(artifact["path"])
            inside = path.parts[:1] == (run.name,)
            out[(path.relative_to(run.name) if inside else path).as_posix()] = artifact["sha256"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=15, help="comparisons to run (15)")
    parser.add_argument("--threshold", default="5%", help="compare's --threshold (5%%)")
    parser.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the runs A, B and the baseline already in --work"
    )
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ci-gate-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine at start: {machine()}")
    print(f"work folder: {work}")

    for run in ("A", "B"):
        if args.reuse and (work / run / "records.jsonl").is_file():
            print(f"reusing run {run} in {work}")
            continue
        started = time.time()
        must(accelbench("run", "--suite", "ci", "--out", run, "--no-progress", cwd=work), run)
        print(f"accelbench run --suite ci --out {run}: {time.time() - started:.0f} s")
        if run == "A":
            proc = accelbench("baseline", "save", "A", "--name", "aa", "--store", "store", cwd=work)
            must(proc, "baseline save")
            print(proc.stdout.strip())

    a, b = artifacts(work / "A"), artifacts(work / "B")
    same = sorted(p for p in a if b.get(p) == a[p])
    print(f"artifacts byte-identical in A and B (sha256): {len(same)} of {len(a)}")
    for path in sorted(a):
        print(f"  {path}: {'identical' if path in same else 'differs'} ({a[path][:12]}…)")

    plain = accelbench(
        "compare", "A", "B", "--threshold", args.threshold, "--format", "json", cwd=work
    )
    rows = json.loads(plain.stdout)["rows"] if plain.returncode in (0, 1) else []
    regressed = [r for r in rows if r["verdict"] == "regressed"]
    print(
        f"compare A B (recorded latencies, no --rerun): exit {plain.returncode}, "
        f"{len(regressed)} regressed rows: "
        + (", ".join(f"{r['cell_id']} {r['metric']} x{r['ratio']:.3f}" for r in regressed) or "-")
    )

    exits, ratios, regressed_rows = [], [], 0
    stamp = time.strftime("%H%M%S")
    for k in range(args.k):
        started = time.time()
        proc = accelbench(
            "compare",
            "baseline:aa",
            "B",
            "--store",
            "store",
            "--rerun",
            "--threshold",
            args.threshold,
            "--format",
            "json",
            "--out",
            f"rerun-{stamp}-{k:02d}",
            cwd=work,
        )
        exits.append(proc.returncode)
        if proc.returncode not in (0, 1):
            print(f"[{k + 1:2d}] exit {proc.returncode}: {proc.stderr.strip()[-500:]}")
            continue
        rows = json.loads(proc.stdout)["rows"]
        paired = {}  # one per measurement: the cells of one artifact pair share its figures
        for r in rows:
            if r["metric"] == "rerun_time_ratio" and r["ci_low"] is not None:
                name = ".".join(r["cell_id"].split(".")[:2])
                paired[name] = r
        regressed_rows += sum(r["verdict"] == "regressed" for r in rows)
        ratios += [r["ratio"] for r in paired.values()]
        shown = "  ".join(
            f"{name} {r['ratio']:.3f} [{r['ci_low']:.3f}-{r['ci_high']:.3f}] {r['verdict']}"
            for name, r in sorted(paired.items())
        )
        print(f"[{k + 1:2d}] exit {proc.returncode} ({time.time() - started:.0f} s): {shown}")

    print(f"machine at end: {machine()}")
    summary: dict[str, Any] = {
        "comparisons": args.k,
        "exit_1": exits.count(1),
        "exit_other": sum(e not in (0, 1) for e in exits),
        "regressed_rows": regressed_rows,
    }
    if ratios:
        summary |= {
            "ratio_min": round(min(ratios), 4),
            "ratio_median": round(statistics.median(ratios), 4),
            "ratio_max": round(max(ratios), 4),
            "ratios_off_by_more_than_1pct": sum(abs(r - 1) > 0.01 for r in ratios),
            "ratios": len(ratios),
        }
    print(
        f"compare baseline:aa B --rerun --threshold {args.threshold}: {exits.count(1)} of "
        f"{args.k} exited 1 (target: at most 1 of 15)"
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
