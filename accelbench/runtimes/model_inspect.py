"""A static look at a model file before anything loads it: what in it would run code of its own,
or reach outside the model (files, the network, other processes).

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

A TensorFlow graph is a program too: its operations can read and write files, talk over the
network and run Python. The operations a model's functions would run are looked up in
``OP_FAMILIES`` (one table, a family per kind of reach, each with why it is there):

- a SavedModel: every node of ``saved_model.pb``'s graph and of every function in its library.
  The SavedModel's own checkpoint functions (the ``saver_def``'s save and restore, and what they
  call) legitimately hold SaveV2/RestoreV2/MergeV2Checkpoints: those, and only those, are not
  flagged there; the same ops in any other function are. A ``saved_model.pbtxt`` is scanned for
  every ``op:`` it names, checkpoint ops included;
- a ``.tflite``: its custom operators named ``Flex<TensorFlow op>`` (the Flex delegate runs the
  TensorFlow op), looked up by that op's name.

The protos are read with a small wire-format reader, so neither tensorflow nor tf_keras (whose
import is TensorFlow's) is imported: importing TensorFlow's protobuf classes
(``tensorflow.core.protobuf``) imports all of TensorFlow, seconds before anything is read. A
file that cannot be read this way is refused: what cannot be inspected cannot be shown to be safe.
"""

from __future__ import annotations

import codecs
import functools
import json
import os
import re
import struct
import zipfile
from collections.abc import Iterable, Iterator
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
# How a message names each kind of layer finding: (one, several).
_LABELS = {
    "code-layer": ("Lambda layer", "Lambda layers"),
    "python-lambda": ("a Python lambda in layer", "Python lambdas in layers"),
}


@dataclass(frozen=True)
class OpFamily:
    """Operations that reach outside the model in one way: a kind, why it is flagged, and the
    op names (after ``base_op_name``) and name patterns that belong to it."""

    kind: str
    reach: str  # what the ops do, for messages: "writes files"
    names: frozenset[str]
    pattern: re.Pattern[str] | None = None


def _family(kind: str, reach: str, names: str, pattern: str | None = None) -> OpFamily:
    """A family from its op names, separated by white space, and a name pattern."""
    return OpFamily(kind, reach, frozenset(names.split()), re.compile(pattern) if pattern else None)


# Every TensorFlow operation (core, tf.data, summary, debug, contrib leftovers still registered)
# that touches the filesystem, the network or other processes, by family. Names are matched
# after base_op_name (an "Experimental" prefix and a "V2"/"V3"... suffix dropped), so every
# version of an op is one entry. A path in TensorFlow may be a URL (gs://, s3://, hdfs://), so
# every file family reaches the network as well.
OP_FAMILIES = (
    # Files written from inside the graph: WriteFile and the summary writers (event files), which
    # all start "Write" or end "SummaryWriter"; tf.data's save/snapshot and TFRecord writer; a
    # cache with a file name.
    _family(
        "file-write",
        "writes files",
        """CreateSummaryFileWriter CreateSummaryDbWriter ImportEvent DatasetToTFRecord
        SaveDataset DistributedSave SnapshotDataset SnapshotChunkDataset CacheDataset""",
        r"Write\w*|\w*SummaryWriter",
    ),
    # Files read from inside the graph: ReadFile and glob (MatchingFiles), the queue-based
    # readers (WholeFileReader, TFRecordReader, ReaderRead, ReaderReadUpTo, ReaderRestoreState,
    # ...: every name with "Reader"), tf.data's file datasets and snapshot/load, RecordInput (a
    # file glob), lookup tables and vocabularies from text files, memory-mapped constants
    # (ImmutableConst), checkpoint remapping.
    _family(
        "file-read",
        "reads files",
        """ReadFile MatchingFiles TFRecordDataset TextLineDataset FixedLengthRecordDataset
        LMDBDataset SqlDataset CSVDataset MatchingFilesDataset LoadDataset
        ListSnapshotChunksDataset RecordInput InitializeTableFromTextFile ImmutableConst
        LoadAndRemapMatrix GenerateVocabRemapping""",
        r"\w*Reader\w*",
    ),
    # Checkpoint files (tensor bundles) at a path the graph computes: a SavedModel's own
    # save/restore functions hold these, and are exempt (see _saved_model_ops).
    _family(
        "checkpoint",
        "reads or writes checkpoint files",
        "Save SaveSlices Restore RestoreSlice MergeV2Checkpoints",
    ),
    # tfdbg's debug ops send tensors to their debug_urls (file:// paths or grpc:// servers), and
    # Copy/CopyHost to those their debug_ops_spec names.
    _family(
        "debug-output", "sends tensors to debug URLs (files or gRPC)", "Copy CopyHost", r"Debug\w*"
    ),
    # Python functions called from the graph: whatever the process may do, subprocesses
    # included (they only run where the function is registered, but they are never safe).
    _family("python-code", "runs Python code", "", r"\w*PyFunc\w*"),
    # Network: gRPC calls (Rpc, TryRpc, RpcClient, RpcServer...), the tf.data service, collective
    # ops, Send/Recv and RemoteCall (other tasks of a cluster, over gRPC), and the configuration
    # of remote filesystems (cloud storage credentials).
    _family(
        "network",
        "talks over the network",
        """DataServiceDataset RegisterDataset Send Recv RemoteCall GcsConfigureCredentials
        GcsConfigureBlockCache FileSystemSetConfiguration""",
        r"\w*Rpc\w*|Collective\w*",
    ),
)
# Ops whose reach depends on an attribute (by base name): PrintV2 prints to a file given as
# "file://PATH"; DecodeProto/EncodeProto read their descriptors from a file unless "local://"
# or "bytes://". Where the attribute cannot be read (a Flex op), they are assumed to reach.
_ATTRIBUTE_OPS = {
    "Print": ("output_stream", lambda v: v.startswith("file://")),  # PrintV2; Print has none
    "DecodeProto": ("descriptor_source", lambda v: not v.startswith(("local://", "bytes://"))),
    "EncodeProto": ("descriptor_source", lambda v: not v.startswith(("local://", "bytes://"))),
}
_FAMILY_OF = {f.kind: f for f in OP_FAMILIES}
_CHECKPOINT = "checkpoint"


