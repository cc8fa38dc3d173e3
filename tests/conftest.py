"""Shared fixtures: the committed test models and a CLI runner in a fresh process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose outside download failed; under CI (CI set), fail it instead, because
    a skipped test there would pass CI without having run."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


CALIBRATION_FILE = "calibration.json"
# Modules whose fixtures find downloads (a venv, fetched models) in the user's accelbench cache.
_USER_CACHE_MODULES = ("test_real_models", "test_tflite_runtime_venv")


@pytest.fixture(scope="session")
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's host calibration: the user's, copied, or made by the first test that
    needs one (calibrating takes seconds; every test doing it would add minutes)."""
    folder = tmp_path_factory.mktemp("session-cache")
    configured = os.environ.get("ACCELBENCH_CACHE_DIR")
    user = Path(configured) if configured else Path.home() / ".cache" / "accelbench"
    if (user / CALIBRATION_FILE).is_file():
        shutil.copy(user / CALIBRATION_FILE, folder)
    return folder


@pytest.fixture(scope="module", autouse=True)
def _module_cache_dir(
    request: pytest.FixtureRequest,
    _session_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[None]:
    """Each test module's fixtures get an accelbench cache folder of their own (see below)."""
    if request.module.__name__.rpartition(".")[2] in _USER_CACHE_MODULES:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        yield from _own_cache(_session_cache, tmp_path_factory, patch)


@pytest.fixture(autouse=True)
def _own_cache_dir(
    _module_cache_dir: None,
    _session_cache: Path,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    """Every test gets an accelbench cache folder of its own: runs keep prepared artifacts
    there, which would otherwise carry over from test to test (and between sessions)."""
    yield from _own_cache(_session_cache, tmp_path_factory, monkeypatch)


def _own_cache(
    session: Path, tmp_path_factory: pytest.TempPathFactory, patch: pytest.MonkeyPatch
) -> Iterator[None]:
    folder = tmp_path_factory.mktemp("cache")
    shared = session / CALIBRATION_FILE
    if shared.is_file():
        shutil.copy(shared, folder)
    patch.setenv("ACCELBENCH_CACHE_DIR", str(folder))
    yield
    if (folder / CALIBRATION_FILE).is_file() and not shared.is_file():
        shutil.copy(folder / CALIBRATION_FILE, shared)


@pytest.fixture(scope="session", autouse=True)
def _records_round_trip(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the session, every record in every records.jsonl the tests' runs and fixtures wrote
    (this process's, each xdist worker checks its own) reads into Record and back unchanged:
    the model holds every record accelbench writes, in every scenario the suite runs. A line
    that is not JSON (a torn or corrupted file a test made on purpose) is not a record; a test
    that writes a misfit record on purpose deletes its file when done."""
    yield
    from accelbench.records import RECORDS_FILE, Record

    wrong = []
    for path in sorted(tmp_path_factory.getbasetemp().rglob(RECORDS_FILE)):
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            try:
                back = json.dumps(Record.parse(data).to_dict(), sort_keys=True)
            except ValueError as err:
                wrong.append(f"{path}:{number}: {err}")
                continue
            if back != json.dumps(data, sort_keys=True):
                wrong.append(f"{path}:{number}: changed by Record.parse(...).to_dict()")
    assert not wrong, "records that do not round-trip through Record:\n" + "\n".join(wrong)


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600):
    """Run `accelbench ARGS` as a user would, in a fresh process; returns CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "accelbench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=timeout,
    )


def workers_of(run_dir: Path) -> list:
    """The worker processes still alive for a run folder (a test asserts none is left behind)."""
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "accelbench.runner.worker" in cmd and str(run_dir) in cmd:
            found.append(p)
    return found


def shuffled_digits() -> tuple:
    """scikit-learn's digits as (n, 8, 8, 1) float32 in [0, 1] and int64 labels, in a fixed
    shuffled order."""
    import numpy as np
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[..., None]
    y = data.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    return x[order], y[order]
