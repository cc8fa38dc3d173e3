"""The artifact cache: a second run takes the prepared artifacts instead of training again,
with the same records; --no-cache, another seed and a damaged entry prepare afresh."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

MODEL = "breast_cancer_mlp"
PREPARATION = ("training", "accuracy")
HIT = "prepared artifacts taken from the cache"


def _suite(folder: Path, seed: int = 0) -> Path:
    path = folder / f"suite-{seed}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": [{"name": MODEL}],
                "optimizations": ["fp32", "int8"],
                "profiles": ["host"],
                "threads": [1],
                "scenarios": ["single-stream"],
                "preset": "quick",
                "paired": False,
                "seed": seed,
            }
        )
    )
    return path


def _run(suite: Path, out: Path, cache: Path, *extra: str):
    proc = run_cli(
        "run",
        str(suite),
        "--out",
        str(out),
        "--no-progress",
        *extra,
        env={"ACCELBENCH_CACHE_DIR": str(cache)},
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _prepared(run_dir: Path) -> dict[str, dict]:
    lines = (run_dir / "records.jsonl").read_text().splitlines()
    return {r["cell_id"]: r for r in map(json.loads, lines) if r["scenario"] in PREPARATION}


def _trained(run_dir: Path) -> bool:
    # The preparation worker's instructions: written only when a worker prepares the model.
    return (run_dir / "artifacts" / MODEL / "job.json").is_file()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, str]:
    """A run that prepares the model and keeps it in a fresh cache, then one from that cache."""
    root = tmp_path_factory.mktemp("cache-runs")
    cache = root / "cache"
    first = _run(_suite(root), root / "first", cache)
    second = _run(_suite(root), root / "second", cache)
    assert HIT not in first.stderr
    return root / "first", root / "second", cache, second.stderr


def test_a_second_run_takes_the_artifacts_from_the_cache(two_runs) -> None:
    first, second, _cache, stderr = two_runs
    assert f"{MODEL}: {HIT}" in stderr
    assert _trained(first) and not _trained(second)
    fresh, cached = _prepared(first), _prepared(second)
    assert set(fresh) == set(cached) and len(fresh) == 3  # training + 2 accuracy records
    for cell_id, made in fresh.items():
        taken = cached[cell_id]
        assert made["settings"]["prepared_from_cache"] is False
        assert taken["settings"]["prepared_from_cache"] is True
        assert taken["settings"]["cache_key"] == made["settings"]["cache_key"]
        assert taken["settings"]["prepared_in_run"] == first.name
        assert taken["status"] == made["status"] == "ok"
        # The same figures as the preparation that made them.
        assert taken["metrics"] == made["metrics"]
        assert taken.get("quality") == made.get("quality")
        assert taken.get("training") == made.get("training")
        assert taken["sandbox"] == made["sandbox"]
        if made["scenario"] == "accuracy":
            assert taken["artifact"]["sha256"] == made["artifact"]["sha256"]
            # Inside the second run's folder, not the first's.
            assert Path(taken["artifact"]["path"]).resolve().is_relative_to(second.resolve())
            assert Path(taken["artifact"]["path"]).is_file()
    (training,) = [r for r in cached.values() if r["scenario"] == "training"]
    (trained,) = [r for r in fresh.values() if r["scenario"] == "training"]
    # This run's time: restoring the files, not training and converting again.
    assert training["wall_s"] < trained["wall_s"] / 5
    assert all(r["wall_s"] == 0.0 for r in cached.values() if r["scenario"] == "accuracy")
    # The cells measured the cached artifacts.
    lines = (second / "records.jsonl").read_text().splitlines()
    cells = [r for r in map(json.loads, lines) if r["scenario"] == "single-stream"]
    assert len(cells) == 2 and all(r["status"] == "ok" for r in cells)


@pytest.fixture(scope="module")
def later_runs(
    two_runs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[Path, Future]]]:
    """The runs after the first two, side by side (each test reads only its own run's records
    and messages, no timings): --no-cache on the shared cache, and another seed and a damaged
    entry, each on a copy of it made before any of them starts. Each: (its folder, its run)."""
    first, _second, cache, _stderr = two_runs
    folders = {name: tmp_path_factory.mktemp(name) for name in ("no-cache", "seed", "damaged")}
    for name in ("seed", "damaged"):
        shutil.copytree(cache, folders[name] / "cache")
    (entry,) = (folders["damaged"] / "cache" / "prepared").iterdir()
    stored = entry / "files" / "int8.tflite"
    data = bytearray(stored.read_bytes())
    data[-1] ^= 0xFF
    stored.write_bytes(bytes(data))

    def damaged(folder: Path) -> tuple:
        proc = _run(_suite(folder), folder / "run", folder / "cache")
        # Replaced: the next run takes it.
        return proc, _run(_suite(folder), folder / "again", folder / "cache")

    with ThreadPoolExecutor(3) as pool:
        folder = folders["no-cache"]
        runs = {
            "no-cache": pool.submit(_run, _suite(folder), folder / "run", cache, "--no-cache"),
            "seed": pool.submit(
                _run,
                _suite(folders["seed"], seed=1),
                folders["seed"] / "run",
                folders["seed"] / "cache",
            ),
            "damaged": pool.submit(damaged, folders["damaged"]),
        }
        yield {name: (folders[name], run) for name, run in runs.items()}


def test_no_cache_prepares_again(later_runs) -> None:
    folder, started = later_runs["no-cache"]
    proc, run = started.result(), folder / "run"
    assert HIT not in proc.stderr and _trained(run)
    for record in _prepared(run).values():
        assert record["settings"]["prepared_from_cache"] is False
        assert record["settings"]["cache_key"] is None


def test_another_seed_misses_the_cache(two_runs, later_runs) -> None:
    first, _second, _cache, _stderr = two_runs
    folder, started = later_runs["seed"]
    proc, run, own = started.result(), folder / "run", folder / "cache"
    assert HIT not in proc.stderr and _trained(run)
    records = _prepared(run).values()
    assert not any(r["settings"]["prepared_from_cache"] for r in records)
    (key,) = {r["settings"]["cache_key"] for r in records}
    (old_key,) = {r["settings"]["cache_key"] for r in _prepared(first).values()}
    assert key != old_key and (own / "prepared" / key).is_dir()


def test_a_damaged_entry_is_prepared_again_and_replaced(later_runs) -> None:
    folder, started = later_runs["damaged"]
    (proc, again), run = started.result(), folder / "run"
    assert "is not usable (int8.tflite is missing or differs from its sha256)" in proc.stderr
    assert HIT not in proc.stderr and _trained(run)
    # Replaced: the next run takes it, with the artifact the preparation made.
    assert HIT in again.stderr
    fresh = _prepared(run)
    for cell_id, record in _prepared(folder / "again").items():
        assert record["settings"]["prepared_from_cache"] is True
        if record["scenario"] == "accuracy":
            assert record["artifact"]["sha256"] == fresh[cell_id]["artifact"]["sha256"]