def base_op_name(op: str) -> str:
    """An op's name without an "Experimental" prefix or a version suffix ("V2", "V3", ...)."""
    return re.sub(r"V\d+$", "", op.removeprefix("Experimental"))


def op_family(op: str, attrs: dict[str, str] | None = None) -> OpFamily | None:
    """The family of a TensorFlow op that reaches outside the model, or None. ``attrs``: the
    node's string attributes, for the ops whose reach depends on one."""
    base = base_op_name(op)
    for family in OP_FAMILIES:
        if base in family.names or (family.pattern and family.pattern.fullmatch(base)):
            return family
    if base in _ATTRIBUTE_OPS:
        name, reaches = _ATTRIBUTE_OPS[base]
        value = None if attrs is None else attrs.get(name)
        if attrs is None or (value is not None and reaches(value)):  # unknown: assume it does
            return _FAMILY_OF["file-write" if base == "Print" else "file-read"]
    return None


@dataclass(frozen=True)
class Finding:
    """One unsafe thing in a model file: what it is, its name there, and the part that holds it."""

    # "code-layer" (a Lambda layer), "python-lambda" (a serialized lambda), or an op family's
    # kind ("file-write", "file-read", "checkpoint", "debug-output", "python-code", "network")
    kind: str
    name: str  # the layer's name (for a lambda, the layer that holds it), or the op's
    where: str  # the part of the file: "model_config", a function's name, "subgraph main", ...

    @property
    def is_op(self) -> bool:
        return self.kind in _FAMILY_OF

    def describe(self) -> str:
        """What the finding does, for a person: "writes files", "Lambda layer"."""
        if self.is_op:
            return _FAMILY_OF[self.kind].reach
        return _LABELS.get(self.kind, (self.kind,))[0]


_TRUSTED: set[str] = set()


def trust(*paths: str | Path) -> None:
    """Let refuse_unsafe pass these models in this process (the user said --trust-model)."""
    _TRUSTED.update(os.path.abspath(p) for p in paths)


