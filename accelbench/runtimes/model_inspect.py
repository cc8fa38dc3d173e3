"""A static look at a model file before anything loads it: what in it would run code of its own.

Keras stores a model's architecture as JSON, and loading it builds every layer that JSON names. A
``Lambda`` layer (and, in the ``.keras`` format, any serialized Python lambda, ``__lambda__``)
carries Python bytecode that runs when the model loads or runs; tf_keras runs it from a legacy
``.h5`` file even with ``safe_mode=True``. So the architecture is read here as plain data, without
deserializing a layer and without importing a framework:

- an HDF5 file (``.h5``; tf_keras picks the HDF5 loader by the file's signature, so a ``.keras``
  name does not exempt one): the ``model_config`` attribute;
- a ``.keras`` zip archive: its ``config.json``;
- a SavedModel directory: tf_keras's ``keras_metadata.pb`` (a ``SavedMetadata`` proto whose nodes
  hold each layer's JSON) and, as tf_keras falls back to it, the ``user_object.metadata`` of the
  object graph in ``saved_model.pb`` (or ``saved_model.pbtxt``).

The protos are read with a small wire-format reader, so neither tensorflow nor tf_keras (whose
import is TensorFlow's) is imported. A file that cannot be read this way is refused: what cannot
be inspected cannot be shown to be safe.
"""

from __future__ import annotations

import codecs
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError

# Layer classes whose config carries Python code to run, and the class name both Keras 3 and
# tf_keras give a serialized Python lambda anywhere in a .keras config.
CODE_LAYERS = frozenset({"Lambda"})
SERIALIZED_LAMBDA = "__lambda__"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_PBTXT_METADATA = re.compile(rb'\bmetadata:\s*"((?:[^"\\]|\\.)*)"')
# How a message names each kind of finding: (one, several).
_LABELS = {
    "code-layer": ("Lambda layer", "Lambda layers"),
    "python-lambda": ("a Python lambda in layer", "Python lambdas in layers"),
}


@dataclass(frozen=True)
class Finding:
    """One unsafe thing in a model file: what it is, its name there, and the part that holds it."""

    kind: str  # "code-layer" (a Lambda layer) or "python-lambda" (a serialized lambda)
    name: str  # the layer's name; for a lambda, the layer that holds it
    where: str  # the part of the file, e.g. "model_config" or "keras_metadata.pb"


def find_unsafe(path: str | Path) -> list[Finding]:
    """Everything in the model at ``path`` that would run code of its own when loaded.

    Any file or directory may be passed: kinds that hold no Keras architecture (.tflite,
    .jaxexport, a missing path) give no findings. Raises UsageError for a Keras or SavedModel
    file whose architecture cannot be read.
    """
    path = Path(path)
    findings: list[Finding] = []
    if path.is_dir():
        findings += _saved_model(path)
    elif path.is_file():
        if _is_hdf5(path):
            findings += _hdf5(path)
        # Keras reads a zip as a model only under a .keras name (a .tflite may end in a zip of
        # metadata files, which is no Keras config).
        if path.suffix.lower() == ".keras" and zipfile.is_zipfile(path):
            findings += _keras_zip(path)
    return list(dict.fromkeys(findings))  # once each, in the order found


def refuse_unsafe(path: str | Path) -> None:
    """Raise UsageError naming the file and what in it would run code; nothing otherwise."""
    findings = find_unsafe(path)
    if findings:
        raise UsageError(describe(Path(path), findings))


def describe(path: Path, findings: list[Finding]) -> str:
    """One line: the file, its findings grouped by kind, and what to do instead."""
    parts = []
    for kind, (one, several) in _LABELS.items():
        found = [f for f in findings if f.kind == kind]
        if not found:
            continue
        names = list(dict.fromkeys(f"'{f.name}'" for f in found))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        wheres = ", ".join(dict.fromkeys(f.where for f in found))
        parts.append(f"{several if len(names) > 1 else one} {shown} ({wheres})")
    return (
        f"model {path} has {'; '.join(parts)}, and loading it would run the Python code stored "
        "in the file; refused: rebuild the model from built-in or registered layers and save it "
        "again"
    )


def _is_hdf5(path: Path) -> bool:
    """HDF5's signature at offset 0, 512, 1024, 2048, … (a user block may precede it)."""
    size = path.stat().st_size
    with path.open("rb") as file:
        offset = 0
        while offset + len(_HDF5_SIGNATURE) <= size:
            file.seek(offset)
            if file.read(len(_HDF5_SIGNATURE)) == _HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _hdf5(path: Path) -> list[Finding]:
    import h5py  # imports numpy: only for a file that is HDF5

    try:
        with h5py.File(path, "r") as h5:
            config = h5.attrs.get("model_config")
    except (OSError, ValueError) as err:
        raise _unreadable(path, "HDF5 file", err) from None
    if config is None:
        return []  # weights only: no architecture, nothing a loader would build
    if not isinstance(config, (str, bytes)):
        config = str(config)  # not a string attribute: the JSON parse below refuses it
    return _config_findings(_json(path, config, "model_config"), "model_config")


