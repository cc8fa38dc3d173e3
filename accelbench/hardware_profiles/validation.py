"""The published figures a projection is checked against, and the graphs they were measured on.

``validation.yaml`` (package data) lists each published row. Its architecture is built with Keras
Applications (``weights=None``: latency does not depend on trained weights), converted to a
.tflite at the row's precision (int8 calibrated on random data) and reduced to a per-op cost
table (JSON); both are cached under ``<cache>/projection/`` by architecture, input size and
precision, so a check or a fit after the first takes seconds.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from accelbench.errors import UsageError

VALIDATION_FILE = Path(__file__).parent / "validation.yaml"
CACHE_FOLDER = "projection"
# Random calibration samples for int8: ranges only shape the graph's scales, not its cost.
CALIBRATION_SAMPLES = 2


@dataclass(frozen=True)
class ValidationRow:
    """One published figure: the model, the device profile, the scenario and where it is from."""

    architecture: str
    input_size: int
    precision: str
    profile: str
    scenario: str
    statistic: str
    published: float
    source: str
    url: str
    date: str
    runtime: str | None = None

    @property
    def key(self) -> str:
        """The cached graph's name: architecture, input size and precision."""
        return f"{self.architecture}-{self.input_size}-{self.precision}"

    @property
    def row_id(self) -> str:
        """Names the row among the table's: profile, graph and scenario."""
        return f"{self.profile}:{self.key}:{self.scenario}"

    @property
    def unit(self) -> str:
        return "samples/s" if self.scenario == "offline" else "ms"

    def label(self) -> str:
        runtime = f" ({self.runtime})" if self.runtime else ""
        return f"{self.architecture} {self.input_size} {self.precision}{runtime}"


def load_rows(path: Path = VALIDATION_FILE) -> list[ValidationRow]:
    """Every row of the validation table."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [ValidationRow(**{**row, "date": str(row["date"])}) for row in data]


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
    import numpy as np

    from accelbench.keras_compat import legacy_keras

    try:
        keras = legacy_keras()
        import tensorflow as tf
    except ImportError as exc:
        raise UsageError(
            f"building the validation model {architecture} needs TensorFlow and tf_keras "
            f"({exc.name} is missing); install them, or pass --no-build to use cached models only"
        ) from None

    keras.utils.set_random_seed(0)
    if architecture == "digits_cnn":
        from accelbench.models.architectures import digits_cnn

        model = digits_cnn(input_shape=(input_size, input_size, 1))
        shape = (input_size, input_size, 1)
    else:
        build = getattr(keras.applications, architecture, None)
        if build is None:
            raise UsageError(
                f"validation architecture '{architecture}' is not in Keras Applications; "
                "use a name such as MobileNet, ResNet50 or DenseNet121"
            )
        shape = (input_size, input_size, 3)
        model = build(weights=None, input_shape=shape)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "int8":
        rng = np.random.default_rng(0)

        def representative() -> Any:
            for _ in range(CALIBRATION_SAMPLES):
                yield [rng.random((1, *shape), dtype=np.float32)]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    elif precision != "fp32":
        raise UsageError(f"validation precision '{precision}' is not built; use fp32 or int8")
    data = converter.convert()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def ratio_error(ratio: float) -> float:
    """How far off a projected/published ratio is, as a factor of 1 or more (0.5 and 2 are 2×)."""
    return max(ratio, 1 / ratio)


def summarise(errors: list[float]) -> dict[str, float]:
    """Worst and median error factor of a device's rows."""
    return {"worst": max(errors), "median": statistics.median(errors)}