def find_unsafe(path: str | Path) -> list[Finding]:
    """Everything in the model at ``path`` that would run code of its own when loaded.

    Any file or directory may be passed: kinds that hold no Keras architecture (.tflite,
    .jaxexport, a missing path) give no findings. Raises UsageError for a Keras or SavedModel
    file whose architecture cannot be read.
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError:
        return []
    stamp = (info.st_mtime_ns, info.st_size)
    if path.is_dir():
        stamp += tuple(_stamp(path / name) for name in ("saved_model.pb", "keras_metadata.pb"))
    return list(_find_unsafe(os.path.abspath(path), stamp))


def _stamp(path: Path) -> tuple[int, int]:
    try:
        info = path.stat()
    except OSError:
        return (0, 0)
    return (info.st_mtime_ns, info.st_size)


@functools.lru_cache(maxsize=16)
def _find_unsafe(name: str, _stamp: tuple[int, ...]) -> tuple[Finding, ...]:
    """find_unsafe, once per file version (the CLI, the suite and the runtime all ask)."""
    path = Path(name)
    findings: list[Finding] = []
    if path.is_dir():
        findings += _saved_model(path)
        findings += _saved_model_ops(path)
    elif path.is_file():
        if _is_hdf5(path):
            findings += _hdf5(path)
        # Keras reads a zip as a model only under a .keras name (a .tflite may end in a zip of
        # metadata files, which is no Keras config).
        if path.suffix.lower() == ".keras" and zipfile.is_zipfile(path):
            findings += _keras_zip(path)
        findings += _tflite_ops(path)
    return tuple(dict.fromkeys(findings))  # once each, in the order found


def refuse_unsafe(path: str | Path) -> None:
    """Raise UsageError naming the file and what in it would run code or reach outside the
    model; nothing otherwise, or for a model trust() was called with."""
    if os.path.abspath(path) in _TRUSTED:
        return
    findings = find_unsafe(path)
    if findings:
        raise UsageError(describe(Path(path), findings))


def check_model_safety(path: str | Path, *, trust: bool = False) -> None:
    """Refuse a model whose file holds code that loading it would run (a Keras Lambda layer) or
    operations that reach outside it (files, network, processes), unless trusted (--trust-model:
    the model is still read, so that an unreadable one is refused all the same)."""
    if trust:
        find_unsafe(path)
    else:
        refuse_unsafe(path)


def describe(path: Path, findings: list[Finding]) -> str:
    """One line: the file, its findings grouped by kind, and what to do instead."""
    ops = [f for f in findings if f.is_op]
    layers = [f for f in findings if not f.is_op]
    if not layers:
        return _describe_ops(path, ops)
    parts = []
    for kind, (one, several) in _LABELS.items():
        found = [f for f in findings if f.kind == kind]
        if not found:
            continue
        names = list(dict.fromkeys(f"'{f.name}'" for f in found))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        wheres = ", ".join(dict.fromkeys(f.where for f in found))
        parts.append(f"{several if len(names) > 1 else one} {shown} ({wheres})")
    if ops:
        parts.append(_listed(ops))
    return (
        f"model {path} has {'; '.join(parts)}, and loading it would run the Python code stored "
        "in the file; refused: rebuild the model from built-in or registered layers and save it "
        "again, or pass --trust-model to run it anyway, in the sandbox"
    )


def _describe_ops(path: Path, ops: list[Finding]) -> str:
    return (
        f"model {path} has operations that reach outside the model: {_listed(ops)}; refused: "
        f"see them with 'accelbench inspect {path}', or pass --trust-model to run it anyway, in "
        "the sandbox"
    )


def _listed(ops: list[Finding]) -> str:
    """'WriteFile (writes files, in __inference_serve_13), ...', at most five ops named."""
    grouped: dict[str, list[Finding]] = {}
    for finding in ops:
        grouped.setdefault(finding.name, []).append(finding)
    shown = []
    for name, found in list(grouped.items())[:5]:
        wheres = ", ".join(dict.fromkeys(f.where for f in found))
        shown.append(f"{name} ({found[0].describe()}, in {wheres})")
    more = len(grouped) - 5
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


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


@dataclass
class _Node:
    """What the op scan needs of a NodeDef: its name, op, inputs, the functions its attributes
    call, and the string attributes that decide an _ATTRIBUTE_OPS op's reach."""

    name: str
    op: str
    inputs: list[str]
    calls: list[str]
    strings: dict[str, str]


