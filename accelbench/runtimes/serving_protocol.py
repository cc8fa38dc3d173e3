"""The TensorFlow Serving REST API's JSON, for the server and the client alike: the predict
request in its row ("instances") and columnar ("inputs") forms, the response in the matching form
("predictions", "outputs"), model status and metadata, the ``{"error": ...}`` body, and the one
table between TensorFlow's DataType names and numpy's dtypes.

The server (`accelbench.serving.server`) parses requests and writes responses and metadata; the
client (`accelbench.runtimes.remote`) writes requests and reads responses and metadata. No web
framework is imported here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from accelbench.errors import UsageError
from accelbench.runtimes.edge import TensorSpec

try:  # parses numbers ~10x faster than the json module; optional, json stays the reference
    import orjson
except ImportError:  # pragma: no cover - orjson is optional
    orjson = None

DEFAULT_SIGNATURE = "serving_default"
# TensorFlow's DataType names, as TensorFlow Serving's metadata spells them.
TF_DTYPES = {
    "DT_FLOAT": "float32",
    "DT_DOUBLE": "float64",
    "DT_HALF": "float16",
    "DT_INT8": "int8",
    "DT_UINT8": "uint8",
    "DT_INT16": "int16",
    "DT_UINT16": "uint16",
    "DT_INT32": "int32",
    "DT_UINT32": "uint32",
    "DT_INT64": "int64",
    "DT_UINT64": "uint64",
    "DT_BOOL": "bool",
}
# numpy dtype -> TensorFlow DataType name: the same table read the other way.
TF_NAMES = {dtype: tf_name for tf_name, dtype in TF_DTYPES.items()}
_KIND_WORDS = {"f": "floats", "i": "integers", "u": "integers", "b": "booleans", "U": "strings"}

Arrays = list[np.ndarray]


# --- predict requests, as the server reads them ---


class RequestError(Exception):
    """A request the server refuses: answered with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ParsedRequest:
    """A predict request after JSON parsing and conversion to the model's inputs."""

    form: str  # "row" (instances -> predictions) or "columnar" (inputs -> outputs)
    signature: str
    arrays: Arrays
    rows: int


def parse_predict(
    body: bytes, inputs: list[TensorSpec], signature_names: set[str]
) -> ParsedRequest:
    """Parse a TF Serving predict body into one array per model input; RequestError(400) if bad."""
    try:
        request = loads(body)
    except (ValueError, RecursionError) as err:
        raise RequestError(400, f"the request body is not valid JSON ({first_line(err)})") from None
    if not isinstance(request, dict):
        raise RequestError(
            400, "the request body must be a JSON object with 'instances' or 'inputs'"
        )
    signature = request.get("signature_name", "")
    if not isinstance(signature, str) or signature not in signature_names | {""}:
        raise RequestError(
            400,
            f"Serving signature name: {signature!r} not found in signature def; "
            f"this model has {', '.join(sorted(signature_names))}",
        )
    unknown = set(request) - {"signature_name", "instances", "inputs"}
    if unknown:
        raise RequestError(
            400,
            f"unknown request key(s) {', '.join(sorted(map(repr, unknown)))}; "
            "a predict request has 'instances' or 'inputs' and optionally 'signature_name'",
        )
    if ("instances" in request) == ("inputs" in request):
        raise RequestError(
            400,
            "a predict request needs exactly one of 'instances' (row format) or 'inputs' "
            "(columnar format)",
        )
    if "instances" in request:
        values = _row_values(request["instances"], inputs)
        form = "row"
    else:
        values = _columnar_values(request["inputs"], inputs)
        form = "columnar"
    arrays = [_to_array(value, spec) for value, spec in zip(values, inputs, strict=True)]
    rows = {len(a) for a in arrays}
    if len(rows) > 1:
        sizes = ", ".join(f"{s.name}: {len(a)}" for s, a in zip(inputs, arrays, strict=True))
        raise RequestError(400, f"inputs have different numbers of instances ({sizes})")
    return ParsedRequest(form, signature or DEFAULT_SIGNATURE, arrays, rows.pop())


def loads(body: bytes) -> Any:
    """A JSON body parsed (orjson where it can, else the json module); ValueError when bad."""
    if orjson is not None:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # NaN/Infinity tokens (TF Serving takes them), huge ints or bad JSON: json decides
    return json.loads(body)


def _names(inputs: list[TensorSpec]) -> str:
    return ", ".join(repr(s.name) for s in inputs)


def _row_values(instances: Any, inputs: list[TensorSpec]) -> list[Any]:
    if not isinstance(instances, list) or not instances:
        raise RequestError(400, "'instances' must be a non-empty list, one item per instance")
    named = [isinstance(item, dict) for item in instances]
    if any(named) and not all(named):
        raise RequestError(400, "'instances' mixes objects and plain values; use one form")
    if not named[0]:
        if len(inputs) > 1:
            raise RequestError(
                400,
                f"the model takes {len(inputs)} inputs ({_names(inputs)}): give each "
                "instance as an object {input_name: value}",
            )
        return [instances]
    for item in instances:
        _check_keys(item, inputs, "each instance")
    return [[item[spec.name] for item in instances] for spec in inputs]


