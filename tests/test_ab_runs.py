"""`accelbench ab` and `compare --rerun` on two runs or baselines: the matched cells' artifacts
re-measured paired, and baselines that keep their artifacts."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import DATA, run_cli


def _suite_run(folder: Path, models: dict[str, str], out: Path) -> Path:
    """A run of `models` ({name: test model}), copied into `folder`, at one thread in
    single-stream and offline: two cells per model, of the same artifact."""
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, model in models.items():
        shutil.copyfile(DATA / model, folder / f"{name}.tflite")
        entries.append({"path": str(folder / f"{name}.tflite"), "name": name})
    suite = {
        "name": "t",
        "models": entries,
        "threads": [1],
        "scenarios": ["single-stream", "offline"],
    }
    (folder / "suite.yaml").write_text(json.dumps(suite), encoding="utf-8")
    proc = run_cli("run", str(folder / "suite.yaml"), "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """BASE: m1 = conv2, m2 = cnn; NEW: m1 = conv6 (three times the convolutions), m2 = cnn."""
    root = tmp_path_factory.mktemp("runs")
    # Side by side: the tests judge time only from their own paired re-measurements.
    with ThreadPoolExecutor(2) as pool:
        base = pool.submit(
            _suite_run,
            root / "base",
            {"m1": "conv2_f32.tflite", "m2": "cnn_f32.tflite"},
            root / "BASE",
        )
        new = pool.submit(
            _suite_run,
            root / "new",
            {"m1": "conv6_f32.tflite", "m2": "cnn_f32.tflite"},
            root / "NEW",
        )
        return {"base": base.result(), "new": new.result()}


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]


def _rows_by_model(payload: dict) -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {}
    for row in payload["comparisons"]:
        rows.setdefault(row["cell_id"].split(".")[0], []).append(row)
    return rows


def _error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and proc.stdout == "", proc.stderr + proc.stdout
    assert len(lines) == 1 and lines[0].startswith("accelbench: error: "), proc.stderr
    return lines[0]


def test_ab_two_runs_slower_model_regresses_and_cells_share_a_measurement(runs, tmp_path):
    out = tmp_path / "ab"
    proc = run_cli(
        "ab",
        str(runs["base"]),
        str(runs["new"]),
        "--format",
        "json",
        "--out",
        str(out),
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr + proc.stdout
    rows = _rows_by_model(json.loads(proc.stdout))
    assert {r["cell_id"].split(".")[4] for r in rows["m1"]} == {"single-stream", "offline"}
    assert all(r["verdict"] == "regressed" and r["ci_low"] > 1.5 for r in rows["m1"])
    assert all(r["verdict"] != "regressed" for r in rows["m2"])
    # Two cells of one artifact pair on one profile and thread count: one measurement each.
    records = _records(out)
    assert len(records) == 2 and all(r["scenario"] == "paired" for r in records)
    assert {r["measurement"] for r in rows["m1"]} == {records[0]["cell_id"]}
    assert sorted(records[0]["settings"]["ab"]["cells"]) == sorted(r["cell_id"] for r in rows["m1"])
    assert records[0]["paired"]["artifacts"]["new"]["path"].endswith("new/m1.tflite")

    # The other way round: NEW is faster, the same model is not a regression: exit 0.
    proc = run_cli(
        "ab", str(runs["new"]), str(runs["base"]), "--out", str(tmp_path / "swapped"), timeout=120
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    m1 = [line for line in proc.stdout.splitlines() if line.startswith("m1.")]
    assert len(m1) == 2 and all(line.endswith("improved") for line in m1)
    assert "2 paired measurements for 4 cells" in proc.stdout


def test_compare_rerun_judges_size_and_quality_from_records_and_time_paired(runs, tmp_path):
    out = tmp_path / "rerun"
    proc = run_cli(
        "compare",
        str(runs["base"]),
        str(runs["new"]),
        "--rerun",
        "--format",
        "json",
        "--out",
        str(out),
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    assert payload["settings"]["time_verdicts"] == "paired re-measurement"
    verdicts = {
        (r["cell_id"].split(".")[0], r["cell_id"].split(".")[4], r["metric"]): r
        for r in payload["rows"]
    }
    for scenario in ("single-stream", "offline"):
        assert verdicts["m1", scenario, "rerun_time_ratio"]["verdict"] == "regressed"
        assert verdicts["m1", scenario, "rerun_time_ratio"]["ci_low"] > 1.5
        assert verdicts["m2", scenario, "rerun_time_ratio"]["verdict"] != "regressed"
        # Size from the records: conv6 is larger, the same cnn is not.
        assert verdicts["m1", scenario, "model_bytes"]["verdict"] == "regressed"
        assert verdicts["m2", scenario, "model_bytes"]["verdict"] == "unchanged"
        # The recorded latency no longer judges anything.
        assert verdicts["m1", scenario, "latency_p50_ms"]["verdict"] == "info"
    assert len(_records(out)) == 2

    proc = run_cli(
        "compare",
        str(runs["new"]),
        str(runs["base"]),
        "--rerun",
        "--format",
        "markdown",
        "--out",
        str(tmp_path / "md"),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "rerun_time_ratio" in proc.stdout and "improved" in proc.stdout
    assert "re-measuring both sides' artifacts" in proc.stdout


def test_baseline_keeps_artifacts_once_and_ab_reads_the_copies(runs, tmp_path):
    store = tmp_path / "store"
    proc = run_cli("baseline", "save", str(runs["base"]), "--name", "main", "--store", str(store))
    assert proc.returncode == 0, proc.stderr
    # Four cells, two distinct artifacts: two copies, named by their sha256.
    stored = sorted(p.name for p in (store / "artifacts").iterdir())
    conv2, cnn = (
        (DATA / "conv2_f32.tflite").stat().st_size,
        (DATA / "cnn_f32.tflite").stat().st_size,
    )
    assert len(stored) == 2 and all(len(name) == 64 for name in stored)
    assert f"artifacts: 2 stored in {store / 'artifacts'}, {(conv2 + cnn) / 1024:.1f} KiB" in (
        proc.stdout
    )
    records = [json.loads(line) for line in (store / "main.jsonl").read_text().splitlines()[1:]]
    assert all(r["artifact"]["path"].startswith("artifacts/") for r in records)

    # NEW shares the cnn artifact: only conv6 is copied.
    proc = run_cli("baseline", "save", str(runs["new"]), "--name", "pr", "--store", str(store))
    assert "artifacts: 2 stored" in proc.stdout and "(1 copied now" in proc.stdout
    assert len(list((store / "artifacts").iterdir())) == 3

    # A baseline of its own run, whose model file is then deleted: ab times the stored copy.
    model = tmp_path / "own" / "m1.tflite"
    own = _suite_run(model.parent, {"m1": "conv2_f32.tflite"}, tmp_path / "OWN")
    assert (
        run_cli("baseline", "save", str(own), "--name", "own", "--store", str(store)).returncode
        == 0
    )
    model.unlink()
    out = tmp_path / "ab"
    proc = run_cli(
        "ab",
        "baseline:own",
        str(runs["new"]),
        "--store",
        str(store),
        "--format",
        "json",
        "--out",
        str(out),
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr + proc.stdout
    payload = json.loads(proc.stdout)
    assert payload["skipped"] == [] and len(payload["comparisons"]) == 2
    assert all(r["verdict"] == "regressed" for r in payload["comparisons"])
    (record,) = _records(out)
    assert record["paired"]["artifacts"]["base"]["path"].startswith(str(store / "artifacts"))


def test_changed_artifact_is_skipped_with_its_reason(runs, tmp_path):
    store = tmp_path / "store"
    assert (
        run_cli(
            "baseline", "save", str(runs["base"]), "--name", "main", "--store", str(store)
        ).returncode
        == 0
    )
    records = [json.loads(line) for line in (store / "main.jsonl").read_text().splitlines()[1:]]
    copies = {r["cell_id"].split(".")[0]: store / r["artifact"]["path"] for r in records}
    copies["m2"].write_bytes((DATA / "mlp_f32.tflite").read_bytes())  # m2's copy is changed

    proc = run_cli(
        "ab",
        "baseline:main",
        str(runs["new"]),
        "--store",
        str(store),
        "--format",
        "json",
        "--out",
        str(tmp_path / "ab"),
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr + proc.stdout  # m1 still compared: regressed
    payload = json.loads(proc.stdout)
    assert sorted(s["cell_id"].split(".")[0] for s in payload["skipped"]) == ["m2", "m2"]
    assert all("changed since it was recorded" in s["reason"] for s in payload["skipped"])
    assert {r["cell_id"].split(".")[0] for r in payload["comparisons"]} == {"m1"}

    proc = run_cli(
        "ab",
        "baseline:main",
        str(runs["new"]),
        "--store",
        str(store),
        "--out",
        str(tmp_path / "table"),
        timeout=120,
    )
    assert "skipped: base: artifact" in proc.stdout

    # Nothing left that can be re-measured: exit 2, nothing written.
    copies["m1"].write_bytes(b"not the model any more")
    out = tmp_path / "none"
    proc = run_cli(
        "ab", "baseline:main", str(runs["new"]), "--store", str(store), "--out", str(out)
    )
    assert "none of the 4 matched LoadGen cells can be re-measured" in _error_line(proc)
    proc = run_cli(
        "compare",
        "baseline:main",
        str(runs["new"]),
        "--store",
        str(store),
        "--rerun",
        "--out",
        str(out),
    )
    assert "can be re-measured" in _error_line(proc)
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["ab", "{base}", str(DATA / "conv2_f32.tflite")], "not a run folder or baseline"),
        (["ab", "{base}", "{new}", "--threads", "2"], "--threads applies to two model files"),
        (["ab", "{base}", "{new}", "--inputs", "x.npy"], "--inputs applies to two model files"),
        (["compare", "{base}", "{new}", "--pairs", "10"], "only with --rerun"),
        (["compare", "{base}", "--rerun"], "--rerun needs BASE and NEW"),
    ],
)
def test_runs_bad_input_exits_2_and_writes_nothing(runs, tmp_path, args, needle) -> None:
    out = tmp_path / "out"
    args = [a.format(base=runs["base"], new=runs["new"]) for a in args]
    proc = run_cli(*args, "--out", str(out))
    assert needle in _error_line(proc)
    assert not out.exists()
