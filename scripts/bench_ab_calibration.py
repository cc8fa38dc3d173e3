"""How often `accelbench ab` cries wolf, and how often it sees a real 14% and 3% slowdown.

Builds conv stacks of identical 3x3 convolutions (make_test_models.conv_stack), so that one does
a known fraction more work than another: 8 vs 7 layers (~14%) and 33 vs 32 (~3%). Then runs N
`accelbench ab` comparisons of each kind, interleaved (A/A: the 8-layer model against itself;
7 -> 8; 32 -> 33), each in its own CLI subprocess with its own --seed, at --threshold 2%, and
prints every run's ratio, interval, round range and verdict, then the false-alarm rate (A/A runs
that exit 1) and the detection rates (runs that say regressed) with their counts.

The "isolated" ratio printed next to each kind is the models timed alone, in alternating blocks
of calls in one process (median of per-block ratios): what the ratio is when nothing else is
going on, which the layer counts only approximate (a call also pays a fixed overhead).

    python scripts/bench_ab_calibration.py [--n 20] [--threshold 2%] [--pairs 200] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serving import child_env, run_python  # noqa: E402

# (name, BASE layers, NEW layers): what each kind of comparison builds.
KINDS = (("A/A", 8, 8), ("14%", 7, 8), ("3%", 32, 33))

_BUILD = """
import sys
sys.path.insert(0, {scripts!r})
from pathlib import Path
from make_test_models import write_conv_stack
for layers in {layers!r}:
    write_conv_stack(Path({out!r}) / f"conv{{layers}}.tflite", layers)
"""

_ISOLATED = """
import json, time
import numpy as np
from accelbench.runtimes import make_inputs, open_runtime
ratios = {{}}
for base, new in {pairs!r}:
    runtimes = [open_runtime(p, threads={threads}) for p in (base, new)]
    samples = [make_inputs(r.inputs(), 16) for r in runtimes]
    for r, s in zip(runtimes, samples):
        for x in s:
            r.run(x)
    blocks = []
    for block in range(30):
        medians = []
        for r, s in zip(runtimes, samples):
            times = []
            for i in range(100):
                t0 = time.perf_counter_ns()
                [np.asarray(o) for o in r.run(s[i % 16])]
                times.append(time.perf_counter_ns() - t0)
            medians.append(np.median(times))
        blocks.append(medians[1] / medians[0])
    ratios[f"{{base}} {{new}}"] = float(np.median(blocks))
print(json.dumps(ratios))
"""


def build_models(out: Path) -> dict[int, Path]:
    layers = sorted({n for _, base, new in KINDS for n in (base, new)})
    scripts = str(Path(__file__).resolve().parent)
    run_python("-c", _BUILD.format(scripts=scripts, layers=layers, out=str(out)))
    return {n: out / f"conv{n}.tflite" for n in layers}


def isolated_ratios(models: dict[int, Path], threads: int) -> dict[str, float]:
    """Per kind, NEW/BASE measured with each model timed alone (blocks of 100 calls, ABAB...)."""
    pairs = [(str(models[base]), str(models[new])) for _, base, new in KINDS]
    measured = json.loads(run_python("-c", _ISOLATED.format(pairs=pairs, threads=threads)))
    return {name: measured[f"{models[base]} {models[new]}"] for name, base, new in KINDS}


def run_ab(base: Path, new: Path, out: Path, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One `accelbench ab` in a subprocess: its exit status and its comparison row."""
    command = [
        sys.executable,
        "-m",
        "accelbench.cli",
        "ab",
        str(base),
        str(new),
        "--threads",
        str(args.threads),
        "--pairs",
        str(args.pairs),
        "--rounds",
        str(args.rounds),
        "--threshold",
        args.threshold,
        "--seed",
        str(seed),
        "--format",
        "json",
        "--out",
        str(out),
    ]
    started = time.time()
    done = subprocess.run(command, capture_output=True, text=True, env=child_env())
    row: dict[str, Any] = {"exit": done.returncode, "wall_s": time.time() - started}
    try:
        (comparison,) = json.loads(done.stdout)["comparisons"]
        row.update(comparison)
    except (ValueError, KeyError):
        row.update(verdict="failed", error=(done.stderr.strip().splitlines() or ["?"])[-1])
    return row


def _line(name: str, i: int, row: dict[str, Any]) -> str:
    if row.get("ratio") is None:
        return f"{name:4} #{i:<3} exit {row['exit']}  failed: {row.get('error')}"
    return (
        f"{name:4} #{i:<3} exit {row['exit']}  ratio {row['ratio']:.4f}  "
        f"CI {row['ci_low']:.4f}-{row['ci_high']:.4f}  rounds {row['round_ratio_min']:.3f}-"
        f"{row['round_ratio_max']:.3f} ({row['rounds']})  p50 {row['base_p50_ms']:.4f} -> "
        f"{row['new_p50_ms']:.4f} ms  {row['verdict']}  ({row['wall_s']:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20, help="comparisons of each kind (20)")
    parser.add_argument("--threshold", default="2%", help="ab's --threshold (2%%)")
    parser.add_argument("--pairs", type=int, default=200, help="ab's --pairs (200)")
    parser.add_argument("--rounds", type=int, default=5, help="ab's --rounds (5)")
    parser.add_argument("--threads", type=int, default=1, help="ab's --threads (1)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ab-calibration-") as tmp:
        work = Path(tmp)
        models = build_models(work)
        isolated = isolated_ratios(models, args.threads)
        print(
            f"accelbench ab calibration: {args.n} runs per kind, threshold {args.threshold}, "
            f"{args.rounds} rounds x {args.pairs} pairs, {args.threads} thread(s)"
        )
        for name, base, new in KINDS:
            print(f"  {name}: conv{base} -> conv{new}, isolated ratio {isolated[name]:.4f}")
        rows: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in KINDS}
        for i in range(args.n):
            for name, base, new in KINDS:  # interleaved, so a slow spell hits every kind alike
                out = work / f"run-{name.replace('/', '')}-{i}"
                row = run_ab(models[base], models[new], out, seed=i, args=args)
                rows[name].append(row)
                print(_line(name, i, row), flush=True)

    print()
    aa = rows["A/A"]
    alarms = sum(r["exit"] == 1 for r in aa)
    print(f"false alarms (A/A exit 1): {alarms}/{len(aa)} = {alarms / len(aa):.0%}")
    for name, _, _ in KINDS[1:]:
        hits = sum(r.get("verdict") == "regressed" for r in rows[name])
        print(
            f"detected {name} (regressed): {hits}/{len(rows[name])} = "
            f"{hits / len(rows[name]):.0%} (isolated ratio {isolated[name]:.4f})"
        )
    for name, _, _ in KINDS:
        verdicts = [r.get("verdict") for r in rows[name]]
        counts = ", ".join(f"{v} {verdicts.count(v)}" for v in sorted(set(verdicts), key=str))
        ratios = [r["ratio"] for r in rows[name] if r.get("ratio") is not None]
        spread = f"ratios {min(ratios):.4f}-{max(ratios):.4f}" if ratios else "no ratios"
        print(f"{name}: {counts}; {spread}")


if __name__ == "__main__":
    main()
