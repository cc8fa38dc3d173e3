"""Prepared artifacts kept by content, so that a run with nothing new to train trains nothing.

A preparation (training a model, making each optimized artifact, scoring them) takes minutes;
its outcome depends only on what `cache_key` names: the model (a reference model's name, or a
user model file's content), the data (a data file's content; a reference model's built-in data
is made by accelbench's models code from scikit-learn's bundled sets or a seeded generator, so
that code, the seed and the package versions stand for it), the seed, the epochs, the
optimizations in their order, the versions of the packages that train, convert and score, the
CPU, and accelbench's version and the content of its training, optimization and scoring code.
A change to any of them is another key: the model is prepared again.

An entry is a folder ``$ACCELBENCH_CACHE_DIR/prepared/<key sha256>/`` holding the preparation's
files (artifacts and log) and ``entry.json``: the key, each file's sha256, and the
preparation's result (with paths relative to its folder) and sandbox fields, from which the
sweep writes the same records a fresh preparation wrote. Only a preparation whose every
artifact was made is stored. An entry is written in a temporary folder and renamed into place;
one whose entry.json is unreadable or whose files are missing or differ from their sha256 is
ignored (and replaced by the next preparation).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import stat
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelbench.runner.suite import PrepareJob

FORMAT = 1
CACHE_FOLDER = "prepared"
ENTRY_FILE = "entry.json"
FILES_FOLDER = "files"
# What the preparation's result says instead of its own folder, in a stored entry.
OUT_DIR_MARK = "${OUT_DIR}"
# The preparation's instructions and result are written afresh by the sweep, not restored.
_NOT_STORED = frozenset({"job.json", "result.json", "prepared.json"})
# The packages whose code trains, converts, quantizes or scores, or makes the built-in data.
# fmt: skip below: 9 names packed as a paragraph, not one per line.
_PACKAGES = (
    "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
    "ai-edge-quantizer", "jax", "jaxlib", "numpy", "scikit-learn",
)  # fmt: skip
# accelbench's own code that a preparation runs, relative to the package.
_SOURCES = ("models", "optimizers", "runner/prepare.py", "keras_compat.py")


def cache_root() -> Path:
    """Where prepared artifacts are kept: ``prepared/`` in accelbench's cache folder."""
    from accelbench.hardware_profiles.calibrate import cache_dir

    return cache_dir() / CACHE_FOLDER


def cache_key(job: PrepareJob, environment: dict[str, Any]) -> dict[str, Any]:
    """Everything a preparation's outcome depends on (see the module's description)."""
    from accelbench import __version__

    return {
        "format": FORMAT,
        "model": job.model,
        "kind": job.kind,
        "model_sha256": content_sha256(Path(job.path)) if job.path else None,
        "data_sha256": content_sha256(Path(job.data)) if job.data else "built-in",
        "data_label": job.label,
        "seed": job.seed,
        "epochs": job.epochs,
        "fine_tune_epochs": job.fine_tune_epochs,
        "optimizations": list(job.optimizations),
        "packages": package_versions(),
        "python": platform.python_version(),
        "cpu": {
            "model": environment.get("cpu_model"),
            "flags": environment.get("cpu_flags"),
            "machine": environment.get("machine") or platform.machine(),
        },
        "accelbench": __version__,
        "source_sha256": source_sha256(),
    }


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()


@functools.cache
def package_versions() -> dict[str, str | None]:
    from importlib import metadata

    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def source_sha256() -> str:
    """The sha256 of accelbench's preparation code (every file, with its path), so that an
    uncommitted change counts as well as a commit."""
    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for name in _SOURCES:
        top = package / name
        for path in sorted(top.rglob("*.py")) if top.is_dir() else [top]:
            digest.update(path.relative_to(package).as_posix().encode() + b"\0")
            digest.update(path.read_bytes())
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, or of a folder's files (with their relative paths)."""
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
            _update_from(digest, file)
    elif path.is_file():
        _update_from(digest, path)
    else:
        digest.update(b"missing:" + str(path).encode())
    return digest.hexdigest()