def _saved_model_ops(path: Path) -> list[Finding]:
    graph = path / "saved_model.pb"
    if graph.is_file():
        try:
            data = memoryview(graph.read_bytes())
            metas = [m for number, m in _fields(data) if number == 2 and _is_view(m)]
            return [f for meta in metas for f in _meta_graph_ops(meta)]
        except (OSError, ValueError, UnicodeDecodeError) as err:
            raise _unreadable(graph, "protocol buffer", err) from None
    text_graph = path / "saved_model.pbtxt"
    if text_graph.is_file():
        # No structure read here: every op named anywhere, checkpoint ops included.
        text = text_graph.read_text(encoding="utf-8", errors="replace")
        ops = dict.fromkeys(re.findall(r'\bop:\s*"(\w+)"', text))
        return [
            Finding(family.kind, op, text_graph.name)
            for op in ops
            if (family := op_family(op, {})) is not None
        ]
    return []


def _meta_graph_ops(meta: memoryview) -> list[Finding]:
    """The flagged ops of one MetaGraphDef (graph_def = 2, saver_def = 3, signature_def = 5)."""
    top: list[_Node] = []
    functions: dict[str, list[_Node]] = {}
    saver_tensors: list[str] = []
    signature_tensors: set[str] = set()
    for number, value in _fields(meta):
        if not _is_view(value):
            continue
        if number == 2:  # GraphDef: node = 1, library = 2 (FunctionDefLibrary: function = 1)
            for field, item in _fields(value):
                if field == 1 and _is_view(item):
                    top.append(_node(item))
                elif field == 2 and _is_view(item):
                    for inner, function in _fields(item):
                        if inner == 1 and _is_view(function):
                            name, nodes = _function(function)
                            functions[name] = nodes
        elif number == 3:  # SaverDef: save_tensor_name = 2, restore_op_name = 3
            saver_tensors += [_text(v) for f, v in _fields(value) if f in (2, 3) and _is_view(v)]
        elif number == 5:  # map<string, SignatureDef>: inputs = 1, outputs = 2 (TensorInfo)
            signature_tensors.update(_signature_tensors(value))
    by_name = {node.name: node for node in top}
    # The saver's nodes and everything they take as input (TF1 graphs build the saver from
    # plain nodes), never a node a signature serves.
    wanted = {_node_name(t) for t in saver_tensors} - {_node_name(t) for t in signature_tensors}
    saver = _closure(list(wanted), lambda n: [_node_name(i) for i in by_name[n].inputs], by_name)

    def callees(node: _Node) -> list[str]:
        return [*node.calls, node.op]

    def called(nodes: Iterable[_Node]) -> list[str]:
        return [c for node in nodes for c in callees(node)]

    def reach(roots: list[str]) -> set[str]:
        return _closure(roots, lambda f: called(functions[f]), functions)

    saver_only = reach(called(by_name[n] for n in saver))
    others = [n for n in top if n.name not in saver]
    served = reach(called(others) + [f for f in functions if f not in saver_only])
    findings = [f for node in others if (f := _op_finding(node, "the graph"))]
    findings += [
        f for n in saver if (f := _op_finding(by_name[n], "the graph", checkpoint_exempt=True))
    ]
    for name, nodes in functions.items():
        exempt = name not in served  # reached only from the saver
        findings += [f for node in nodes if (f := _op_finding(node, name, exempt))]
    return findings


def _op_finding(node: _Node, where: str, checkpoint_exempt: bool = False) -> Finding | None:
    family = op_family(node.op, node.strings)
    if family is None or (checkpoint_exempt and family.kind == _CHECKPOINT):
        return None
    return Finding(family.kind, node.op, where)


def _closure(roots: list[str], edges: Any, known: Any) -> set[str]:
    """Every name reachable from roots along edges(name), among the known names."""
    seen: set[str] = set()
    stack = [r for r in roots if r in known]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        stack.extend(e for e in edges(name) if e in known and e not in seen)
    return seen


def _node_name(tensor: str) -> str:
    """'^node', 'node:0' or 'node:output:0' → 'node'."""
    return tensor.lstrip("^").split(":", 1)[0]


def _function(function: memoryview) -> tuple[str, list[_Node]]:
    """FunctionDef: signature = 1 (OpDef: name = 1), node_def = 3."""
    name, nodes = "", []
    for number, value in _fields(function):
        if number == 1 and _is_view(value):
            name = next((_text(v) for f, v in _fields(value) if f == 1 and _is_view(v)), "")
        elif number == 3 and _is_view(value):
            nodes.append(_node(value))
    return name, nodes


