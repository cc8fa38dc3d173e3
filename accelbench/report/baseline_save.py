"""Saving a run folder as a baseline: its records slimmed, and a copy of each artifact in the
store (the format and the store are `accelbench.report.baselines`')."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.records import artifact_info, find_artifact, write_atomic
from accelbench.report.baselines import (
    ARTIFACTS_DIR,
    BASELINE_FORMAT,
    HEADER_KEY,
    baseline_path,
    slim_record,
    store_dir,
)
from accelbench.report.compare import load_source


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
