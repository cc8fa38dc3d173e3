"""What LoadGen itself adds to a bare interpreter call: invoke() in a loop vs invoke() in a SUT.

Runs one .tflite's `invoke()` (LiteRT, 1 thread, same input every time) timed in a plain loop,
then as a minimal LoadGen SingleStream system under test (no accelbench code, no input copy), and
prints both medians and their ratio. The difference is LoadGen's own per-query cost; accelbench's
p50 adds the input copy, the output copy and 64 distinct inputs on top.

    python scripts/bench_bare_sut.py [MODEL.tflite] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import mlperf_loadgen as lg
import numpy as np
from ai_edge_litert.interpreter import Interpreter

sys.path.insert(0, str(Path(__file__).parent))
from fetch_real_models import fetch  # noqa: E402


def loop_median_ms(interpreter: Interpreter, n: int = 1500) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter_ns()
        interpreter.invoke()
        times.append(time.perf_counter_ns() - start)
    return float(np.median(times)) / 1e6


def loadgen_p50_ms(interpreter: Interpreter) -> float:
    response = np.zeros(16, np.float32)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.SingleStream
    settings.mode = lg.TestMode.PerformanceOnly
    settings.single_stream_expected_latency_ns = 1_000_000
    settings.min_query_count = 1000
    settings.min_duration_ms = 1500

    def issue(queries):
        for query in queries:
            interpreter.invoke()
            lg.QuerySamplesComplete(
                [lg.QuerySampleResponse(query.id, response.ctypes.data, response.nbytes)]
            )

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(64, 64, lambda _: None, lambda _: None)
    with tempfile.TemporaryDirectory() as out_dir:
        output = lg.LogOutputSettings()
        output.outdir = out_dir
        output.copy_summary_to_stdout = False
        log_settings = lg.LogSettings()
        log_settings.log_output = output
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
        for line in (Path(out_dir) / "mlperf_log_summary.txt").read_text().splitlines():
            if line.startswith("50.00 percentile latency"):
                return int(line.split(":")[1]) / 1e6
    raise RuntimeError("LoadGen's summary has no 50th percentile")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", nargs="?", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    model = args.model or fetch() / "face_detection_short_range.tflite"
    interpreter = Interpreter(model_path=str(model), num_threads=1)
    interpreter.allocate_tensors()
    for _ in range(args.repeats):
        bare, in_sut = loop_median_ms(interpreter), loadgen_p50_ms(interpreter)
        print(
            f"{model.name}: invoke() loop {bare:.4f} ms, in a LoadGen SUT {in_sut:.4f} ms, "
            f"ratio {in_sut / bare:.3f}, difference {(in_sut - bare) * 1000:+.0f} us"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
