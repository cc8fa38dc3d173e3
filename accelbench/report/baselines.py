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
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.records import artifact_info, find_artifact, write_atomic

BASELINE_FORMAT = 1
HEADER_KEY = "accelbench_baseline"
STORE_ENV = "ACCELBENCH_BASELINE_STORE"
DEFAULT_STORE = Path(".accelbench") / "baselines"
PREFIX = "baseline:"
ARTIFACTS_DIR = "artifacts"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# Record fields a comparison or a trend reads; loadgen logs, graphs and projections stay behind.
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
    return out


@dataclass
class SavedBaseline:
    """What `save_baseline` wrote: the baseline file and the artifacts it keeps."""

    path: Path
    cells: int
    # Distinct artifacts the baseline's records point at, and their size in the store.
    artifacts: int = 0
    artifact_bytes: int = 0
    # Of those, the ones this save copied (the others were already stored).
    new_artifacts: int = 0
    new_bytes: int = 0
    # (cell_id, why its artifact was not stored), one per cell.
    not_stored: list[tuple[str, str]] = field(default_factory=list)


def save_baseline(
    run: str | Path,
    name: str,
    *,
    store: str | Path | None = None,
    force: bool = False,
    artifacts: bool = True,
) -> SavedBaseline:
    """Store run folder `run`'s records as baseline `name`, with a copy of each record's
    artifact unless `artifacts` is False; an existing baseline needs force=True.

    An artifact that no longer exists, or whose content no longer has the recorded sha256, is
    not stored: its records keep the hash and size, and `not_stored` says why. The baseline file
    is written last, so it never points at a copy that is not there yet.
    """
    from accelbench.report.compare import load_source

    path = baseline_path(name, store)
    if path.exists() and not force:
        raise UsageError(
            f"baseline {name!r} already exists ({path}); pass --force to replace it or choose "
            "another name"
        )
    source = load_source(run)
    if source.kind != "run":
        raise UsageError(f"{run} is a {source.kind}, not a run folder; save a run folder")
    cells = [slim_record(r) for r in source.cells.values()]
    saved = SavedBaseline(path, len(cells))
    if artifacts:
        _store_artifacts(source.cells, cells, Path(source.root), store_dir(store), saved)
    header = {
        HEADER_KEY: BASELINE_FORMAT,
        "name": name,
        "run_id": next((c.get("run_id") for c in cells if c.get("run_id")), Path(run).name),
        "source": str(Path(run).resolve()),
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cells": len(cells),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(header, sort_keys=True)]
    lines += [json.dumps(c, sort_keys=True, allow_nan=False) for c in cells]
    write_atomic(path, "\n".join(lines) + "\n")  # whole or not at all
    return saved


def _store_artifacts(
    records: dict[str, dict[str, Any]],
    slim: list[dict[str, Any]],
    root: Path,
    store: Path,
    saved: SavedBaseline,
) -> None:
    """Copy each record's artifact into the store (once per sha256) and point its slim record
    at the copy; record in `saved` what was stored and what could not be."""
    stored: dict[str, str] = {}  # sha256 -> path relative to the store
    for record in slim:
        artifact = record.get("artifact") or {}
        sha = artifact.get("sha256")
        if not sha:
            continue  # a training or failed record: nothing was built
        if sha not in stored:
            found, reason = find_artifact(records[record["cell_id"]].get("artifact"), root)
            if found is None:
                artifact["not_stored"] = reason
                saved.not_stored.append((record["cell_id"], reason))
                continue
            relative, copied = _store_artifact(found, sha, store)
            stored[sha] = relative
            size = int(artifact.get("bytes") or 0)
            saved.artifacts += 1
            saved.artifact_bytes += size
            saved.new_artifacts += copied
            saved.new_bytes += size if copied else 0
        artifact["path"] = stored[sha]


def _store_artifact(source: Path, sha: str, store: Path) -> tuple[str, bool]:
    """The store's copy of an artifact whose sha256 is known: (its path relative to the store,
    whether it was copied now). A copy already there with that content is kept."""
    folder = store / ARTIFACTS_DIR / sha
    if folder.is_dir():
        for entry in sorted(folder.iterdir()):
            if artifact_info(entry)["sha256"] == sha:
                return (Path(ARTIFACTS_DIR) / sha / entry.name).as_posix(), False
        shutil.rmtree(folder)  # a damaged or partial copy: replaced below
    # Copied beside its final place, checked, then renamed: a reader sees a whole copy or none.
    tmp = store / ARTIFACTS_DIR / f".tmp-{sha[:16]}-{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir(parents=True)
    try:
        target = tmp / source.name
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copyfile(source, target)
        if artifact_info(target)["sha256"] != sha:
            raise UsageError(
                f"artifact {source} changed while it was copied into the baseline store; save "
                "the baseline again"
            )
        try:
            tmp.rename(folder)
        except OSError:
            if not folder.is_dir():
                raise
            # Another save stored the same content meanwhile: same sha256, same bytes.
            return _store_artifact(source, sha, store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return (Path(ARTIFACTS_DIR) / sha / source.name).as_posix(), True


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
