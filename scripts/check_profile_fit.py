"""Is a projection from a profile fitted on this host within 20% of the host's measured p50?

Fits (or reuses) a profile of this host with `accelbench profiles fit`, then for five
architectures that are not among its micro-kernels (Keras Applications, ``weights=None``, 224×224,
the .tflite files the validation module builds and caches) prints the projected latency beside
the measured single-stream p50 and their ratio. The measurements are interleaved in one process:
each round calls every model a few times in turn, so that the machine's drift (up to 2× within a
minute on a shared host) falls on all of them alike. Same interpreter, threads and delegate as a
cell: LiteRT with XNNPACK.

    PYTHONPATH=. python scripts/check_profile_fit.py [--threads 1] [--profile NAME] [--refit]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

# (Keras Applications name, precision): ones with depthwise and squeeze-excite blocks, dense
# concatenations, wide Inception modules and an int8 residual network.
ARCHITECTURES = (
    ("MobileNetV2", "fp32"),
    ("ResNet50", "int8"),
    ("DenseNet121", "int8"),
    ("EfficientNetB0", "fp32"),
    ("InceptionV3", "fp32"),
)
INPUT_SIZE = 224
GOAL = 0.20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="threads of the fit and the runs")
    ap.add_argument("--profile", default="this-host", help="the fitted profile's name")
    ap.add_argument("--refit", action="store_true", help="fit the profile again first")
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    ap.add_argument("--calls", type=int, default=3, help="timed calls per model per round")
    args = ap.parse_args()

    from accelbench.hardware_profiles import fitted_profile_path, load_profile
    from accelbench.hardware_profiles.fit import fit_host_profile
    from accelbench.hardware_profiles.projection import OpTable, project
    from accelbench.optimizers.validation_models import build_tflite
    from accelbench.runtimes import open_runtime
    from accelbench.runtimes.inputs import make_inputs

    if args.refit or not fitted_profile_path(args.profile).is_file():
        started = time.monotonic()
        path, _ = fit_host_profile(args.profile, args.threads)
        print(f"fitted {path} in {time.monotonic() - started:.0f} s")
    profile = load_profile(args.profile)
    models = []
    for architecture, precision in ARCHITECTURES:
        path = build_tflite(architecture, INPUT_SIZE, precision)
        projected = project(OpTable.from_tflite(path), profile).latency_ms
        runtime = open_runtime(path, "litert", threads=args.threads)
        sample = make_inputs(runtime.inputs(), 1, seed=0)[0]
        runtime.run(sample)
        models.append((f"{architecture} {precision}", projected, runtime, sample, []))
    try:
        for _ in range(args.rounds):
            for _, _, runtime, sample, times in models:
                for _ in range(args.calls):
                    start = time.perf_counter()
                    runtime.run(sample)
                    times.append((time.perf_counter() - start) * 1e3)
    finally:
        for _, _, runtime, _, _ in models:
            runtime.close()

    print(
        f"{platform.processor() or platform.machine()}, {args.threads} thread(s), "
        f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, profile {args.profile}"
    )
    print(f"{'architecture':24} {'projected ms':>12} {'measured p50':>12} {'ratio':>6}  within")
    within = 0
    for name, projected, _, _, times in models:
        measured = statistics.median(times)
        ratio = projected / measured
        ok = abs(ratio - 1) <= GOAL
        within += ok
        print(f"{name:24} {projected:12.3f} {measured:12.3f} {ratio:6.2f}  {'yes' if ok else 'no'}")
    print(f"{within} of {len(models)} within {GOAL:.0%} of the measured p50")
    return 0 if within >= len(models) - 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
