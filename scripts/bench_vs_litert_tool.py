"""accelbench's per-query figures against LiteRT's own benchmark tool, same model and threads.

Each round runs, in a seeded random order and back to back, so that the machine's drift hits
every side alike:

- `python -m ai_edge_litert.tools.benchmark_litert_model` on the model alone (its median);
- `accelbench bench --scenario single-stream` (LoadGen's p50, the model isolated in its worker);
- `accelbench ab MODEL PARTNER` (the model's pooled p50 while it alternates, call by call, with
  another model in the same process: the two models' weights compete for the caches, which is
  what paired timing costs in fidelity).

and takes each accelbench figure's ratio to the tool's median *within the round*. It prints, per
model and thread count, the median per-round ratio with its range and count. Target: the median
per-round ratio of `bench` within 5% of 1.

    python scripts/bench_vs_litert_tool.py [--threads 1] [--rounds 5] [--preset quick] [MODEL ...]

With no models it uses five real MediaPipe models (fetched once by scripts/fetch_real_models.py).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from fetch_real_models import fetch  # noqa: E402

DEFAULT_MODELS = (
    "face_detection_short_range.tflite",
    "selfie_segmentation.tflite",
    "hand_landmark_lite.tflite",
    "face_landmark.tflite",
    "pose_detection.tflite",
)


def _run(argv: list[str], ok: tuple[int, ...] = (0,)) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode not in ok:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"{' '.join(argv[:6])} ... exited {done.returncode}: {' | '.join(tail)}")


def litert_tool_median_ms(model: Path, threads: int, runs: int, out: Path) -> float:
    _run(
        [
            sys.executable,
            "-m",
            "ai_edge_litert.tools.benchmark_litert_model",
            "--model",
            str(model),
            "--num_threads",
            str(threads),
            "--num_runs",
            str(runs),
            "--warmup_runs",
            "20",
            "--result_json",
            str(out),
        ]
    )
    return float(json.loads(out.read_text())["latency"]["median_ms"])


def _first_record(run_dir: Path) -> dict:
    return json.loads((run_dir / "records.jsonl").read_text().splitlines()[0])


def bench_p50_ms(model: Path, threads: int, preset: str, run_dir: Path) -> float:
    _run(
        [
            sys.executable,
            "-m",
            "accelbench.cli",
            "bench",
            str(model),
            "--profile",
            "host",
            "--threads",
            str(threads),
            "--scenario",
            "single-stream",
            "--preset",
            preset,
            "--out",
            str(run_dir),
            "--no-progress",
        ]
    )
    return float(_first_record(run_dir)["metrics"]["latency_p50_ms"]["value"])


def paired_p50_ms(model: Path, partner: Path, threads: int, pairs: int, run_dir: Path) -> float:
    _run(
        [
            sys.executable,
            "-m",
            "accelbench.cli",
            "ab",
            str(model),
            str(partner),
            "--profile",
            "host",
            "--threads",
            str(threads),
            "--pairs",
            str(pairs),
            "--rounds",
            "1",
            "--format",
            "json",
            "--out",
            str(run_dir),
        ],
        ok=(0, 1),  # 1: the partner is slower or faster, which is not what is read here
    )
    return float(_first_record(run_dir)["metrics"]["base_p50_ms"]["value"])


def _summary(ratios: list[float]) -> str:
    return (
        f"{statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f}, "
        f"{len(ratios)} rounds)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--threads", default="1")
    ap.add_argument("--preset", default="quick", help="accelbench bench's preset (quick)")
    ap.add_argument("--runs", type=int, default=300, help="runs of the LiteRT tool (300)")
    ap.add_argument("--pairs", type=int, default=300, help="pairs of the ab side (300)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    models = args.models or [fetch() / name for name in DEFAULT_MODELS]
    if len(models) < 2:
        ap.error("give two models or more: each is paired with the next in `ab`")
    order = random.Random(args.seed)
    print(
        f"{'model':36} {'thr':>3} {'tool p50':>9} {'bench/tool (median, range)':>32} "
        f"{'paired/tool (median, range)':>32}"
    )
    worst = 0.0
    with tempfile.TemporaryDirectory() as t:
        tmp, n = Path(t), 0
        for index, model in enumerate(models):
            partner = models[(index + 1) % len(models)]
            for threads in (int(x) for x in args.threads.split(",")):
                tool_ms, bench_ratio, paired_ratio = [], [], []
                for _ in range(args.rounds):
                    n += 1
                    sides = ["tool", "bench", "paired"]
                    order.shuffle(sides)
                    got = {}
                    for side in sides:
                        if side == "tool":
                            got[side] = litert_tool_median_ms(
                                model, threads, args.runs, tmp / f"tool{n}.json"
                            )
                        elif side == "bench":
                            got[side] = bench_p50_ms(model, threads, args.preset, tmp / f"b{n}")
                        else:
                            got[side] = paired_p50_ms(
                                model, partner, threads, args.pairs, tmp / f"p{n}"
                            )
                    tool_ms.append(got["tool"])
                    bench_ratio.append(got["bench"] / got["tool"])
                    paired_ratio.append(got["paired"] / got["tool"])
                worst = max(worst, abs(statistics.median(bench_ratio) - 1))
                print(
                    f"{model.name:36} {threads:>3} {statistics.median(tool_ms):>6.3f} ms "
                    f"{_summary(bench_ratio):>32} {_summary(paired_ratio):>32}",
                    flush=True,
                )
    print(f"largest |median bench/tool - 1|: {worst * 100:.1f}% (target: within 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