def _keras_zip(path: Path) -> list[Finding]:
    try:
        with zipfile.ZipFile(path) as archive:
            if "config.json" not in archive.namelist():
                return []
            text = archive.read("config.json")
    except (OSError, zipfile.BadZipFile, ValueError) as err:
        raise _unreadable(path, "zip archive", err) from None
    return _config_findings(_json(path, text, "config.json"), "config.json")


def _saved_model(path: Path) -> list[Finding]:
    findings: list[Finding] = []
    metadata = path / "keras_metadata.pb"
    if metadata.is_file():
        for text in _read_proto(metadata, _keras_metadata_strings):
            findings += _config_findings(_json(metadata, text, "node metadata"), metadata.name)
    graph = path / "saved_model.pb"
    if graph.is_file():
        for text in _read_proto(graph, _object_graph_metadata):
            findings += _config_findings(_json(graph, text, "user object metadata"), graph.name)
    elif (path / "saved_model.pbtxt").is_file():
        text_graph = path / "saved_model.pbtxt"
        for match in _PBTXT_METADATA.finditer(text_graph.read_bytes()):
            value = codecs.escape_decode(match[1])[0]
            if value.strip():
                findings += _config_findings(
                    _json(text_graph, value, "user object metadata"), text_graph.name
                )
    return findings


def _read_proto(path: Path, strings: Any) -> list[bytes]:
    try:
        return list(strings(memoryview(path.read_bytes())))
    except (OSError, ValueError) as err:
        raise _unreadable(path, "protocol buffer", err) from None


def _keras_metadata_strings(data: memoryview) -> Iterator[bytes]:
    """SavedMetadata: nodes = 1 (SavedObject: metadata = 5, a layer's JSON)."""
    for number, node in _fields(data):
        if number == 1 and isinstance(node, memoryview):
            for inner, value in _fields(node):
                if inner == 5 and isinstance(value, memoryview) and len(value):
                    yield value.tobytes()


def _object_graph_metadata(data: memoryview) -> Iterator[bytes]:
    """SavedModel: meta_graphs = 2 → object_graph_def = 7 → nodes = 1 → user_object = 4 →
    metadata = 3 (the JSON that SavedModels older than keras_metadata.pb keep there)."""
    path = (2, 7, 1, 4, 3)

    def walk(buffer: memoryview, depth: int) -> Iterator[bytes]:
        for number, value in _fields(buffer):
            if number != path[depth] or not isinstance(value, memoryview):
                continue
            if depth == len(path) - 1:
                if len(value):
                    yield value.tobytes()
            else:
                yield from walk(value, depth + 1)

    return walk(data, 0)


def _fields(data: memoryview) -> Iterator[tuple[int, int | memoryview | None]]:
    """(field number, value) of each field of one protobuf message: varints as int,
    length-delimited fields as a view, fixed-width ones as None."""
    i, end = 0, len(data)
    while i < end:
        key, i = _varint(data, i)
        number, wire_type = key >> 3, key & 7
        value: int | memoryview | None = None
        if wire_type == 0:
            value, i = _varint(data, i)
        elif wire_type == 1:
            i += 8
        elif wire_type == 2:
            length, i = _varint(data, i)
            value = data[i : i + length]
            i += length
        elif wire_type == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire_type} at byte {i}")
        if i > end or number == 0:
            raise ValueError("truncated or malformed message")
        yield number, value


def _varint(data: memoryview, i: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated or malformed varint")
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, i
        shift += 7


def _json(path: Path, text: str | bytes, what: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as err:
        raise _unreadable(path, f"model ({what} is not JSON)", err) from None


def _config_findings(config: Any, where: str) -> list[Finding]:
    """Lambda layers and serialized lambdas anywhere in a Keras config, nested models included.

    Iterative, so that a deeply nested config cannot exhaust the Python stack.
    """
    found = []
    stack: list[tuple[Any, str]] = [(config, "")]
    while stack:
        node, owner = stack.pop()
        if isinstance(node, dict):
            classes = {node.get("class_name"), node.get("registered_name")}
            name = _layer_name(node) or owner
            if classes & CODE_LAYERS:
                found.append(Finding("code-layer", name or "(unnamed)", where))
            elif SERIALIZED_LAMBDA in classes:
                found.append(Finding("python-lambda", owner or "(model)", where))
            stack.extend((value, name) for value in reversed(node.values()))
        elif isinstance(node, list):
            stack.extend((value, owner) for value in reversed(node))
    return found


def _layer_name(node: dict[str, Any]) -> str:
    config = node.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    name = name if isinstance(name, str) else node.get("name")
    return name if isinstance(name, str) else ""


def _unreadable(path: Path, what: str, err: BaseException) -> UsageError:
    reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return UsageError(
        f"model {path} cannot be inspected as a Keras {what} ({reason}), so it is not loaded; "
        "save it again with Keras"
    )