def _update_from(digest: Any, path: Path) -> None:
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)


@dataclass(frozen=True)
class Entry:
    """A stored preparation, restored into a run: its result (paths in the run's folder), the
    sandbox fields its records had, and the run it was made in."""

    digest: str
    result: dict[str, Any]
    sandbox: dict[str, Any]
    prepared_in_run: str | None


def lookup(digest: str, key: dict[str, Any], out_dir: Path) -> tuple[Entry | None, str | None]:
    """Place the entry's files in out_dir (hard links, or copies across filesystems) and return
    it; or (None, why it is unusable), or (None, None) when there is no entry."""
    folder = cache_root() / digest
    if not folder.is_dir():
        return None, None
    try:
        entry = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
        if entry.get("key") != key:
            return None, "its key differs from its name"
        files: dict[str, str] = entry["files"]
        for name, sha in files.items():
            stored = folder / FILES_FOLDER / name
            if not stored.is_file() or stored.is_symlink() or content_sha256(stored) != sha:
                return None, f"{name} is missing or differs from its sha256"
        for name in files:
            _place(folder / FILES_FOLDER / name, out_dir / name)
        result = relocate(entry["result"], OUT_DIR_MARK, str(out_dir))
        return Entry(digest, result, entry.get("sandbox") or {}, entry.get("run_id")), None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        return None, f"it cannot be read ({err})"


def store(
    digest: str,
    key: dict[str, Any],
    out_dir: Path,
    result: dict[str, Any],
    sandbox: dict[str, Any],
    run_id: str,
) -> bool:
    """Keep a finished preparation's files and result under its key; False when it cannot be
    written (the run goes on: the cache only saves time)."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-", dir=root))
    except OSError as err:
        _warn(f"cannot write the artifact cache {root} ({err})")
        return False
    try:
        files = {}
        for source in _regular_files(out_dir):
            name = source.relative_to(out_dir).as_posix()
            if name in _NOT_STORED:
                continue
            target = staging / FILES_FOLDER / name
            target.parent.mkdir(parents=True, exist_ok=True)
            _copy_regular(source, target)
            files[name] = content_sha256(target)
        entry = {
            "format": FORMAT,
            "key": key,
            "files": files,
            "result": relocate(result, str(out_dir), OUT_DIR_MARK),
            "sandbox": sandbox,
            "run_id": run_id,
        }
        (staging / ENTRY_FILE).write_text(json.dumps(entry), encoding="utf-8")
        final = root / digest
        if final.exists():  # an unusable entry: replaced whole
            aside = Path(tempfile.mkdtemp(prefix=f".{digest[:12]}-old-", dir=root))
            os.rename(final, aside / "entry")
            shutil.rmtree(aside, ignore_errors=True)
        os.rename(staging, final)
        return True
    except OSError as err:  # a full disk, or another run's rename of the same key first
        if not (root / digest / ENTRY_FILE).is_file():
            _warn(f"cannot write the artifact cache entry {root / digest} ({err})")
        return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def relocate(value: Any, old: str, new: str) -> Any:
    """value with every string that is ``old`` or a path under it moved under ``new``."""
    if isinstance(value, dict):
        return {k: relocate(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [relocate(v, old, new) for v in value]
    if isinstance(value, str) and (value == old or value.startswith(old + "/")):
        return new + value[len(old) :]
    return value


def _regular_files(folder: Path) -> list[Path]:
    """The regular files under folder, links neither followed nor taken: a sandboxed process
    wrote there, and a link it left could point at any of the user's files."""
    found = []
    for top, dirs, names in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(names):
            path = Path(top) / name
            if stat.S_ISREG(path.lstat().st_mode):
                found.append(path)
    return found


def _copy_regular(source: Path, target: Path) -> None:
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def _place(stored: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(stored, target)
    except OSError:  # another filesystem, or links not allowed
        shutil.copyfile(stored, target)


def _warn(text: str) -> None:
    print(f"accelbench: warning: {text}; the next run prepares this model again", file=sys.stderr)
