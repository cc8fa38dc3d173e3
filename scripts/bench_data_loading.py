"""Benchmark: reading a user's image folder for `optimize` vs the input-pipeline benchmark's best.

Target: `load_user_data` on a folder of 2,000 32x32 PNGs (one sub-folder per class) is no slower
than one pass of the input-pipeline benchmark's best PNG setting over the same images. That
setting is ``best`` without its cache (parallel, interleave, vectorized, prefetch,
nondeterministic): the cache pays only from a second epoch, and loading reads the files once.
``best`` itself, whose first epoch also fills the cache, is timed too, and so is a steady-state
epoch of the built ``best``-without-cache pipeline (``best_streaming_epoch``: built and traced
once before the rounds, as the input-pipeline scenario's warm-up epoch does), the figure that
scenario reports.

Both sides run in one process, in rounds, in a shuffled order each round (the paired design of
DESIGN.md); the ratio is the median of per-round ratios loader / pipeline (below 1: the loader
is faster). Each side builds its tf.data pipeline inside its timing, as `optimize` does.

    python scripts/bench_data_loading.py [--images 2000] [--side 32] [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

CLASSES = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000, help="PNG files to read")
    parser.add_argument("--side", type=int, default=32, help="image height and width")
    parser.add_argument("--rounds", type=int, default=7, help="paired rounds")
    parser.add_argument("--batch-size", type=int, default=256, help="the pipeline's batch")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import numpy as np

    from accelbench.benchmarks import input_pipeline as ip
    from accelbench.benchmarks.input_formats import reader_for, write_format
    from accelbench.hardware_profiles.host import cpu_info
    from accelbench.models.data import load_user_data

    shape = (args.side, args.side, 3)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (args.images, *shape)).astype(np.float32) / 255.0
    y = np.arange(args.images) % CLASSES
    folder = Path(tempfile.mkdtemp(prefix="bench-data-loading-"))
    try:
        written = write_format("png", x, y, folder)
        # The same PNG bytes in the layout `optimize --data` reads: one sub-folder per class.
        images = folder / "images"
        for png in (folder / "png").rglob("*.png"):
            label = png.stem.split("_")[-1]
            (images / label).mkdir(parents=True, exist_ok=True)
            os.link(png, images / label / png.name)
        reader = reader_for(written, shape)
        streaming = ip.PIPELINE_FEATURES["best"] - {"cache"}

        def loader() -> int:
            data = load_user_data(images, shape, num_classes=CLASSES)
            return len(data.x_train) + len(data.x_test)

        def pipeline(features: frozenset[str]) -> int:
            ds = ip.build_pipeline(reader, "best", args.batch_size, features=features)
            return ip.count_examples(ds)

        built = ip.build_pipeline(reader, "best", args.batch_size, features=streaming)
        sides = {
            "loader": loader,
            "best_streaming": lambda: pipeline(streaming),
            "best_first_epoch": lambda: pipeline(ip.PIPELINE_FEATURES["best"]),
            "best_streaming_epoch": lambda: ip.count_examples(built),
        }
        for side in sides.values():  # warm-up: imports, first graph traces
            assert side() == args.images
        times: dict[str, list[float]] = {name: [] for name in sides}
        order = list(sides)
        for _ in range(args.rounds):
            random.shuffle(order)
            for name in order:
                start = time.perf_counter()
                sides[name]()
                times[name].append(time.perf_counter() - start)
        print(
            f"host: {os.cpu_count()} cores ({cpu_info()['cpu_model']}); {args.images} PNGs "
            f"{args.side}x{args.side} RGB, {args.rounds} paired rounds, median"
        )
        for name, values in times.items():
            print(
                f"  {name:20s} {statistics.median(values):7.3f} s   "
                f"{args.images / statistics.median(values):8.0f} images/s"
            )
        verdict = True
        for other in ("best_streaming", "best_first_epoch", "best_streaming_epoch"):
            ratios = [a / b for a, b in zip(times["loader"], times[other], strict=True)]
            ratio = statistics.median(ratios)
            print(
                f"  loader / {other}: {ratio:.2f} (rounds {min(ratios):.2f} .. {max(ratios):.2f})"
            )
            verdict = verdict and (other != "best_streaming" or ratio <= 1.05)
        print(
            "target (loader no slower than best_streaming, 5% noise):",
            "met" if verdict else "NOT met",
        )
        return 0 if verdict else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
