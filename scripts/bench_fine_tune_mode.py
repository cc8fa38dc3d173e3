"""Eager or graph fine-tuning: which is faster for a few steps of a tfmot-wrapped model?

`accelbench.optimizers.training` fine-tunes eagerly when the run has at most
``EAGER_MAX_STEPS`` steps, since tracing a wrapped network into a graph costs more than a few
eager steps. This script measures both modes for magnitude pruning of a small CNN (digits,
8x8) and of a Keras Applications MobileNetV2 (alpha 0.35, 32x32), at several step counts, and
prints the fine-tuning seconds of each (``fine_tune_s`` in the artifact's notes: the tfmot fit
alone, no conversion) and the ratio graph / eager. Above 1, eager was faster.

    python scripts/bench_fine_tune_mode.py [--steps 1,5,20,60]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _models(keras: object) -> list[tuple[str, object, tuple[int, ...]]]:
    k = keras
    layers = k.layers  # type: ignore[attr-defined]
    small = k.Sequential(  # type: ignore[attr-defined]
        [
            k.Input((8, 8, 1)),  # type: ignore[attr-defined]
            layers.Conv2D(16, 3, activation="relu"),
            layers.Conv2D(16, 3, activation="relu"),
            layers.Flatten(),
            layers.Dense(10),
        ]
    )
    mobilenet = k.applications.MobileNetV2(  # type: ignore[attr-defined]
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10, classifier_activation=None
    )
    return [("small CNN 8x8", small, (8, 8, 1)), ("MobileNetV2 32x32", mobilenet, (32, 32, 3))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", default="1,5,20,60", help="comma-separated step counts")
    args = ap.parse_args()
    steps = [int(s) for s in args.steps.split(",")]
    from accelbench.keras_compat import legacy_keras

    keras = legacy_keras()
    import numpy as np

    from accelbench.optimizers import optimize, training

    batch = 32
    rng = np.random.default_rng(0)
    print(f"{'model':18} {'steps':>5} {'eager s':>8} {'graph s':>8} {'graph/eager':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, shape in _models(keras):
            model.compile(  # type: ignore[attr-defined]
                optimizer="adam",
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
            for count in steps:
                x = rng.uniform(0, 1, (count * batch, *shape)).astype(np.float32)
                y = rng.integers(0, 10, count * batch)
                seconds = {}
                for mode, limit in (("eager", 10**9), ("graph", 0)):
                    training.EAGER_MAX_STEPS = limit
                    made = optimize(
                        model,
                        "prune50",
                        (x, y),
                        Path(tmp) / f"{mode}{count}",
                        fine_tune_epochs=1,
                        batch_size=batch,
                    )
                    seconds[mode] = made.notes["prune50"]["fine_tune_s"]
                ratio = seconds["graph"] / seconds["eager"]
                print(
                    f"{name:18} {count:5d} {seconds['eager']:8.2f} {seconds['graph']:8.2f} "
                    f"{ratio:11.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
