"""Benchmark: the image-decode pipeline (PNG and JPEG), best tf.data configuration vs naive.

Target: the best configuration reads at least 3x the naive one's examples/s on 2
cores. The data is a reference model's images written as PNG and JPEG files (ic_resnet8's
32x32 RGB by default); every configuration is measured by the same code the input-pipeline
scenario uses (`accelbench.benchmarks.input_pipeline.measure`: one warm-up epoch excluded, then
whole epochs for --seconds), --repeats times, and the median is printed. ``best`` caches the
decoded images in memory, so its measured epochs decode nothing; ``best-streaming`` is the same
without the cache (every epoch reads and decodes every file), which shows what parallelism alone
buys on this host's cores.

    python scripts/bench_input_pipeline.py [--model ic_resnet8] [--examples 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

TARGET_SPEEDUP = 3.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ic_resnet8", help="a reference image model")
    parser.add_argument("--examples", type=int, default=1024, help="images per format")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=1.0, help="measuring time per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from accelbench.benchmarks import input_pipeline as ip
    from accelbench.benchmarks.input_formats import reader_for, write_format
    from accelbench.hardware_profiles.host import cpu_info

    data = ip.load_examples(args.model, None)
    x, y = ip.take_examples(data["x"], data["y"], args.examples)
    configurations = {name: ip.PIPELINE_FEATURES[name] for name in ip.PIPELINES}
    configurations["best-streaming"] = ip.PIPELINE_FEATURES["best"] - {"cache"}
    print(
        f"host: {os.cpu_count()} cores ({cpu_info()['cpu_model']}); model {args.model}, "
        f"{args.examples} images {tuple(x.shape[1:])}, batch {args.batch_size}, "
        f"median of {args.repeats} x {args.seconds:g} s"
    )
    folder = tempfile.mkdtemp(prefix="bench-input-pipeline-")
    verdicts = []
    try:
        for fmt in ("png", "jpeg"):
            reader = reader_for(write_format(fmt, x, y, folder), data["input_shape"])
            speeds = {}
            for name, features in configurations.items():
                runs = [
                    ip.measure(
                        ip.build_pipeline(reader, name, args.batch_size, features=features),
                        min_seconds=args.seconds,
                    )["examples_per_s"]
                    for _ in range(args.repeats)
                ]
                speeds[name] = statistics.median(runs)
            print(f"\n{fmt} ({reader.written.bytes / 1e6:.2f} MB on disk)")
            for name, speed in speeds.items():
                print(f"  {name:18} {speed:>10,.0f} examples/s  {speed / speeds['naive']:5.2f}x")
            for name in ("best", "best-streaming"):
                ratio = speeds[name] / speeds["naive"]
                ok = ratio >= TARGET_SPEEDUP
                verdicts.append(ok)
                verdict = "meets" if ok else "misses"
                print(f"  {name} vs naive: {ratio:.2f}x ({verdict} the {TARGET_SPEEDUP:g}x target)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(verdicts[0::2]) else 1  # the target is for the best configuration


if __name__ == "__main__":
    sys.exit(main())
