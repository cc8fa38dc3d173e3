"""Keras -> .tflite converters: fp32, dynamic range, float16, full-integer int8 and int16x8."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from accelbench.optimizers.base import RANK_CONVERT, OptimizationState, Transform

CALIBRATION_SAMPLES = 200


class Converter(Transform):
    """Writes ``<out_dir>/<artifact name>.tflite``, the TFLite converter set up by a subclass.

    After pruning, the float converters add ``Optimize.EXPERIMENTAL_SPARSITY``: the converter then
    stores sparse kernels in TFLite's sparse format behind DENSIFY ops, which is what XNNPACK's
    sparse inference reads. (XNNPACK runs sparse kernels only for the Fast Sparse ConvNets
    pattern, 1x1 convolutions at >= 2/3 zeros; elsewhere it densifies once at load, and the file
    is still smaller.) The notes say whether the flag was passed and whether sparse weights
    came out.
    """

    rank: ClassVar[int] = RANK_CONVERT
    float_output: ClassVar[bool] = False  # a float model, where sparse weights can pay off

    def configure(self, converter: Any, state: OptimizationState, tf: Any) -> dict[str, Any]:
        """Set the converter's options; returns notes describing them."""
        raise NotImplementedError

    def supports(self, model: Any) -> str | None:
        if not callable(model) or not hasattr(model, "inputs"):
            return (
                f"the TFLite converter needs a Keras model, not a {type(model).__name__}; "
                "load it with accelbench.optimizers.load_user_model"
            )
        return None

    def apply(self, state: OptimizationState) -> OptimizationState:
        from accelbench.keras_compat import keras_tflite_converter, legacy_keras

        legacy_keras()  # TF must see TF_USE_LEGACY_KERAS before it loads
        import tensorflow as tf

        start = time.perf_counter()
        with keras_tflite_converter(state.model) as converter:
            notes = self.configure(converter, state, tf)
            sparsity_flag = bool(self.float_output and state.pruned)
            if sparsity_flag:
                converter.optimizations = [
                    *converter.optimizations,
                    tf.lite.Optimize.EXPERIMENTAL_SPARSITY,
                ]
            notes["optimizations"] = [str(getattr(o, "name", o)) for o in converter.optimizations]
            path, _ = convert_to_file(converter, state.out_dir, state.artifact_name)
        notes["convert_s"] = time.perf_counter() - start  # the SavedModel's writing included
        notes["sparsity_flag"] = sparsity_flag
        notes["sparse_weights"] = _has_densify(path)
        return state.after(self.name, notes, tflite_path=path)


def _has_densify(path: Any) -> bool:
    from accelbench.runtimes.tflite_cost import analyze_tflite

    return analyze_tflite(path).op_counts.get("DENSIFY", 0) > 0


def representative_dataset(state: OptimizationState, samples: int = CALIBRATION_SAMPLES) -> Any:
    """A seeded random subset of the TRAINING inputs, one sample a step, for calibration."""
    rng = np.random.default_rng(state.seed)
    count = min(samples, len(state.x_train))
    chosen = np.sort(rng.choice(len(state.x_train), size=count, replace=False))
    x = np.asarray(state.x_train)

    def generate() -> Any:
        for i in chosen:
            yield [x[i : i + 1].astype(np.float32)]

    return generate, count


@dataclass(frozen=True, repr=False)
class Fp32(Converter):
    """Plain float32 conversion: the baseline every other artifact is compared with."""

    name: ClassVar[str] = "fp32"  # type: ignore[misc]
    float_output: ClassVar[bool] = True

    def configure(self, converter: Any, state: OptimizationState, tf: Any) -> dict[str, Any]:
        converter.optimizations = []
        return {"weights": "float32", "inference_io": "float32"}


@dataclass(frozen=True, repr=False)
class Dynamic(Converter):
    """Dynamic-range quantization: int8 weights, float activations (no calibration data).

    The converter leaves small tensors (under 1024 elements) in float32.
    """

    name: ClassVar[str] = "dynamic"  # type: ignore[misc]

    def configure(self, converter: Any, state: OptimizationState, tf: Any) -> dict[str, Any]:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return {"weights": "int8 (large tensors)", "inference_io": "float32"}


@dataclass(frozen=True, repr=False)
class Float16(Converter):
    """Float16 weights, dequantized to float32 at load; compute stays float32 on most CPUs."""

    name: ClassVar[str] = "float16"  # type: ignore[misc]
    float_output: ClassVar[bool] = True

    def configure(self, converter: Any, state: OptimizationState, tf: Any) -> dict[str, Any]:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        return {"weights": "float16", "inference_io": "float32"}


@dataclass(frozen=True, repr=False)
class Int8(Converter):
    """Full-integer int8: int8 weights and activations, int8 input and output tensors.

    A post-training model is calibrated on ``CALIBRATION_SAMPLES`` training inputs; a
    quantization-aware-trained model already carries its ranges and converts with
    ``Optimize.DEFAULT`` alone.
    """

    name: ClassVar[str] = "int8"  # type: ignore[misc]

    def configure(self, converter: Any, state: OptimizationState, tf: Any) -> dict[str, Any]:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        if state.quantization_aware and not state.qat_float_layers:
            return {"weights": "int8", "inference_io": "int8", "calibration": "QAT ranges"}
        # Layers QAT left float (no fake-quant ranges: Rescaling, Multiply) are calibrated on
        # the training data like a post-training model, so the whole graph is int8.
        generate, count = representative_dataset(state)
        converter.representative_dataset = generate
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        calibration = "training data"
        if state.quantization_aware:
            calibration = (
                f"QAT ranges; training data for the {len(state.qat_float_layers)} layers QAT "
                "left float"
            )
        return {
            "weights": "int8",
            "inference_io": "int8",
            "calibration": calibration,
            "representative_samples": count,
        }


@dataclass(frozen=True, repr=False)
class Int16x8(Converter):
    """16-bit activations with 8-bit weights: near-float accuracy where int8 loses too much.

    Input and output stay float32 (the model quantizes them itself). Its kernels are
    reference implementations in most interpreters, so expect it slower than int8.
    """

    name: ClassVar[str] = "int16x8"  # type: ignore[misc]

    def configure(self, converter: Any, state: OptimizationState, tf: Any) -> dict[str, Any]:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        generate, count = representative_dataset(state)
        converter.representative_dataset = generate
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8
        ]
        return {
            "weights": "int8",
            "activations": "int16",
            "inference_io": "float32",
            "calibration": "training data",
            "representative_samples": count,
        }


fp32 = Fp32()
dynamic = Dynamic()
float16 = Float16()
int8 = Int8()
int16x8 = Int16x8()

CONVERTERS: dict[str, Converter] = {c.name: c for c in (fp32, dynamic, float16, int8, int16x8)}


def convert_to_file(converter: Any, out_dir: Path, name: str) -> tuple[Path, float]:
    """Run a configured TFLiteConverter and write ``out_dir/name.tflite``; (path, seconds)."""
    start = time.perf_counter()
    with warnings.catch_warnings():
        # int8 I/O makes TF warn that input statistics were not given: calibration gives them.
        warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
        flatbuffer = converter.convert()
    seconds = time.perf_counter() - start
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.tflite"
    path.write_bytes(flatbuffer)
    return path, seconds
