"""accelbench.report.compare on hand-made run folders, and on two real runs the test makes."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DATA, run_cli

from accelbench.errors import UsageError
from accelbench.records import append_record, metric, read_records
from accelbench.report.compare import compare_runs, exit_code, parse_threshold


def _record(cell_id, raw, *, sha="a" * 64, host="host-1", accuracy=0.9, model_bytes=10_000):
    raw = [float(x) for x in raw]
    p50 = float(np.median(raw)) if raw else 1.0
    metrics = {
        "latency_p50_ms": metric(p50, "ms", "lower"),
        "latency_p90_ms": metric(float(np.percentile(raw, 90)) if raw else 1.0, "ms", "lower"),
        "qps": metric(1000.0 / float(np.mean(raw)) if raw else 1000.0, "samples/s", "higher"),
        "accuracy": metric(accuracy, "fraction", "higher"),
        "model_bytes": metric(model_bytes, "bytes", "lower"),
        "query_count": metric(len(raw), "queries", "none"),
    }
    return {
        "schema_version": 1,
        "cell_id": cell_id,
        "model": cell_id.split(".")[0],
        "optimization": "fp32",
        "profile": "host",
        "threads": 1,
        "scenario": "single-stream",
        "status": "ok",
        "metrics": metrics,
        "raw_latencies_ms": raw,
        "artifact": {"sha256": sha, "bytes": model_bytes},
        "environment": {"host_fingerprint_id": host},
    }


def _latencies(rng, n=400, scale=1.0):
    # Right-skewed like real per-query latencies, around 2 ms.
    return 2.0 * scale * rng.lognormal(0.0, 0.15, n)


def _write_run(path: Path, records) -> Path:
    for record in records:
        append_record(path, record)
    return path


def _row(comparison, cell_id, name):
    (row,) = [r for r in comparison.rows if r.cell_id == cell_id and r.metric == name]
    return row


def test_aa_comparisons_report_no_regression_in_at_least_95_percent_of_trials(tmp_path):
    trials, cells = 20, 12
    clean = 0
    for trial in range(trials):
        rng = np.random.default_rng(trial)
        ids = [f"m{i}.fp32.host.t1.single-stream" for i in range(cells)]
        base = _write_run(tmp_path / f"b{trial}", [_record(c, _latencies(rng)) for c in ids])
        new = _write_run(tmp_path / f"n{trial}", [_record(c, _latencies(rng)) for c in ids])
        comparison = compare_runs(base, new)
        assert len({r.cell_id for r in comparison.rows}) == cells
        clean += exit_code(comparison) == 0
    assert clean / trials >= 0.95


def test_twenty_percent_slower_is_regressed_one_percent_is_not(tmp_path):
    rng = np.random.default_rng(7)
    raw = _latencies(rng, n=5000)
    base = _write_run(tmp_path / "base", [_record("slow", raw), _record("slight", raw)])
    new = _write_run(tmp_path / "new", [_record("slow", raw * 1.2), _record("slight", raw * 1.01)])
    comparison = compare_runs(base, new, threshold=0.05)
    slow = _row(comparison, "slow", "latency_p50_ms")
    assert slow.verdict == "regressed"
    assert slow.ratio == pytest.approx(1.2)
    assert slow.ci_low < 1.2 < slow.ci_high
    assert _row(comparison, "slow", "qps").verdict == "regressed"
    slight = _row(comparison, "slight", "latency_p50_ms")
    # Significant (same values scaled) but below the threshold: the threshold is what spares it.
    assert slight.p_value < 0.01
    assert slight.verdict == "unchanged"
    assert exit_code(comparison) == 1
    assert exit_code(comparison, fail_on=("inconclusive",)) == 0
    faster = compare_runs(new, base)
    assert _row(faster, "slow", "latency_p50_ms").verdict == "improved"
    assert exit_code(faster) == 0


def test_absolute_floor_and_too_few_samples(tmp_path):
    rng = np.random.default_rng(3)
    tiny = _latencies(rng, n=2000) * 1e-3  # ~2 µs: 20% is 0.0004 ms, under the 0.005 ms floor
    few = _latencies(rng, n=10)
    base = _write_run(tmp_path / "base", [_record("tiny", tiny), _record("few", few)])
    new = _write_run(tmp_path / "new", [_record("tiny", tiny * 1.2), _record("few", few * 2)])
    comparison = compare_runs(base, new)
    assert _row(comparison, "tiny", "latency_p50_ms").verdict == "unchanged"
    few_row = _row(comparison, "few", "latency_p50_ms")
    assert few_row.verdict == "inconclusive" and "raw latencies" in few_row.note
    assert _row(comparison, "few", "qps").verdict == "inconclusive"
    assert exit_code(comparison) == 0


def test_accuracy_drop_and_one_byte_growth_are_regressed_and_sha_change_is_shown(tmp_path):
    rng = np.random.default_rng(5)
    raw = _latencies(rng)
    base = _write_run(
        tmp_path / "base",
        [_record("acc", raw, accuracy=0.90), _record("size", raw, model_bytes=10_000)],
    )
    new = _write_run(
        tmp_path / "new",
        [
            _record("acc", raw, accuracy=0.88, sha="b" * 64),
            _record("size", raw, model_bytes=10_001),
        ],
    )
    comparison = compare_runs(base, new)
    assert _row(comparison, "acc", "accuracy").verdict == "regressed"
    assert _row(comparison, "size", "model_bytes").verdict == "regressed"
    assert _row(comparison, "size", "accuracy").verdict == "unchanged"
    assert all(r.sha_changed for r in comparison.rows if r.cell_id == "acc")
    assert not any(r.sha_changed for r in comparison.rows if r.cell_id == "size")
    assert comparison.counts()["regressed"] == 2
    markdown = comparison.to_markdown()
    assert markdown.splitlines()[0].endswith("2 regressed, 0 improved, 6 unchanged, 0 inconclusive")
    assert "| acc | unknown | accuracy |" in markdown and "changed" in markdown
    assert "| size | unknown | latency_p50_ms |" not in markdown  # unchanged: not in a PR comment
    payload = json.loads(comparison.to_json())
    assert payload["counts"]["regressed"] == 2
    assert {r["metric"] for r in payload["rows"]} >= {"latency_p50_ms", "latency_p90_ms", "qps"}
    assert "regressed" in comparison.to_table()


def test_different_hardware_makes_time_inconclusive_unless_allowed(tmp_path):
    rng = np.random.default_rng(11)
    raw = _latencies(rng, n=1000)
    base = _write_run(tmp_path / "base", [_record("c", raw, host="host-1")])
    new = _write_run(tmp_path / "new", [_record("c", raw * 1.3, host="host-2")])
    comparison = compare_runs(base, new)
    assert _row(comparison, "c", "latency_p50_ms").verdict == "inconclusive"
    assert _row(comparison, "c", "qps").verdict == "inconclusive"
    assert any("different hosts" in w for w in comparison.warnings)
    assert "different hosts" in comparison.to_markdown()
    assert exit_code(comparison) == 0
    allowed = compare_runs(base, new, allow_different_hardware=True)
    assert _row(allowed, "c", "latency_p50_ms").verdict == "regressed"


def test_bad_input_is_one_line_usage_error(tmp_path):
    rng = np.random.default_rng(0)
    good = _write_run(tmp_path / "good", [_record("c", _latencies(rng))])
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    line = json.dumps(_record("c", _latencies(rng)))
    (corrupt / "records.jsonl").write_text(line + "\n{not json\n" + line + "\n")
    no_id = _write_run(tmp_path / "no_id", [{"metrics": {}}])
    other = _write_run(tmp_path / "other", [_record("d", _latencies(rng))])
    cases = {
        tmp_path / "missing": "does not exist",
        empty: "no records.jsonl",
        corrupt: "corrupt",
        no_id: "no cell_id",
        other: "no cells in common",
    }
    for new, message in cases.items():
        with pytest.raises(UsageError, match=message) as info:
            compare_runs(good, new)
        assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="alpha"):
        compare_runs(good, good, alpha=1.5)
    with pytest.raises(UsageError, match="not a verdict"):
        exit_code(compare_runs(good, good), fail_on=("worse",))
    assert parse_threshold("5%") == pytest.approx(0.05)
    assert parse_threshold("0.1") == pytest.approx(0.1)
    with pytest.raises(UsageError, match="threshold"):
        parse_threshold("five")


def _bench(out: Path) -> Path:
    proc = run_cli(
        "bench",
        str(DATA / "mlp_f32.tflite"),
        "--profile",
        "host",
        "--threads",
        "1",
        "--scenario",
        "single-stream,offline",
        "--preset",
        "quick",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_two_real_runs_compare_cell_by_cell(tmp_path):
    base, new = _bench(tmp_path / "base"), _bench(tmp_path / "new")
    cells = {r["cell_id"] for r in read_records(base)}
    assert len(cells) == 2
    comparison = compare_runs(base, new)
    assert {r.cell_id for r in comparison.rows} == cells
    # Single-stream p50 is tested on the raw timings; offline p50 (completion times) is not.
    assert comparison.settings["time_tests"] == 1
    (latency,) = [
        r for r in comparison.rows if r.metric == "latency_p50_ms" and "single-stream" in r.cell_id
    ]
    assert latency.p_value is not None and latency.verdict in ("unchanged", "regressed", "improved")
    sizes = [r for r in comparison.rows if r.metric == "model_bytes"]
    assert len(sizes) == 2 and all(r.verdict == "unchanged" for r in sizes)
    regressed = any(r.verdict == "regressed" for r in comparison.rows)
    assert exit_code(comparison) == int(regressed)
    assert len(json.loads(comparison.to_json())["rows"]) == len(comparison.rows)


def _bench_as(model: Path, out: Path, profiles: str) -> Path:
    """A quick run of ``model`` saved as m.tflite, so that two models share their cell ids."""
    folder = out.with_name(out.name + "-model")
    folder.mkdir()
    (folder / "m.tflite").write_bytes(model.read_bytes())
    proc = run_cli(
        "bench",
        str(folder / "m.tflite"),
        "--profile",
        profiles,
        "--threads",
        "1",
        "--scenario",
        "single-stream",
        "--preset",
        "quick",
        "--out",
        str(out),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_compare_shows_projected_figures_with_their_bands_and_never_judges_them(tmp_path):
    small = _bench_as(DATA / "cnn_f32.tflite", tmp_path / "small", "nvidia-t4,rpi4")
    again = _bench_as(DATA / "cnn_f32.tflite", tmp_path / "again", "nvidia-t4")
    large = _bench_as(DATA / "conv24_f32.tflite", tmp_path / "large", "nvidia-t4,rpi4")

    shown = run_cli("compare", str(small), str(large), "--format", "json")
    assert shown.returncode == 1, shown.stderr  # the model grew: model_bytes regressed
    rows = json.loads(shown.stdout)["rows"]
    projected = [r for r in rows if r["metric"] == "projected_latency_ms"]
    assert {r["execution"] for r in projected} == {"projected", "emulated"}
    for row in projected:
        # 24 convolutions against 2: the bands cannot overlap, and still no verdict is given.
        assert row["verdict"] == "info" and row["new"] > row["base"]
        assert row["note"].startswith("projected, never measured: not judged")
        assert "do not overlap" in row["note"]
        assert row["base_band"].startswith(" [") and row["new_band"].startswith(" [")
    emulated = [r for r in rows if r["execution"] == "emulated" and r["metric"] == "qps"]
    assert "emulated: this host under the device's limits" in emulated[0]["note"]

    table = run_cli("compare", str(small), str(again))
    assert table.returncode == 0, table.stderr
    (line,) = [x for x in table.stdout.splitlines() if "projected_latency_ms" in x]
    # The same figure as the run's table prints it: value, then its band in brackets.
    record = next(r for r in read_records(small) if r["execution"] == "projected")
    band = record["projection"]["band"]
    assert f"[{band['low_ms']:.3g}–{band['high_ms']:.3g}]" in line
    assert "info (projected, never measured: not judged; the bands overlap" in line

    # A baseline keeps the band, so a compare against it shows the same.
    store = tmp_path / "store"
    saved = run_cli("baseline", "save", str(small), "--name", "main", "--store", str(store))
    assert saved.returncode == 0, saved.stderr
    against = run_cli("compare", "baseline:main", str(again), "--store", str(store))
    assert against.returncode == 0, against.stderr
    (line,) = [x for x in against.stdout.splitlines() if "projected_latency_ms" in x]
    assert line.count(f"[{band['low_ms']:.3g}–{band['high_ms']:.3g}]") == 2
    assert "the bands overlap" in line
