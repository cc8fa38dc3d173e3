"""What an optimization did to a .tflite: size, gzip size, sparsity, unique weights, dtypes."""

from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError

# Ops whose second input is the kernel (filter or weight matrix), in TFLite layout.
WEIGHTED_OPS = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "FULLY_CONNECTED",
    "CONV_3D",
    "TRANSPOSE_CONV",
    "BATCH_MATMUL",
)


@dataclass(frozen=True)
class KernelWeights:
    """One conv/dense kernel as stored in the file: dense values in TFLite layout.

    ``values`` are the stored numbers (int8 for quantized kernels, float16 for float16 ones), not
    dequantized; ``zero_point`` is what stands for 0.0 (per channel along ``channel_axis`` when
    the kernel has one scale per channel, else a scalar).
    """

    name: str
    op: str
    dtype: str
    values: np.ndarray
    zero_point: np.ndarray
    channel_axis: int | None
    sparse_encoded: bool

    @property
    def zeros(self) -> int:
        """Weights equal to 0.0; a quantized weight is zero when it equals its zero point."""
        return int(np.count_nonzero(self.values == self._broadcast(self.zero_point)))

    @property
    def unique_values(self) -> int:
        """Distinct stored values; per channel (the most in any channel) under per-channel scales.

        Each channel has its own scale, so one shared float centroid becomes a different integer
        in each channel: per channel is where clustering's limit shows.
        """
        if self.channel_axis is None:
            return len(np.unique(self.values))
        channels = np.moveaxis(self.values, self.channel_axis, 0)
        moved = channels.reshape(channels.shape[0], -1)
        return max(len(np.unique(channel)) for channel in moved)

    def _broadcast(self, zero_point: np.ndarray) -> np.ndarray:
        if self.channel_axis is None or zero_point.size <= 1:
            return zero_point.reshape(()) if zero_point.size else np.zeros((), self.values.dtype)
        shape = [1] * self.values.ndim
        shape[self.channel_axis] = -1
        return zero_point.reshape(shape)


