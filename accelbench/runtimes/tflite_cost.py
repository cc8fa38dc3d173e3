"""What a .tflite graph costs: FLOPs per op, weight and activation bytes, and its precision.

Reads the model through the interpreter's own tensor and op tables, so it needs only numpy and
one interpreter package (ai-edge-litert, else tflite-runtime) and runs on the edge device too.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

try:  # inside accelbench, bad input is a UsageError; copied alone to a device, a ValueError
    from accelbench.errors import UsageError as _ModelError
except ImportError:  # pragma: no cover - only on a device without accelbench
    _ModelError = ValueError  # type: ignore[assignment,misc]

_FLOAT_DTYPES = {"float16", "float32", "float64", "bfloat16"}
_QUANTIZED_DTYPES = {"int8", "uint8", "int16", "int4"}
# DENSIFY expands sparse-encoded constant weights once at load, like DEQUANTIZE of float16.
_CONVERT_OPS = {"QUANTIZE", "DEQUANTIZE", "DENSIFY"}

# FLOPs = one per output element.
# fmt: skip below: 38 names packed as a paragraph, not one per line.
_ELEMENTWISE_OPS = {
    "ADD", "SUB", "MUL", "DIV", "SQUARED_DIFFERENCE", "MAXIMUM", "MINIMUM", "POW", "FLOOR_DIV",
    "FLOOR_MOD", "RELU", "RELU6", "RELU_N1_TO_1", "RELU_0_TO_1", "LOGISTIC", "TANH",
    "HARD_SWISH", "LEAKY_RELU", "PRELU", "ELU", "GELU", "EXP", "LOG", "SQRT", "RSQRT", "SQUARE",
    "ABS", "NEG", "SIN", "COS", "SOFTMAX", "LOG_SOFTMAX", "FLOOR", "CEIL", "ROUND", "SIGN",
    "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR",
}  # fmt: skip
# FLOPs = one per input element (reductions, pooling, normalisation).
# fmt: skip below: 13 names packed as a paragraph, not one per line.
_REDUCING_OPS = {
    "MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD", "AVERAGE_POOL_2D", "MAX_POOL_2D",
    "L2_POOL_2D", "L2_NORMALIZATION", "LOCAL_RESPONSE_NORMALIZATION", "ARG_MAX", "ARG_MIN",
    "CUMSUM",
}  # fmt: skip
# Data movement, comparisons and conversions: known, and no arithmetic worth counting.
# fmt: skip below: 48 names packed as a paragraph, not one per line.
_ZERO_FLOP_OPS = {
    "RESHAPE", "SQUEEZE", "EXPAND_DIMS", "TRANSPOSE", "CONCATENATION", "PACK", "UNPACK", "SPLIT",
    "SPLIT_V", "SLICE", "STRIDED_SLICE", "GATHER", "GATHER_ND", "PAD", "PADV2", "MIRROR_PAD",
    "TILE", "BROADCAST_TO", "SHAPE", "QUANTIZE", "DEQUANTIZE", "CAST", "SPACE_TO_DEPTH",
    "DEPTH_TO_SPACE", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "SELECT", "SELECT_V2", "LESS",
    "GREATER", "EQUAL", "NOT_EQUAL", "LESS_EQUAL", "GREATER_EQUAL", "LOGICAL_AND", "LOGICAL_OR",
    "LOGICAL_NOT", "FILL", "ZEROS_LIKE", "ONES_LIKE", "RANGE", "REVERSE_V2", "SCATTER_ND",
    "TOPK_V2", "EMBEDDING_LOOKUP", "REDUCE_ANY", "REDUCE_ALL", "ADD_N",
}  # fmt: skip


@dataclass(frozen=True)
class OpCost:
    """One op: its FLOPs and whether it computes in float, integer, or neither."""

    index: int
    name: str
    flops: int
    # float | int | hybrid (float activations, int8 weights) | convert | index (int32/bool only)
    compute: str
    counted: bool
    # What the op reads and writes once per inference, for a per-op device model.
    weight_bytes: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    output_elements: int = 0
    # A convolution's filter height × width (1 for a pointwise one); 0 for other ops.
    kernel_area: int = 0


class CostTotals:
    """The arithmetic over a graph's totals (``flops``, ``weight_bytes``, ``activation_bytes``):
    one home for it, shared by GraphCost and the ``graph`` part of a record."""

    @property
    def memory_bytes(self) -> int:
        """Bytes that cross memory once per inference: every weight and every activation."""
        return self.weight_bytes + self.activation_bytes  # type: ignore[attr-defined]

    @property
    def arithmetic_intensity(self) -> float:
        """FLOPs per byte of memory traffic (0 when the graph moves no bytes)."""
        memory = self.memory_bytes
        return self.flops / memory if memory else 0.0  # type: ignore[attr-defined]


@dataclass(frozen=True)
class GraphCost(CostTotals):
    """Totals over a .tflite's main graph; ``flops`` counts 2 per multiply-accumulate."""

    path: str
    flops: int
    weight_bytes: int
    activation_bytes: int
    precision: str
    is_full_integer: bool
    float_ops: list[str]
    int_ops: list[str]
    op_counts: dict[str, int]
    uncounted_ops: list[str]
    ops: list[OpCost] = field(repr=False)
    # Bytes fed in and read out per inference: what crosses a host-device link.
    input_bytes: int = 0
    output_bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["memory_bytes"] = self.memory_bytes
        data["arithmetic_intensity"] = self.arithmetic_intensity
        return data


