"""Result records: the metric triple, the record schema and the append-only records.jsonl file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"

Direction = Literal["lower", "higher", "none"]
STATUSES = ("ok", "failed", "invalid", "skipped")


def metric(value: float | int | None, unit: str, direction: Direction) -> dict[str, Any]:
    """One metric as stored in a record: its value, its unit, and which way is better."""
    if direction not in ("lower", "higher", "none"):
        raise ValueError(f"direction must be 'lower', 'higher' or 'none', not {direction!r}")
    if value is not None and not isinstance(value, int):
        value = float(value)
    return {"value": value, "unit": unit, "direction": direction}


def append_record(run_dir: Path, record: dict[str, Any]) -> None:
    """Append one record as a JSON line and flush it to disk, so a crash loses nothing finished."""
    run_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=True, default=_json_default)
    path = run_dir / RECORDS_FILE
    with open(path, "a+b") as fh:
        mend_torn_tail(fh, path)
        fh.write(line.encode("utf-8") + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def mend_torn_tail(fh: BinaryIO, path: Path) -> Path | None:
    """Make a records file end in a newline before anything is appended to it.

    A writer killed mid-line leaves a fragment with no newline; the next record appended would
    be glued onto it and both lost. A fragment that is a whole record (only the newline
    missing) gets its newline; any other is cut off and kept in ``records.jsonl.torn-STAMP``
    beside the file, returned, so that the cell it belonged to counts as not run.
    ``fh`` is the file opened "a+b" (reads anywhere, writes at the end).
    """
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return None
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return None
    start = _last_line_start(fh, size)
    fh.seek(start)
    fragment = fh.read()
    try:
        whole = isinstance(json.loads(fragment), dict)
    except ValueError:  # UnicodeDecodeError included
        whole = False
    if whole:
        fh.write(b"\n")
        return None
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.torn-{stamp}-{os.getpid()}")
    kept.write_bytes(fragment)
    fh.truncate(start)
    fh.flush()
    os.fsync(fh.fileno())
    return kept


def _last_line_start(fh: BinaryIO, size: int, block: int = 1 << 16) -> int:
    """Offset just past the file's last newline (0 if it has none), read backwards in blocks."""
    end = size
    while end > 0:
        begin = max(0, end - block)
        fh.seek(begin)
        at = fh.read(end - begin).rfind(b"\n")
        if at >= 0:
            return begin + at + 1
        end = begin
    return 0


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """All complete records of a run; a torn last line (a killed writer) is ignored."""
    return list(iter_records(run_dir))


def iter_records(run_dir: Path) -> Iterator[dict[str, Any]]:
    path = run_dir / RECORDS_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) or (number == len(lines) - 1 and not lines[-1]):
                continue  # the last line was cut short by a kill: not a record
            raise ValueError(
                f"{path}:{number} is not valid JSON; the records file is corrupt"
            ) from None


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a record")


def artifact_info(path: Path) -> dict[str, Any]:
    """Path, sha256 and size of an artifact file, or of every file of a SavedModel folder."""
    digest = hashlib.sha256()
    total = 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        data = f.read_bytes()
        total += len(data)
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        digest.update(data)
    return {"path": str(path), "sha256": digest.hexdigest(), "bytes": total}


def write_atomic(path: Path, text: str) -> Path:
    """Write text whole or not at all: a temporary file beside path, then a rename. A reader
    sees the old file or the new, after a power cut too (see replace_durably)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def temporary_path(path: Path) -> Path:
    """A temporary name beside path, unique per process and per call, so that concurrent
    writers (processes or threads) never share one."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def replace_durably(tmp: Path, path: Path) -> None:
    """Rename a written temporary file onto path so that a crash leaves the old file or the
    whole new one: the data is fsynced before the rename (else the rename can reach the disk
    first, and path be empty), and the folder after it (else the rename can be lost)."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write a worker's result atomically: the sweep sees all of it or nothing."""
    write_atomic(path, json.dumps(result, default=plain))


def plain(obj: Any) -> Any:
    """A JSON-able form of numpy scalars and arrays, pydantic models and plain objects."""
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return str(obj)