def _columnar_values(value: Any, inputs: list[TensorSpec]) -> list[Any]:
    if isinstance(value, dict):
        _check_keys(value, inputs, "'inputs'")
        return [value[spec.name] for spec in inputs]
    if len(inputs) > 1:
        raise RequestError(
            400,
            f"the model takes {len(inputs)} inputs ({_names(inputs)}): give 'inputs' as an "
            "object {input_name: value}",
        )
    return [value]


def _check_keys(item: dict, inputs: list[TensorSpec], where: str) -> None:
    wanted = {s.name for s in inputs}
    missing, extra = wanted - set(item), set(item) - wanted
    if missing or extra:
        problem = []
        if missing:
            problem.append(f"lacks input(s) {', '.join(map(repr, sorted(missing)))}")
        if extra:
            problem.append(f"has unknown input(s) {', '.join(map(repr, sorted(extra)))}")
        raise RequestError(
            400, f"{where} {' and '.join(problem)}; the model takes {_names(inputs)}"
        )


def _to_array(value: Any, spec: TensorSpec) -> np.ndarray:
    """The JSON value as an array of the input's dtype, when that is exact; else RequestError."""
    want = np.dtype(spec.dtype)
    expected = "[" + ", ".join(["N", *(str(d) for d in spec.shape[1:])]) + "]"
    try:
        array = np.asarray(value)
    except (ValueError, OverflowError, RecursionError):
        raise RequestError(
            400,
            f"input {spec.name!r} is not a rectangular nested list: expected shape "
            f"{expected} (N instances) of {want.name}",
        ) from None
    got = _KIND_WORDS.get(array.dtype.kind, "non-numeric values")
    if want.kind == "f":
        fits = array.dtype.kind in "iuf"
    elif want.kind in "iu":
        fits = array.dtype.kind in "iu"
        if fits and array.size:
            low, high, info = int(array.min()), int(array.max()), np.iinfo(want)
            if low < info.min or high > info.max:
                raise RequestError(
                    400,
                    f"input {spec.name!r} takes {want.name} (integers in [{info.min}, "
                    f"{info.max}]), got integers in [{low}, {high}]",
                )
    else:
        fits = array.dtype.kind == want.kind
    if not fits:
        raise RequestError(
            400,
            f"input {spec.name!r} takes {want.name} values, got {got}; expected shape "
            f"{expected} (N instances)",
        )
    shape_fits = array.ndim == len(spec.shape) and all(
        d in (-1, g) for d, g in zip(spec.shape[1:], array.shape[1:], strict=True)
    )
    if not shape_fits:
        raise RequestError(
            400,
            f"input {spec.name!r}: expected shape {expected} (N instances) of {want.name}, "
            f"got shape {list(array.shape)}",
        )
    if array.shape[0] == 0:
        raise RequestError(400, f"input {spec.name!r} has no instances")
    return array.astype(want, copy=False)


# --- responses, as the server writes them ---


def format_outputs(form: str, outputs: Arrays, specs: list[TensorSpec]) -> dict[str, Any]:
    """TF Serving's response: one output unnamed, several by name (a list of objects for rows)."""
    if form == "columnar":
        if len(outputs) == 1:
            return {"outputs": outputs[0].tolist()}
        return {"outputs": {s.name: o.tolist() for s, o in zip(specs, outputs, strict=True)}}
    if len(outputs) == 1:
        return {"predictions": outputs[0].tolist()}
    columns = [o.tolist() for o in outputs]
    return {
        "predictions": [
            {s.name: column[i] for s, column in zip(specs, columns, strict=True)}
            for i in range(len(columns[0]))
        ]
    }


def dumps(payload: Any, *, finite: bool = False) -> bytes:
    """A response body; finite=True promises no NaN/Infinity, which orjson would write as null."""
    if finite and orjson is not None:
        return orjson.dumps(payload)
    return json.dumps(payload, separators=(",", ":")).encode()


def error_body(message: str) -> dict[str, Any]:
    """TF Serving's answer to a request it refuses or fails."""
    return {"error": message}


