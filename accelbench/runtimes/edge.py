"""The edge runner: runs any .tflite on one interpreter package; copy this file alone to a device.

It imports only the standard library, numpy and ONE interpreter package (ai-edge-litert,
tflite-runtime or, as a last resort, tensorflow.lite), and nothing from accelbench, so that it runs
on a device that has neither TensorFlow nor pandas:

    python edge.py model.tflite --threads 4 --runs 3

Inputs and outputs are ordered by signature name (sorted, as TFLite and TensorFlow both order
them) when the model has exactly one signature, else in the interpreter's tensor order.
The runner never times itself: the scenario that calls ``run`` does.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# name -> (module to import, distribution name for the version); "auto" tries them in this order.
INTERPRETERS: dict[str, tuple[str, str]] = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow", "tensorflow"),
}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: shape uses -1 for a dynamic dimension."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quantization: tuple[float, int] | None = None
    index: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "quantization": list(self.quantization) if self.quantization else None,
            "index": self.index,
        }


def load_interpreter_module(interpreter: str = "auto") -> tuple[str, Any, Any, str]:
    """Import one interpreter package: returns (name, Interpreter class, OpResolverType, version).

    Raises ImportError naming the package to install when the requested one is missing.
    """
    if interpreter == "auto":
        missing = []
        for name in INTERPRETERS:
            try:
                return load_interpreter_module(name)
            except ImportError as err:
                missing.append(f"{name}: {err}")
        raise ImportError(
            "no TFLite interpreter is installed (" + "; ".join(missing) + "); "
            "pip install ai-edge-litert (or tflite-runtime)"
        )
    if interpreter not in INTERPRETERS:
        raise ValueError(
            f"unknown interpreter {interpreter!r}; use one of auto, {', '.join(INTERPRETERS)}"
        )
    module_name, dist = INTERPRETERS[interpreter]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(
            f"interpreter {interpreter!r} needs the {dist} package, which cannot be imported "
            f"({err}); pip install {dist}"
        ) from err
    if interpreter == "tensorflow":
        lite = module.lite
        return interpreter, lite.Interpreter, lite.experimental.OpResolverType, module.__version__
    return interpreter, module.Interpreter, getattr(module, "OpResolverType", None), _version(dist)


def _version(dist: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def _spec(detail: dict[str, Any], name: str | None = None) -> TensorSpec:
    signature = detail.get("shape_signature")
    shape = signature if signature is not None and len(signature) else detail["shape"]
    scale, zero_point = detail.get("quantization", (0.0, 0))
    quantization = (float(scale), int(zero_point)) if scale else None
    return TensorSpec(
        name=name or detail["name"],
        shape=tuple(int(d) for d in shape),
        dtype=np.dtype(detail["dtype"]).name,
        quantization=quantization,
        index=int(detail["index"]),
    )


def check_inputs(specs: list[TensorSpec], arrays: list[np.ndarray], model: str) -> None:
    """Raise ValueError unless arrays match specs in count, dtype and every fixed dimension."""
    if len(arrays) != len(specs):
        raise ValueError(
            f"model {model} takes {len(specs)} inputs ({', '.join(s.name for s in specs)}), "
            f"got {len(arrays)}"
        )
    for spec, array in zip(specs, arrays, strict=True):
        if array.dtype.name != spec.dtype:
            raise ValueError(
                f"input {spec.name!r} takes {spec.dtype}, got {array.dtype.name}; "
                "quantize or cast the data first"
            )
        fits = len(array.shape) == len(spec.shape) and all(
            want in (-1, got) for want, got in zip(spec.shape, array.shape, strict=True)
        )
        if not fits:
            raise ValueError(
                f"input {spec.name!r} takes shape {list(spec.shape)} (-1 = any), "
                f"got {list(array.shape)}"
            )


class TFLiteRuntime:
    """A .tflite model in one interpreter: inputs(), outputs(), set_batch_size(), run(), info()."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        interpreter: str = "auto",
        threads: int | None = None,
        xnnpack: bool = True,
    ) -> None:
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise FileNotFoundError(f"{self.model_path} does not exist or is not a file")
        name, interpreter_cls, resolver_type, version = load_interpreter_module(interpreter)
        self.name = name
        self.threads = threads
        self.xnnpack = xnnpack
        self._version = version
        kwargs: dict[str, Any] = {"model_path": str(self.model_path), "num_threads": threads}
        if not xnnpack:
            if resolver_type is None:
                raise ValueError(f"interpreter {name!r} {version} cannot turn XNNPACK off")
            # XNNPACK is a *default* delegate: this resolver is the documented way to leave it out.
            kwargs["experimental_op_resolver_type"] = (
                resolver_type.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            )
        self._interpreter = interpreter_cls(**kwargs)
        self._interpreter.allocate_tensors()
        self._signatures = dict(self._interpreter.get_signature_list())
        self._inputs = self._named_specs(self._interpreter.get_input_details(), "inputs")
        self._outputs = self._named_specs(self._interpreter.get_output_details(), "outputs")
        self.max_batch_size = self._max_batch_size()
        # The shapes allocated now; kept here so that run() does not query the interpreter.
        self._shapes = {
            int(d["index"]): tuple(int(x) for x in d["shape"])
            for d in self._interpreter.get_input_details()
        }
        self._dtypes = {spec.index: np.dtype(spec.dtype) for spec in self._inputs}

    def _named_specs(self, details: list[dict[str, Any]], kind: str) -> list[TensorSpec]:
        """Name and order tensors by the model's signature when it has one that covers them."""
        by_index = {int(d["index"]): d for d in details}
        if len(self._signatures) == 1:
            key = next(iter(self._signatures))
            runner = self._interpreter.get_signature_runner(key)
            sig = runner.get_input_details() if kind == "inputs" else runner.get_output_details()
            indices = {int(d["index"]) for d in sig.values()}
            # A signature on another subgraph would reuse indices of different tensors.
            if indices == set(by_index):
                return [_spec(by_index[int(sig[n]["index"])], n) for n in sorted(sig)]
        return [_spec(d) for d in details]

    def _max_batch_size(self) -> int | None:
        batch_dims = {s.shape[0] for s in self._inputs if len(s.shape) >= 1}
        if not batch_dims or -1 in batch_dims:
            return None  # dynamic batch: no fixed limit
        return min(batch_dims)

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def set_batch_size(self, n: int) -> None:
        """Resize every dynamic batch dimension to n; a fixed batch dimension must already be n."""
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"batch size must be a positive integer, got {n!r}")
        resized = False
        for spec in self._inputs:
            if not spec.shape:
                continue
            if spec.shape[0] != -1:
                if spec.shape[0] != n:
                    raise ValueError(
                        f"input {spec.name!r} has a fixed batch dimension of {spec.shape[0]}, so "
                        f"batch size {n} is impossible; use batch size {spec.shape[0]} or "
                        "convert the model with a dynamic batch dimension"
                    )
                continue
            shape = (n, *self._shapes[spec.index][1:])
            if shape != self._shapes[spec.index]:
                self._resize(spec, shape)
                resized = True
        if resized:
            self._interpreter.allocate_tensors()

    def _resize(self, spec: TensorSpec, shape: tuple[int, ...]) -> None:
        self._interpreter.resize_tensor_input(spec.index, list(shape), strict=True)
        self._shapes[spec.index] = tuple(shape)

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One inference: inputs in inputs() order; outputs in outputs() order."""
        if not self._matches_allocation(inputs):
            check_inputs(self._inputs, inputs, self.model_path.name)
        resized = False
        for spec, array in zip(self._inputs, inputs, strict=True):
            if array.shape != self._shapes[spec.index]:
                # check_inputs let it through, so only dynamic dimensions differ.
                self._resize(spec, array.shape)
                resized = True
        if resized:
            self._interpreter.allocate_tensors()
        for spec, array in zip(self._inputs, inputs, strict=True):
            self._interpreter.set_tensor(spec.index, np.ascontiguousarray(array))
        self._interpreter.invoke()
        return [self._interpreter.get_tensor(spec.index) for spec in self._outputs]

    def _matches_allocation(self, inputs: list[np.ndarray]) -> bool:
        """The hot path: arrays exactly as allocated need no full check (it costs ~7 us a call)."""
        if len(inputs) != len(self._inputs):
            return False
        for spec, array in zip(self._inputs, inputs, strict=True):
            if array.shape != self._shapes[spec.index] or array.dtype != self._dtypes[spec.index]:
                return False
        return True

    def info(self) -> dict[str, Any]:
        return {
            "runtime": self.name,
            "interpreter_package": INTERPRETERS[self.name][1],
            "interpreter_version": self._version,
            "threads": self.threads,
            "xnnpack": self.xnnpack,
            "signature_keys": sorted(self._signatures),
        }

    def close(self) -> None:
        self._interpreter = None

    def __enter__(self) -> TFLiteRuntime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def random_inputs(
    specs: list[TensorSpec], *, batch_size: int = 1, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """One set of random inputs (one array per spec) that a model accepts.

    Ranges: floats uniform in [-1, 1); bool uniform; int8/uint8 and quantized integers cover the
    whole integer range, which is the calibrated range of a quantized input; other integers
    (int32/int64 are usually token ids or indices) in [0, 10). A dynamic dimension is batch_size
    in dimension 0 and 1 elsewhere; a fixed dimension keeps its size.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    arrays = []
    for spec in specs:
        shape = [batch_size if i == 0 and d == -1 else max(d, 1) for i, d in enumerate(spec.shape)]
        dtype = np.dtype(spec.dtype)
        if dtype.kind == "f":
            arrays.append(rng.uniform(-1, 1, size=shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(rng.integers(0, 2, size=shape).astype(bool))
        elif dtype.kind in "iu" and (spec.quantization or dtype.itemsize == 1):
            info = np.iinfo(dtype)
            arrays.append(rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype))
        elif dtype.kind in "iu":
            arrays.append(rng.integers(0, 10, size=shape).astype(dtype))
        else:
            raise ValueError(
                f"input {spec.name!r} has dtype {spec.dtype}, which has no random data"
            )
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a .tflite model once and print its I/O.")
    parser.add_argument("model", help="path of the .tflite file")
    parser.add_argument(
        "--interpreter", default="auto", choices=["auto", *INTERPRETERS], help="package to use"
    )
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads")
    parser.add_argument("--no-xnnpack", action="store_true", help="leave XNNPACK out")
    parser.add_argument("--batch-size", type=int, default=1, help="batch for dynamic batch dims")
    parser.add_argument("--runs", type=int, default=1, help="inferences to run (0: load only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random inputs")
    parser.add_argument("--inputs", help=".npz of inputs (keys arr_0.. in input order)")
    parser.add_argument("--save-outputs", help="write the last run's outputs to this .npz")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    try:
        runtime = TFLiteRuntime(
            args.model,
            interpreter=args.interpreter,
            threads=args.threads,
            xnnpack=not args.no_xnnpack,
        )
        if args.inputs:
            with np.load(args.inputs) as data:
                arrays = [data[f"arr_{i}"] for i in range(len(runtime.inputs()))]
        else:
            arrays = random_inputs(
                runtime.inputs(),
                batch_size=args.batch_size,
                rng=np.random.default_rng(args.seed),
            )
        if args.runs > 0 and runtime.max_batch_size is None:
            runtime.set_batch_size(args.batch_size)
        outputs: list[np.ndarray] = []
        for _ in range(args.runs):
            outputs = runtime.run(arrays)
    except (ImportError, ValueError, FileNotFoundError, RuntimeError) as err:
        print(f"edge.py: error: {err}", file=sys.stderr)
        return 2
    if args.save_outputs and outputs:
        np.savez(args.save_outputs, *outputs)
    report = {
        "info": runtime.info(),
        "max_batch_size": runtime.max_batch_size,
        "inputs": [s.to_dict() for s in runtime.inputs()],
        "outputs": [s.to_dict() for s in runtime.outputs()],
        "results": [
            {"shape": list(o.shape), "dtype": o.dtype.name, "first": o.ravel()[:5].tolist()}
            for o in outputs
        ],
    }
    runtime.close()
    if args.json:
        print(json.dumps(report))
        return 0
    info = report["info"]
    print(
        f"{args.model}: {info['interpreter_package']} {info['interpreter_version']}, "
        f"threads={info['threads']}, xnnpack={'on' if info['xnnpack'] else 'off'}"
    )
    for kind in ("inputs", "outputs"):
        for spec in report[kind]:
            print(
                f"  {kind[:-1]:6} {spec['name']}: {spec['shape']} {spec['dtype']}"
                + (f" q={spec['quantization']}" if spec["quantization"] else "")
            )
    for i, result in enumerate(report["results"]):
        print(f"  result {i}: {result['shape']} {result['dtype']} {result['first']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