def _node(data: memoryview) -> _Node:
    """NodeDef: name = 1, op = 2, input = 3, attr = 5 (map<string, AttrValue>)."""
    node = _Node("", "", [], [], {})
    for number, value in _fields(data):
        if not _is_view(value):
            continue
        if number == 1:
            node.name = _text(value)
        elif number == 2:
            node.op = _text(value)
        elif number == 3:
            node.inputs.append(_text(value))
        elif number == 5:
            key, attr = _map_entry(value)
            _attr_calls(attr, node.calls)
            if key in ("output_stream", "descriptor_source"):
                node.strings[key] = _text(_first(attr, 2) or memoryview(b""))
    return node


def _attr_calls(attr: memoryview | None, calls: list[str]) -> None:
    """Function names in an AttrValue: func = 10 and list = 1 (ListValue: func = 9), each a
    NameAttrList (name = 1, attr = 2) whose own attributes may name more."""
    if attr is None:
        return
    for number, value in _fields(attr):
        if number == 10 and _is_view(value):
            _name_attr_list(value, calls)
        elif number == 1 and _is_view(value):
            for inner, item in _fields(value):
                if inner == 9 and _is_view(item):
                    _name_attr_list(item, calls)


def _name_attr_list(data: memoryview, calls: list[str]) -> None:
    for number, value in _fields(data):
        if number == 1 and _is_view(value):
            calls.append(_text(value))
        elif number == 2 and _is_view(value):
            _attr_calls(_map_entry(value)[1], calls)


def _signature_tensors(entry: memoryview) -> Iterator[str]:
    _, signature = _map_entry(entry)
    for number, tensors in _fields(signature or memoryview(b"")):
        if number in (1, 2) and _is_view(tensors):
            info = _map_entry(tensors)[1]
            name = _first(info, 1) if info is not None else None
            if name is not None:
                yield _text(name)


def _map_entry(entry: memoryview) -> tuple[str, memoryview | None]:
    """A protobuf map entry: key = 1 (a string here), value = 2 (a message)."""
    key, value = "", None
    for number, item in _fields(entry):
        if number == 1 and _is_view(item):
            key = _text(item)
        elif number == 2 and _is_view(item):
            value = item
    return key, value


def _first(data: memoryview, wanted: int) -> memoryview | None:
    return next((v for n, v in _fields(data) if n == wanted and _is_view(v)), None)


def _is_view(value: Any) -> bool:
    return isinstance(value, memoryview)


def _text(value: memoryview) -> str:
    return value.tobytes().decode("utf-8", errors="replace")


# .tflite flatbuffer fields (tensorflow/compiler/mlir/lite/schema/schema.fbs): Model
# operator_codes = 1, subgraphs = 2; OperatorCode custom_code = 1; SubGraph operators = 3,
# name = 4; Operator opcode_index = 0.
_FLEX_PREFIX = "Flex"


def _tflite_ops(path: Path) -> list[Finding]:
    from accelbench.runtimes.flatbuffer import TFLITE_IDENTIFIER, OutOfBounds, Reader

    with path.open("rb") as file:
        if file.read(8)[4:8] != TFLITE_IDENTIFIER:
            return []
    data = path.read_bytes()
    reader = Reader(data)
    try:
        model = reader.table(reader.u32(0), "the root table")
        codes = [_fb_string(reader, code, 1) for code in reader.table_vector(model, 1)]
        flagged = {
            i: (family, code)
            for i, code in enumerate(codes)
            if code.startswith(_FLEX_PREFIX)
            and (family := op_family(code.removeprefix(_FLEX_PREFIX))) is not None
        }
        findings = []
        for number, subgraph in enumerate(reader.table_vector(model, 2)):
            where = f"subgraph {_fb_string(reader, subgraph, 4) or number}"
            for operator in reader.table_vector(subgraph, 3):
                index = reader.scalar(operator, 0, "<I")
                if index in flagged:
                    family, code = flagged[index]
                    findings.append(Finding(family.kind, code, where))
    except (OutOfBounds, struct.error, UnicodeDecodeError) as err:
        raise _unreadable(path, ".tflite flatbuffer", err) from None
    return findings


def _fb_string(reader: Any, table: tuple[int, int], index: int) -> str:
    pos = reader.field(table, index)
    if pos is None:
        return ""
    start = pos + reader.u32(pos)
    length = reader.u32(start)
    reader._need(start + 4, length, "a string")
    return reader.data[start + 4 : start + 4 + length].decode("utf-8")


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
