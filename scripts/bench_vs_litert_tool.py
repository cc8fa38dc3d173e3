"""accelbench's SingleStream p50 against LiteRT's own benchmark tool, same model and thread count.

For each model and thread count, runs `python -m ai_edge_litert.tools.benchmark_litert_model`
(its median) and `accelbench bench --scenario single-stream` (LoadGen's p50), alternating the two
so that machine noise hits both, and prints the ratio. Target: within 5%.

    python scripts/bench_vs_litert_tool.py [--threads 1,2] [--preset standard] [MODEL ...]

With no models it uses real MediaPipe models (fetched once by scripts/fetch_real_models.py).
"""

from __future__ import annotations

import argparse
import json
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
)


def litert_tool_median_ms(model: Path, threads: int, runs: int, tmp: Path) -> float:
    out = tmp / "tool.json"
    subprocess.run(
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
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    return float(json.loads(out.read_text())["latency"]["median_ms"])


def accelbench_p50_ms(model: Path, threads: int, preset: str, tmp: Path, n: int) -> float:
    run_dir = tmp / f"run{n}"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "accelbench.cli",
            "bench",
            str(model),
            "--threads",
            str(threads),
            "--scenario",
            "single-stream",
            "--preset",
            preset,
            "--out",
            str(run_dir),
            "--no-progress",
        ],  # fmt: skip
        check=True,
        capture_output=True,
    )
    record = json.loads((run_dir / "records.jsonl").read_text().splitlines()[0])
    return float(record["metrics"]["latency_p50_ms"]["value"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", type=Path)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--preset", default="standard")
    ap.add_argument("--runs", type=int, default=500, help="runs of the LiteRT tool")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    models = args.models or [fetch() / name for name in DEFAULT_MODELS]
    print(f"{'model':40} {'thr':>3} {'litert tool p50':>16} {'accelbench p50':>15} {'ratio':>6}")
    worst = 0.0
    with tempfile.TemporaryDirectory() as t:
        tmp, n = Path(t), 0
        for model in models:
            for threads in (int(x) for x in args.threads.split(",")):
                tool, ours = [], []
                for _ in range(args.repeats):
                    tool.append(litert_tool_median_ms(model, threads, args.runs, tmp))
                    n += 1
                    ours.append(accelbench_p50_ms(model, threads, args.preset, tmp, n))
                a, b = statistics.median(tool), statistics.median(ours)
                worst = max(worst, abs(b / a - 1))
                print(f"{model.name:40} {threads:>3} {a:>13.3f} ms {b:>12.3f} ms {b / a:>6.3f}")
    print(f"largest difference: {worst * 100:.1f}% (target: within 5%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
