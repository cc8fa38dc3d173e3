"""`accelbench inspect`: what in a model file reaches outside the model, read without loading it."""

from __future__ import annotations

import argparse
from pathlib import Path

from accelbench.cli.base import Command
from accelbench.errors import UsageError


class Inspect(Command):
    name = "inspect"
    help = "list what in a model file touches files, the network or processes, or runs code"
    description = (
        "Read MODEL as data, without loading it: a SavedModel's operations (every "
        "function its graph can call, its own checkpoint save/restore aside), a .tflite's Flex "
        "operations, and a Keras file's Lambda layers. Prints one line per finding: kind, "
        "operation or layer, where (function, subgraph or config). bench, run, optimize, "
        "train, serve and ab refuse such a model unless --trust-model. Exit 0: nothing "
        "found, 1: something found, 2: not a readable model."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("model", help="a SavedModel folder, .tflite, .keras or .h5 file")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        """Print the model's findings; the exit status (0 none, 1 some)."""
        from accelbench.runtimes.model_inspect import find_unsafe

        path = Path(args.model)
        if not path.exists():
            raise UsageError(
                f"model {path} does not exist; pass a SavedModel folder or a model file"
            )
        if path.is_dir() and not any(
            (path / name).is_file() for name in ("saved_model.pb", "saved_model.pbtxt")
        ):
            raise UsageError(f"{path} is a folder without saved_model.pb; pass a SavedModel folder")
        if path.is_file() and not _known_file(path):
            raise UsageError(
                f"{path} is not a model file accelbench inspects; pass a SavedModel folder, a "
                ".tflite, .keras or .h5 file"
            )
        findings = find_unsafe(path)
        if not findings:
            print(f"{path}: nothing found that touches files, the network or processes")
            return 0
        rows = [(f.kind, f.name, f.where, f.describe()) for f in findings]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        print(f"{path}: {len(findings)} finding(s)")
        for row in rows:
            cells = (cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
            print("  ".join(cells) + "  " + row[3])
        return 1


def _known_file(path: Path) -> bool:
    from accelbench.runtimes.flatbuffer import TFLITE_IDENTIFIER

    if path.suffix.lower() in (".keras", ".h5", ".hdf5"):
        return True
    with path.open("rb") as file:
        head = file.read(8)
    return head[4:8] == TFLITE_IDENTIFIER or head.startswith(b"\x89HDF")
