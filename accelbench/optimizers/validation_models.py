"""The validation table's architectures as .tflite files and per-op cost tables, cached.

Each row of ``accelbench/hardware_profiles/validation.yaml`` names an architecture, built with
Keras Applications (``weights=None``: latency does not depend on trained weights), converted to a
.tflite at the row's precision (int8 calibrated on random data) and reduced to a per-op cost
table (JSON); both are cached under ``<cache>/projection/`` by architecture, input size and
precision, so a check or a fit after the first takes seconds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.hardware_profiles.validation import ValidationRow

CACHE_FOLDER = "projection"
# Random calibration samples for int8: ranges only shape the graph's scales, not its cost.
CALIBRATION_SAMPLES = 2


def cache_folder() -> Path:
    """Where built .tflite files and their per-op cost tables are kept."""
    from accelbench.hardware_profiles.calibrate import cache_dir

    return cache_dir() / CACHE_FOLDER


def cost_table_path(key: str) -> Path:
    return cache_folder() / f"{key}.json"


def cached_cost_table(row: ValidationRow, *, build: bool = True) -> dict[str, Any] | None:
    """The row's per-op cost table: from the cache, else built (TensorFlow) when ``build``."""
    path = cost_table_path(row.key)
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    if not build:
        return None
    from accelbench.hardware_profiles.projection import OpTable

    tflite = build_tflite(row.architecture, row.input_size, row.precision)
    table = OpTable.from_tflite(tflite).to_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, separators=(",", ":")), encoding="utf-8")
    return table


def build_tflite(architecture: str, input_size: int, precision: str) -> Path:
    """Build (or reuse) the .tflite of a Keras Applications architecture at ``precision``."""
    path = cache_folder() / f"{architecture}-{input_size}-{precision}.tflite"
    if path.is_file():
        return path
    from accelbench.keras_compat import legacy_keras, tflite_for_timing

    try:
        keras = legacy_keras()
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"building the validation model {architecture} needs TensorFlow and tf_keras "
            f"({exc.name} is missing); install them, or pass --no-build to use cached models only"
        ) from None

    keras.utils.set_random_seed(0)
    if architecture == "digits_cnn":
        from accelbench.models.architectures import digits_cnn

        model = digits_cnn(input_shape=(input_size, input_size, 1))
    else:
        build = getattr(keras.applications, architecture, None)
        if build is None:
            raise UsageError(
                f"validation architecture '{architecture}' is not in Keras Applications; "
                "use a name such as MobileNet, ResNet50 or DenseNet121"
            )
        model = build(weights=None, input_shape=(input_size, input_size, 3))
    if precision not in ("fp32", "int8"):
        raise UsageError(f"validation precision '{precision}' is not built; use fp32 or int8")
    data = tflite_for_timing(model, precision, samples=CALIBRATION_SAMPLES)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
