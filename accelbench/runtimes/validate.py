"""Checks that a model file can be run before anything runs it, with one-line reasons (UsageError).

validate_tflite imports numpy and, in a child process, the interpreter only: never TensorFlow.
The flatbuffer's offsets are bounds-checked here, and the interpreter's load runs in a child
process, because an interpreter that does not verify the buffer could crash the caller on a
corrupt file. check_inputs and opened_here (which benchmarks.loadgen's check_batch_size reads
a batch dimension through) open a .tflite or .jaxexport in this process (no device is touched),
after check_artifact has validated it; other artifacts are checked in their cells, which fail
with the same reason.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.runtimes.flatbuffer import TFLITE_IDENTIFIER, OutOfBounds, Reader

EDGE_RUNNER = Path(__file__).with_name("edge.py")

# Model table fields (tensorflow/compiler/mlir/lite/schema/schema.fbs) that hold offset vectors.
_MODEL_OPERATOR_CODES, _MODEL_SUBGRAPHS, _MODEL_DESCRIPTION, _MODEL_BUFFERS = 1, 2, 3, 4
_MODEL_METADATA, _MODEL_SIGNATURE_DEFS = 6, 7
_SUBGRAPH_TENSORS = 0
_SUBGRAPH_VECTORS = (0, 1, 2, 3)  # tensors, inputs, outputs, operators
_BUFFER_DATA, _BUFFER_OFFSET, _BUFFER_SIZE = 0, 1, 2
# The strings that the interpreter's Python API decodes as UTF-8 (tensor and custom op names,
# signature keys): a flipped byte in one passes the interpreter's load and fails later, in the
# benchmark. Strings it never decodes (the description, metadata names) are only bounds-checked.
_TENSOR_NAME, _OPERATOR_CODE_CUSTOM_CODE = 3, 1
_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS, _SIGNATURE_KEY, _TENSOR_MAP_NAME = 0, 1, 2, 0


def validate_tflite(path: str | Path, *, load: bool = True, interpreter: str = "auto") -> None:
    """Raise UsageError, in one sentence, unless path is a complete .tflite the interpreter loads.

    load=False skips the interpreter (a child process, ~0.5 s) and checks the file alone.
    """
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path} does not exist; pass the path of a .tflite file")
    if path.is_dir():
        if (path / "saved_model.pb").exists() or (path / "saved_model.pbtxt").exists():
            raise UsageError(
                f"{path} is a SavedModel directory, not a .tflite file; run it with "
                "runtime 'tensorflow' or convert it to .tflite first"
            )
        raise UsageError(f"{path} is a directory; pass the path of a .tflite file")
    data = path.read_bytes()
    if not data:
        raise UsageError(f"{path} is empty (0 bytes); pass a complete .tflite file")
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        looks_like = _looks_like(path, data)
        what = f"it looks like {looks_like}" if looks_like else "no 'TFL3' file identifier"
        raise UsageError(f"{path} is not a TFLite model ({what}); pass the path of a .tflite file")
    problem = _flatbuffer_problem(data)
    if problem:
        raise UsageError(
            f"{path} is truncated or corrupt ({problem}); export or copy the .tflite file again"
        )
    if load:
        # Once per file version and interpreter in a process: the CLI and the suite's expansion
        # (twice in a run) each validate the model, and a load costs a child process (~0.3 s).
        info = path.stat()
        loaded = (os.path.abspath(path), info.st_mtime_ns, info.st_size, interpreter)
        if loaded not in _LOADED:
            _load_in_child(path, interpreter)
            _LOADED.add(loaded)


_LOADED: set[tuple[str, int, int, str]] = set()


def check_artifact(path: Path, *, trust: bool = False, load: bool = True) -> None:
    """Fail fast, before any folder is written, on a model file that cannot be run (load=False:
    a .tflite is checked as a file, not loaded by the interpreter)."""
    if not path.exists():
        raise UsageError(f"model file {path} does not exist; pass the path of a model artifact")
    from accelbench.runtimes.model_inspect import check_model_safety

    check_model_safety(path, trust=trust)
    from accelbench.runtimes.registry import artifact_kinds

    # A file that no other kind's suffix claims is checked as a .tflite, whatever its name.
    other_suffixes = {s for k in artifact_kinds() if k.name != "tflite" for s in k.suffixes}
    if path.suffix == ".tflite" or (path.is_file() and path.suffix not in other_suffixes):
        validate_tflite(path, load=load)


def check_inputs(model: Path, inputs: Path) -> None:
    """The inputs file exists and, for a .tflite or .jaxexport (cheap to open), fits the model."""
    from accelbench.runtimes.inputs import load_inputs

    if not inputs.is_file():
        raise UsageError(f"inputs file {inputs} does not exist; pass a .npy or .npz file")
    with opened_here(model) as runtime:
        if runtime is not None:
            load_inputs(inputs, runtime.inputs())


@contextlib.contextmanager
def opened_here(model: Path) -> Iterator[Any]:
    """The model opened in this process if it is a .tflite or .jaxexport, else None (opening a
    SavedModel loads TensorFlow: its worker checks it). A UsageError raised with it names the
    model."""
    from accelbench.runtimes import artifact_kind, open_runtime

    kind = artifact_kind(model)
    if kind not in ("tflite", "jaxexport"):
        yield None
        return
    # Without XNNPACK, whose delegate would log a line to stderr; the shapes are the same.
    runtime = open_runtime(model, xnnpack=kind != "tflite")
    try:
        yield runtime
    except UsageError as err:
        raise UsageError(f"{model.name}: {err}") from None
    finally:
        runtime.close()


def _looks_like(path: Path, data: bytes) -> str | None:
    """Name the kind of file a user most likely passed by mistake, when it is obvious."""
    head = data[:4096]
    suffix = path.suffix.lower()
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive such as a .keras model"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "an HDF5 file such as a Keras .h5 model"
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy .npy array"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if suffix == ".onnx" or (head[:1] == b"\x08" and b"onnx" in head):
        return "an ONNX model"
    if suffix == ".pb" or path.name == "saved_model.pb":
        return "the protobuf of a TensorFlow SavedModel"
    if suffix == ".jaxexport":
        return "a JAX export"
    if head[:1] == b"\x08":
        return "a protobuf such as a SavedModel .pb or an ONNX model"
    if all(32 <= b < 127 or b in b"\t\r\n" for b in head):
        return "a text file"
    return None


def _flatbuffer_problem(data: bytes) -> str | None:
    """Bounds-check the Model table, its vectors and its buffers: the part a truncation cuts."""
    reader = Reader(data)
    try:
        model = reader.table(reader.u32(0), "the root table")
        for field in (
            _MODEL_OPERATOR_CODES,
            _MODEL_SUBGRAPHS,
            _MODEL_BUFFERS,
            _MODEL_METADATA,
            _MODEL_SIGNATURE_DEFS,
        ):
            tables = reader.table_vector(model, field)
            if field == _MODEL_SUBGRAPHS:
                if not tables:
                    return "it has no subgraph"
                for subgraph in tables:
                    for vector in _SUBGRAPH_VECTORS:
                        reader.span(subgraph, vector, element_size=4)
                    for index, tensor in enumerate(
                        reader.table_vector(subgraph, _SUBGRAPH_TENSORS)
                    ):
                        reader.text(tensor, _TENSOR_NAME, f"the name of tensor {index}")
            if field == _MODEL_OPERATOR_CODES:
                for code in tables:
                    reader.text(code, _OPERATOR_CODE_CUSTOM_CODE, "a custom op's name")
            if field == _MODEL_SIGNATURE_DEFS:
                for signature in tables:
                    reader.text(signature, _SIGNATURE_KEY, "a signature key")
                    for vector in (_SIGNATURE_INPUTS, _SIGNATURE_OUTPUTS):
                        for tensor_map in reader.table_vector(signature, vector):
                            reader.text(tensor_map, _TENSOR_MAP_NAME, "a signature's tensor name")
            if field == _MODEL_BUFFERS:
                for buffer in tables:
                    reader.span(buffer, _BUFFER_DATA, element_size=1)
                    # Models over 2 GB keep weights after the flatbuffer, at offset/size.
                    offset = reader.scalar(buffer, _BUFFER_OFFSET, "<Q")
                    size = reader.scalar(buffer, _BUFFER_SIZE, "<Q")
                    if offset > 1 and offset + size > len(data):
                        raise OutOfBounds(
                            f"a weight buffer ends at byte {offset + size} of {len(data)}"
                        )
        reader.span(model, _MODEL_DESCRIPTION, element_size=1)
    except OutOfBounds as err:
        return str(err)
    return None


def _load_in_child(path: Path, interpreter: str) -> None:
    """Load and allocate the model with the edge runner in a child: a crash there is a message."""
    command = [sys.executable, str(EDGE_RUNNER), str(path), "--runs", "0", "--json"]
    command += ["--interpreter", interpreter]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    except subprocess.TimeoutExpired as err:
        raise UsageError(
            f"{path} did not load within 300 s; check that it is a complete .tflite file"
        ) from err
    if done.returncode == 0:
        return
    if done.returncode < 0:
        raise UsageError(
            f"{path} crashed the TFLite interpreter while loading (signal {-done.returncode}); "
            "the file is corrupt, export or copy it again"
        )
    lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
    reason = lines[-1].removeprefix("edge.py: error: ") if lines else f"exit {done.returncode}"
    if done.returncode == 2 and "interpreter" in reason and "install" in reason:
        raise UsageError(reason)
    custom = re.search(r"unresolved custom op: (\w+)", done.stderr)
    if custom:
        raise UsageError(
            f"{path} uses the custom op {custom.group(1)}, which the TFLite interpreter does not "
            "have; benchmark it with an interpreter build that registers that op, or convert "
            "the model without it"
        )
    raise UsageError(f"{path} does not load in the TFLite interpreter ({reason})")