def analyze_tflite(path: str | Path) -> GraphCost:
    """Count the FLOPs, bytes and precision of a .tflite model's main graph (no inference run)."""
    interpreter = _open(Path(path))
    tensors = {int(t["index"]): t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()

    produced = {int(i) for op in ops for i in op["outputs"] if i >= 0}
    graph_inputs = {int(d["index"]) for d in interpreter.get_input_details()}
    consumed = {int(i) for op in ops for i in op["inputs"] if i >= 0}
    # A constant has data in the file: read by an op, yet neither fed in nor computed.
    constants = consumed - produced - graph_inputs

    # DEQUANTIZE of a constant (float16 weights) runs once at load: its output is a weight in
    # compute precision, not an activation of every inference.
    dequantized = {
        int(i)
        for op in ops
        if op["op_name"] in ("DEQUANTIZE", "DENSIFY")
        and all(int(j) in constants for j in op["inputs"] if j >= 0)
        for i in op["outputs"]
    }
    weight_bytes = sum(_nbytes(tensors[i]) for i in constants if i in tensors)
    activation_ids = (produced | graph_inputs) - dequantized
    activation_bytes = sum(_nbytes(tensors[i]) for i in activation_ids if i in tensors)

    costs: list[OpCost] = []
    for op in ops:
        name = str(op["op_name"])
        inputs = [tensors.get(int(i)) for i in op["inputs"] if i >= 0]
        outputs = [tensors.get(int(i)) for i in op["outputs"] if i >= 0]
        input_ids = [int(i) for i in op["inputs"]]
        flops = _flops(name, inputs, outputs, input_ids)
        live = [i for i in input_ids if i >= 0 and i in tensors]
        stored = constants | dequantized  # weights, in the precision the op reads them
        costs.append(
            OpCost(
                index=int(op["index"]),
                name=name,
                flops=int(flops or 0),
                compute=_compute_kind(name, op, tensors, constants),
                counted=flops is not None,
                weight_bytes=sum(_nbytes(tensors[i]) for i in live if i in stored),
                input_bytes=sum(_nbytes(tensors[i]) for i in live if i not in stored),
                output_bytes=sum(_nbytes(t) for t in outputs if t is not None),
                output_elements=_elements(outputs[0]) if outputs else 0,
                kernel_area=_kernel_area(name, inputs),
            )
        )
    cost = _summarise(str(path), costs, tensors, constants, weight_bytes, activation_bytes)
    io = {
        "input_bytes": sum(_nbytes(d) for d in interpreter.get_input_details()),
        "output_bytes": sum(_nbytes(d) for d in interpreter.get_output_details()),
    }
    return replace(cost, **io)


def _open(path: Path) -> Any:
    if not path.is_file():
        raise _ModelError(f"model file '{path}' does not exist; check the path")
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:  # pragma: no cover - the slim device environment
        from tflite_runtime.interpreter import Interpreter, OpResolverType
    try:
        # No default delegate: it would fuse ops into one DELEGATE node and hide them.
        return Interpreter(
            model_path=str(path),
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    except (ValueError, RuntimeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _ModelError(
            f"model file '{path}' is not a readable .tflite ({first_line}); "
            "convert it with the TFLite converter"
        ) from None


def _dims(tensor: dict[str, Any] | None) -> list[int]:
    """The tensor's shape, a dynamic (-1) dimension taken as 1 (batch 1)."""
    if tensor is None:
        return []
    shape = [int(d) for d in tensor["shape"]]
    signature = [int(d) for d in tensor.get("shape_signature", shape)]
    if len(signature) == len(shape):
        shape = [1 if s == -1 else d for d, s in zip(shape, signature, strict=True)]
    return [max(d, 1) for d in shape]


def _elements(tensor: dict[str, Any] | None) -> int:
    return math.prod(_dims(tensor)) if tensor is not None else 0


def _dtype_name(tensor: dict[str, Any] | None) -> str:
    if tensor is None:
        return ""
    dtype = tensor["dtype"]
    return getattr(dtype, "__name__", str(dtype))


def _nbytes(tensor: dict[str, Any]) -> int:
    import numpy as np

    try:
        itemsize = np.dtype(tensor["dtype"]).itemsize
    except TypeError:
        itemsize = 1  # strings, resources: size unknowable from the table
    return _elements(tensor) * itemsize


def _kernel_area(name: str, inputs: list[Any]) -> int:
    """Filter height × width of a 2-D convolution (filter [cout or 1, kh, kw, cin or cout])."""
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(inputs) >= 2:
        dims = _dims(inputs[1])
        if len(dims) == 4:
            return dims[1] * dims[2]
    return 0


def _flops(name: str, inputs: list[Any], outputs: list[Any], input_ids: list[int]) -> int | None:
    """FLOPs of one op, or None for an op this table does not know."""
    out = outputs[0] if outputs else None
    out_elements = _elements(out)
    if name == "CONV_2D" and len(inputs) >= 2:
        _, kh, kw, cin = _dims(inputs[1])  # filter [cout, kh, kw, cin/groups]
        return 2 * out_elements * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D" and len(inputs) >= 2:
        _, kh, kw, _ = _dims(inputs[1])  # filter [1, kh, kw, cout]
        return 2 * out_elements * kh * kw
    if name == "CONV_3D" and len(inputs) >= 2:
        kd, kh, kw, cin, _ = _dims(inputs[1])  # filter [kd, kh, kw, cin, cout]
        return 2 * out_elements * kd * kh * kw * cin
    if name == "TRANSPOSE_CONV" and len(inputs) >= 3:
        cout, kh, kw, _ = _dims(inputs[1])  # inputs: output_shape, filter, input[, bias]
        return 2 * _elements(inputs[2]) * kh * kw * cout
    if name == "FULLY_CONNECTED" and len(inputs) >= 2:
        in_features = _dims(inputs[1])[-1]  # weights [units, in_features]
        return 2 * out_elements * in_features
    if name == "BATCH_MATMUL" and len(inputs) >= 2 and out is not None:
        a, rows = _dims(inputs[0]), _dims(out)
        if len(a) < 2 or len(rows) < 2:
            return 2 * out_elements * (a[-1] if a else 1)
        # adj_x is in the op options, which the tables do not show: K is A's dim that is not M.
        k = a[-1] if a[-2] == rows[-2] else a[-2]
        return 2 * out_elements * k
    if name in _ELEMENTWISE_OPS:
        return out_elements
    if name in _REDUCING_OPS:
        return _elements(inputs[0]) if inputs else 0
    if name in _ZERO_FLOP_OPS:
        return 0
    return None


def _compute_kind(
    name: str, op: dict[str, Any], tensors: dict[int, Any], constants: set[int]
) -> str:
    if name in _CONVERT_OPS:
        return "convert"
    input_ids = [int(i) for i in op["inputs"] if i >= 0]
    active = [tensors.get(i) for i in input_ids if i not in constants]
    active += [tensors.get(int(i)) for i in op["outputs"] if i >= 0]
    active_types = {_dtype_name(t) for t in active}
    constant_types = {_dtype_name(tensors.get(i)) for i in input_ids if i in constants}
    if active_types & _FLOAT_DTYPES:
        return "hybrid" if constant_types & {"int8", "int4"} else "float"
    if active_types & _QUANTIZED_DTYPES:
        return "int"
    return "index"


def _summarise(
    path: str,
    costs: list[OpCost],
    tensors: dict[int, Any],
    constants: set[int],
    weight_bytes: int,
    activation_bytes: int,
) -> GraphCost:
    kinds = Counter(cost.compute for cost in costs)
    float_ops = [c.name for c in costs if c.compute in ("float", "hybrid")]
    int_ops = [c.name for c in costs if c.compute == "int"]
    activation_types = {_dtype_name(t) for i, t in tensors.items() if i not in constants}
    constant_types = {_dtype_name(tensors[i]) for i in constants if i in tensors}

    if kinds["int"] and (kinds["float"] or kinds["hybrid"]):
        precision = "mixed"
    elif kinds["int"]:
        precision = "int16x8" if "int16" in activation_types else "int8"
    elif kinds["hybrid"]:
        precision = "dynamic"
    elif kinds["float"]:
        # Float16 weights (the float16 PTQ output) are dequantized to fp32 for compute.
        if "float16" in constant_types | activation_types:
            precision = "fp16"
        elif "bfloat16" in constant_types | activation_types:
            precision = "bf16"
        else:
            precision = "fp32"
    else:
        precision = "int32"  # nothing but index arithmetic
    return GraphCost(
        path=path,
        flops=sum(c.flops for c in costs),
        weight_bytes=weight_bytes,
        activation_bytes=activation_bytes,
        precision=precision,
        is_full_integer=bool(kinds["int"]) and not (kinds["float"] or kinds["hybrid"]),
        float_ops=float_ops,
        int_ops=int_ops,
        op_counts=dict(Counter(c.name for c in costs)),
        uncounted_ops=sorted({c.name for c in costs if not c.counted}),
        ops=costs,
    )