def kernel_weights(path: str | Path) -> list[KernelWeights]:
    """Every conv/dense kernel in a .tflite's main graph, read with the interpreter.

    A kernel behind DEQUANTIZE (float16 weights) is read at its stored type; one behind DENSIFY
    (sparse-encoded by ``Optimize.EXPERIMENTAL_SPARSITY``) is read as the dense tensor DENSIFY
    produces, which needs one inference on zeros.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"model file '{path}' does not exist; check the path")
    interpreter = _interpreter(path, preserve=False)
    ops = interpreter._get_ops_details()
    if any(op["op_name"] == "DENSIFY" for op in ops):
        interpreter = _interpreter(path, preserve=True)
        for detail in interpreter.get_input_details():
            interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
        interpreter.invoke()
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    producers = {int(out): op for op in ops for out in op["outputs"] if out >= 0}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}

    kernels: list[KernelWeights] = []
    names: set[str] = set()
    for op in ops:
        inputs = [int(i) for i in op["inputs"]]
        if op["op_name"] not in WEIGHTED_OPS or len(inputs) < 2 or inputs[1] < 0:
            continue
        # Walk back from the op to the constant in the file: float16 kernels sit behind
        # DEQUANTIZE, sparse ones behind DENSIFY (sparse float16: DENSIFY then DEQUANTIZE).
        stored_index = values_index = inputs[1]
        producer = producers.get(stored_index)
        while producer is not None and producer["op_name"] in ("DEQUANTIZE", "DENSIFY"):
            if producer["op_name"] == "DENSIFY":
                values_index = stored_index  # DENSIFY's output is the dense kernel
            stored_index = int(producer["inputs"][0])
            producer = producers.get(stored_index)
        if producer is not None or stored_index in graph_inputs:
            continue  # an activation (BATCH_MATMUL of two tensors), not a weight
        if producers.get(values_index, {}).get("op_name") != "DENSIFY":
            values_index = stored_index
        stored = tensors[stored_index]
        values = np.array(interpreter.get_tensor(values_index))
        quant = stored.get("quantization_parameters") or {}
        scales = np.asarray(quant.get("scales", []))
        zero_points = np.asarray(quant.get("zero_points", []), dtype=np.int64)
        per_channel = scales.size > 1
        name = _unique(_layer_name(str(stored["name"]), op["op_name"], len(kernels)), names)
        kernels.append(
            KernelWeights(
                name=name,
                op=str(op["op_name"]),
                dtype=np.dtype(stored["dtype"]).name,
                values=values,
                zero_point=zero_points if zero_points.size else np.zeros(1, np.int64),
                channel_axis=int(quant.get("quantized_dimension", 0)) if per_channel else None,
                sparse_encoded=stored_index != values_index,
            )
        )
    return kernels


def artifact_stats(path: str | Path) -> dict[str, Any]:
    """Size, compressibility, sparsity, unique weights and precision of one .tflite.

    ``sparsity`` is the fraction of exact zeros among all conv/dense kernel weights (biases and
    other constants excluded); ``unique_weights_per_layer`` and ``weight_dtypes`` map each
    kernel's layer name to its count and stored dtype; ``float_ops``/``int_ops`` list the ops
    that compute in float (hybrid included) and in integer, from `analyze_tflite`.
    """
    from accelbench.runtimes.tflite_cost import analyze_tflite

    path = Path(path)
    cost = analyze_tflite(path)  # raises the UsageError for a missing or unreadable file
    data = path.read_bytes()
    kernels = kernel_weights(path)
    total = sum(k.values.size for k in kernels)
    interpreter = _interpreter(path, preserve=False)
    return {
        "model_bytes": len(data),
        "model_gzip_bytes": len(gzip.compress(data, compresslevel=9, mtime=0)),
        "sparsity": sum(k.zeros for k in kernels) / total if total else 0.0,
        "sparsity_per_layer": {k.name: k.zeros / k.values.size for k in kernels},
        "unique_weights_per_layer": {k.name: k.unique_values for k in kernels},
        "weight_dtypes": {k.name: k.dtype for k in kernels},
        "kernel_weights": total,
        "sparse_encoded_kernels": sum(k.sparse_encoded for k in kernels),
        "float_ops": cost.float_ops,
        "int_ops": cost.int_ops,
        "op_counts": cost.op_counts,
        "precision": cost.precision,
        "is_full_integer": cost.is_full_integer,
        "input_dtypes": [np.dtype(d["dtype"]).name for d in interpreter.get_input_details()],
        "output_dtypes": [np.dtype(d["dtype"]).name for d in interpreter.get_output_details()],
    }


def _interpreter(path: Path, *, preserve: bool) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - the slim device environment
        from tflite_runtime.interpreter import Interpreter, OpResolverType
    with warnings.catch_warnings():
        # preserve_all_tensors warns that it is for debugging: here it keeps DENSIFY's output.
        warnings.simplefilter("ignore")
        interpreter = Interpreter(
            model_path=str(path),
            # No XNNPACK: a delegate may repack the weights and hide the ops that hold them.
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
            experimental_preserve_all_tensors=preserve,
        )
    interpreter.allocate_tensors()
    return interpreter


# TF op names that hold a kernel: a fused tensor name's part with one of them names the layer.
_KERNEL_OP_PARTS = ("Conv2D", "MatMul", "depthwise", "Conv3D", "conv2d_transpose", "Tensordot")


def _layer_name(tensor_name: str, op_name: str, position: int) -> str:
    """The Keras layer path in a converter tensor name: 'sequential/conv2d/Conv2D' -> its layer.

    Converter names are TF op paths, fused ones joined with ';' (a conv fused with its batch
    norm and activation): the part naming the kernel op is the layer's. Path parts from the
    first TF op (capitalised, like Conv2D or LastValueQuant, or 'depthwise') on are dropped.
    """
    segments = tensor_name.split(";")
    chosen = next(
        (s for s in segments if any(p.startswith(_KERNEL_OP_PARTS) for p in s.split("/"))),
        segments[0],
    )
    parts = [p for p in chosen.split("/") if p]
    kept: list[str] = []
    for part in parts:
        if part[:1].isupper() or part == "depthwise":
            break
        kept.append(part)
    if len(kept) < 2:
        kept = parts[:2]
    return "/".join(kept) or f"{op_name.lower()}_{position}"


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}#{n}", n + 1
    taken.add(candidate)
    return candidate
