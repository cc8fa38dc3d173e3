"""Stored baselines: a run's records, slimmed to what compare and history need, kept by name.

A baseline is one JSON-lines file, ``<store>/<NAME>.jsonl``: a header line
``{"accelbench_baseline": 1, "name", "run_id", "source", "saved_at", "cells"}`` then one record
per cell (the latest record of each cell in the run) with its identity, status, metrics, raw
latencies, artifact sha256 and size, environment fingerprint, settings and the
``quality.correct_bits`` a paired accuracy test needs. The store is ``--store DIR``, else
``$ACCELBENCH_BASELINE_STORE``, else ``.accelbench/baselines`` under the current folder.

The store also keeps the baseline's artifacts, so that ``compare --rerun`` and ``ab`` can time
them again against a new run's, paired, on whatever machine runs the comparison. They are
content-addressed: ``<store>/artifacts/<sha256>/<file name>`` (a SavedModel folder copied whole),
so an artifact that several cells or baselines share is stored once, and a record's
``artifact.path`` names its copy relative to the store. Every copy is checked against the
recorded sha256 when stored and when read back.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError

BASELINE_FORMAT = 1
HEADER_KEY = "accelbench_baseline"
STORE_ENV = "ACCELBENCH_BASELINE_STORE"
DEFAULT_STORE = Path(".accelbench") / "baselines"
PREFIX = "baseline:"
ARTIFACTS_DIR = "artifacts"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Record fields a comparison or a trend reads; loadgen logs, graphs and projections (but for
# their bands) stay behind.
# fmt: skip below: 20 names packed as a paragraph, not one per line.
_KEPT_FIELDS = (
    "cell_id", "run_id", "model", "optimization", "profile", "execution", "threads", "scenario",
    "runtime", "status", "error", "metrics", "raw_latencies_ms", "finished_at", "settings",
    "validity", "environment", "schema_version", "canary", "parent_cell_id",
)  # fmt: skip


def store_dir(store: str | Path | None = None) -> Path:
    """The baseline store: the argument, else $ACCELBENCH_BASELINE_STORE, else the default."""
    if store is not None:
        return Path(store)
    return Path(os.environ.get(STORE_ENV) or DEFAULT_STORE)


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise UsageError(
            f"baseline name {name!r} is not allowed; use letters, digits, '.', '_' and '-' "
            "(like main or release-1.2)"
        )
    return name


def baseline_path(name: str, store: str | Path | None = None) -> Path:
    return store_dir(store) / f"{check_name(name)}.jsonl"


def slim_record(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a record that compare and history read (raw latencies included)."""
    out = {key: record[key] for key in _KEPT_FIELDS if key in record}
    artifact = record.get("artifact") or {}
    out["artifact"] = {k: artifact.get(k) for k in ("sha256", "bytes") if k in artifact}
    bits = (record.get("quality") or {}).get("correct_bits")
    if bits:
        out["quality"] = {"correct_bits": bits}
    band = (record.get("projection") or {}).get("band")
    if band:
        # compare shows a projected figure with its error band, from a baseline too.
        out["projection"] = {"band": band}
    return out


def is_baseline_file(path: Path) -> bool:
    """True when the file's first line is a baseline header (detection by content)."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = json.loads(fh.readline())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(first, dict) and HEADER_KEY in first


def read_baseline(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, records) of a baseline file; a missing or damaged file is a UsageError."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(
            f"baseline file {path} does not exist; see 'accelbench baseline list'"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"baseline file {path} cannot be read ({exc})") from None
    rows = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise UsageError(
                f"{path}:{number} is not valid JSON; the baseline is corrupt, save it again"
            ) from None
    if not rows or not isinstance(rows[0], dict) or HEADER_KEY not in rows[0]:
        raise UsageError(f"{path} has no baseline header; it is not an accelbench baseline")
    if rows[0][HEADER_KEY] != BASELINE_FORMAT:
        raise UsageError(
            f"{path} is baseline format {rows[0][HEADER_KEY]!r}; this accelbench reads format "
            f"{BASELINE_FORMAT}, save the baseline again"
        )
    return rows[0], rows[1:]


def resolve(spec: str, store: str | Path | None = None) -> Path:
    """The file of ``baseline:NAME``; an unknown name is a UsageError listing the known ones."""
    name = spec.removeprefix(PREFIX)
    path = baseline_path(name, store)
    if not path.is_file():
        known = [b["name"] for b in list_baselines(store)]
        raise UsageError(
            f"no baseline named {name!r} in {store_dir(store)}; "
            + (
                f"known: {', '.join(known)}"
                if known
                else "save one with 'accelbench baseline save'"
            )
        )
    return path


def list_baselines(store: str | Path | None = None) -> list[dict[str, Any]]:
    """Header and path of every baseline in the store, by name; a damaged one carries an error."""
    folder = store_dir(store)
    out = []
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            header, _ = read_baseline(path)
        except UsageError as exc:
            out.append({"name": path.stem, "path": str(path), "error": str(exc)})
            continue
        out.append({**header, "path": str(path)})
    return out