def status_body(version: str) -> dict[str, Any]:
    """GET /v1/models/NAME: the one version, available."""
    return {
        "model_version_status": [
            {
                "version": version,
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }


def metadata_body(
    name: str, version: str, signature: str, inputs: list[TensorSpec], outputs: list[TensorSpec]
) -> dict[str, Any]:
    """GET /v1/models/NAME/metadata: one predict signature, its tensors' dtypes and shapes (-1 for
    a dimension of any size); `parse_metadata` reads it back."""

    def tensors(specs: list[TensorSpec]) -> dict[str, Any]:
        return {
            s.name: {
                "dtype": TF_NAMES[s.dtype],
                "tensor_shape": {
                    "dim": [{"size": str(d), "name": ""} for d in s.shape],
                    "unknown_rank": False,
                },
                "name": s.name,
            }
            for s in specs
        }

    definition = {
        "inputs": tensors(inputs),
        "outputs": tensors(outputs),
        "method_name": "tensorflow/serving/predict",
    }
    return {
        "model_spec": {"name": name, "signature_name": "", "version": version},
        "metadata": {"signature_def": {"signature_def": {signature: definition}}},
    }


def first_line(err: BaseException) -> str:
    """The first line of an error's message (its type's name when it has none)."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


# --- the client's side ---


def request_body(sample: list[np.ndarray], specs: list[TensorSpec]) -> bytes:
    """One sample (batch-1 arrays in specs' order) as a TF Serving row-format predict request."""
    if len(sample) != len(specs):
        raise UsageError(
            f"a sample has {len(sample)} arrays but the endpoint's model takes {len(specs)} inputs"
        )
    rows = [np.asarray(a).tolist() for a in sample]
    if len(specs) == 1:
        return json.dumps({"instances": rows[0]}).encode()
    batch = len(rows[0])
    instances = [{s.name: rows[j][i] for j, s in enumerate(specs)} for i in range(batch)]
    return json.dumps({"instances": instances}).encode()


def read_answer(body: bytes) -> Any:
    """An answer's JSON, or ``{"error": its first 200 bytes}`` when it is not JSON (a proxy's
    page, a cut-off body)."""
    try:
        return json.loads(body)
    except ValueError:
        return {"error": body[:200].decode("utf-8", "replace")}


def error_text(body: dict[str, Any]) -> str:
    """What an answer says went wrong: its "error", else the whole answer (200 characters)."""
    return str(body.get("error") or body)[:200]


def answer_problem(status: int, body: bytes) -> str | None:
    """Why an answer to a predict request is not a prediction, or None when it is one; the body
    is looked at, not parsed, as a load generator can afford for every answer."""
    if status != 200:
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace').strip()}"
    if b'"predictions"' not in body and b'"outputs"' not in body:
        return f"HTTP 200 without predictions: {body[:200]!r}"
    return None


def read_predictions(answer: dict[str, Any], output_names: list[str]) -> Arrays:
    """A predict response's outputs, in ``output_names``' order (format_outputs read back)."""
    predictions = answer.get("predictions", answer.get("outputs"))
    if isinstance(predictions, dict):
        return [np.asarray(predictions[n]) for n in output_names]
    if predictions and isinstance(predictions[0], dict):
        return [np.asarray([row[n] for row in predictions]) for n in output_names]
    return [np.asarray(predictions)]


def parse_metadata(metadata: dict[str, Any]) -> tuple[str, list[TensorSpec], list[TensorSpec]]:
    """The serving signature's name, inputs and outputs from TensorFlow Serving's metadata JSON.

    Inputs are ordered by name, as accelbench's runtimes order a signature's inputs, so a
    positional .npz (arr_0, arr_1, ...) means the same inputs here as for the in-process runtime.
    """
    try:
        signatures = metadata["metadata"]["signature_def"]["signature_def"]
    except (KeyError, TypeError):
        raise UsageError(
            "the endpoint's model metadata has no metadata.signature_def.signature_def; it must "
            "answer GET /v1/models/NAME/metadata as TensorFlow Serving does"
        ) from None
    if not isinstance(signatures, dict) or not signatures:
        raise UsageError("the endpoint's model metadata lists no signature; it cannot be loaded")
    name = DEFAULT_SIGNATURE if DEFAULT_SIGNATURE in signatures else sorted(signatures)[0]
    signature = signatures[name]
    return (
        name,
        _tensor_specs(signature.get("inputs") or {}, "input"),
        _tensor_specs(signature.get("outputs") or {}, "output"),
    )


def _tensor_specs(tensors: dict[str, Any], kind: str) -> list[TensorSpec]:
    specs = []
    for index, name in enumerate(sorted(tensors)):
        info = tensors[name] or {}
        dtype = TF_DTYPES.get(str(info.get("dtype")))
        if dtype is None:
            raise UsageError(
                f"the endpoint's {kind} {name!r} has dtype {info.get('dtype')!r}, which accelbench "
                f"cannot make requests for; it knows {', '.join(TF_DTYPES)}"
            )
        shape_info = info.get("tensor_shape") or {}
        if shape_info.get("unknown_rank"):
            raise UsageError(
                f"the endpoint's {kind} {name!r} has an unknown rank, so accelbench cannot make "
                "requests for it"
            )
        shape = tuple(int(d.get("size", -1)) for d in shape_info.get("dim") or [])
        specs.append(TensorSpec(name=name, shape=shape, dtype=dtype, index=index))
    return specs
