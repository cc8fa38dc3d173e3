"""How long the Keras 3 -> tf_keras rebuild takes for Keras Applications models (random weights).

Saves each model with Keras 3, loads it as accelbench loads a user's model, and times
`bridge_to_tf_keras` (the rebuild, the weight copy and the output check on 32 samples) a few
times, printing each time, the median and the largest output difference. Target: under 5 s for
MobileNetV2 (alpha 0.35, 96x96).

    python scripts/bench_keras_bridge.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

MODELS = (("MobileNetV2", 96, {"alpha": 0.35}), ("ResNet50", 32, {}), ("EfficientNetB0", 32, {}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    import keras
    import numpy as np

    from accelbench.optimizers.keras_bridge import bridge_to_tf_keras
    from accelbench.optimizers.user_models import load_user_model

    with tempfile.TemporaryDirectory() as tmp:
        for name, side, extra in MODELS:
            keras.utils.set_random_seed(0)
            model = getattr(keras.applications, name)(
                input_shape=(side, side, 3),
                weights=None,
                classes=10,
                classifier_activation=None,
                **extra,
            )
            path = Path(tmp) / f"{name}.keras"
            model.save(path)
            loaded = load_user_model(path)
            x = np.random.default_rng(0).uniform(0, 1, (32, side, side, 3)).astype(np.float32)
            times, diff = [], 0.0
            for _ in range(args.repeats):
                started = time.perf_counter()
                result = bridge_to_tf_keras(loaded, x)
                times.append(time.perf_counter() - started)
                diff = max(diff, result.max_abs_diff or 0.0)
            print(
                f"{name:15} {side}x{side}  {len(loaded.layers):4} layers  bridge "
                f"{' / '.join(f'{t:.2f}' for t in times)} s (median {statistics.median(times):.2f})"
                f"  max |diff| {diff:.2e}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
