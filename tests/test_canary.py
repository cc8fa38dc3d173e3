"""The machine-speed canary: its measurement, and compare judging latency relative to it."""

import json
from pathlib import Path

import numpy as np
import pytest

from accelbench.benchmarks import canary
from accelbench.cli import main
from accelbench.records import Record, append_record, metric
from accelbench.report.compare import canary_ratio, machine_moved

CELL = "m.fp32.host.t1.single-stream"


def test_canary_measures_positive_stable_times():
    times = [canary.measure() for _ in range(3)]
    assert all(0.1 < t < 1000.0 for t in times)
    # Medians of repetitions on one quiet-ish machine, seconds apart: within a factor of 2.
    assert max(times) / min(times) < 2.0
    assert "matmul" in canary.METHOD and "Python" in canary.METHOD


def _record(cell_id, raw, canary_ms=None):
    raw = [float(x) for x in raw]
    record = {
        "schema_version": 1,
        "cell_id": cell_id,
        "model": "m",
        "optimization": "fp32",
        "profile": "host",
        "threads": 1,
        "scenario": "single-stream",
        "status": "ok",
        "metrics": {
            "latency_p50_ms": metric(float(np.median(raw)), "ms", "lower"),
            "qps": metric(1000.0 / float(np.mean(raw)), "samples/s", "higher"),
            "model_bytes": metric(10_000, "bytes", "lower"),
        },
        "raw_latencies_ms": raw,
        "artifact": {"sha256": "a" * 64, "bytes": 10_000},
        "environment": {"host_fingerprint_id": "host-1"},
    }
    if canary_ms is not None:
        # Before and after differ a little, as they do on a real machine; their mean is canary_ms.
        record["canary"] = {
            "before_ms": canary_ms * 0.98,
            "after_ms": canary_ms * 1.02,
            "method": canary.METHOD,
        }
    return record


def _compare(tmp_path: Path, latency_scale, canary_scale, *, with_canary=True, seed=0):
    rng = np.random.default_rng(seed)
    raw = 2.0 * rng.lognormal(0.0, 0.15, 2000)
    base_canary, new_canary = (10.0, 10.0 * canary_scale) if with_canary else (None, None)
    base, new = tmp_path / "base", tmp_path / "new"
    append_record(base, _record(CELL, raw, base_canary))
    append_record(new, _record(CELL, raw * latency_scale, new_canary))
    return base, new


def _json_compare(base, new, capsys):
    code = main(["compare", str(base), str(new), "--format", "json"])
    payload = json.loads(capsys.readouterr().out)
    rows = {row["metric"]: row for row in payload["rows"]}
    return code, rows


def test_machine_slowdown_followed_by_latency_is_not_a_regression(tmp_path, capsys):
    # A/A: the same code, the machine 40% slower in the second run; canary and latencies follow.
    base, new = _compare(tmp_path, 1.4, 1.4)
    code, rows = _json_compare(base, new, capsys)
    latency = rows["latency_p50_ms"]
    assert code == 0
    assert latency["verdict"] == "inconclusive"
    assert latency["canary_ratio"] == pytest.approx(1.4)
    assert "machine speed changed ×1.40" in latency["note"] and "follows it" in latency["note"]
    assert rows["qps"]["verdict"] == "inconclusive"
    assert "machine speed changed ×1.40" in rows["qps"]["note"]
    assert rows["model_bytes"]["verdict"] == "unchanged"


def test_real_regression_on_a_steady_machine_is_regressed(tmp_path, capsys):
    base, new = _compare(tmp_path, 1.2, 1.0)
    code, rows = _json_compare(base, new, capsys)
    assert code == 1
    assert rows["latency_p50_ms"]["verdict"] == "regressed"
    assert rows["latency_p50_ms"]["canary_ratio"] == pytest.approx(1.0)
    assert rows["qps"]["verdict"] == "regressed"


def test_real_regression_while_the_machine_got_faster_is_regressed(tmp_path, capsys):
    # The code got 30% slower, the machine 10% faster: latencies ×1.17, canary ×0.9.
    base, new = _compare(tmp_path, 1.17, 0.9)
    code, rows = _json_compare(base, new, capsys)
    latency = rows["latency_p50_ms"]
    assert code == 1
    assert latency["verdict"] == "regressed"
    assert latency["canary_ratio"] == pytest.approx(0.9)
    assert "×1.30 relative to the machine's speed" in latency["note"]


def test_records_without_canary_are_judged_as_before(tmp_path, capsys):
    slow_base, slow_new = _compare(tmp_path / "slow", 1.4, 1.4, with_canary=False)
    code, rows = _json_compare(slow_base, slow_new, capsys)
    assert code == 1
    assert rows["latency_p50_ms"]["verdict"] == "regressed"
    assert rows["latency_p50_ms"]["canary_ratio"] is None
    same_base, same_new = _compare(tmp_path / "same", 1.0, 1.0, with_canary=False)
    code, rows = _json_compare(same_base, same_new, capsys)
    assert code == 0 and rows["latency_p50_ms"]["verdict"] == "unchanged"
    # Only one side with a canary (a run before the canary against one after): as before too.
    base = tmp_path / "one" / "base"
    new = tmp_path / "one" / "new"
    raw = 2.0 * np.random.default_rng(1).lognormal(0.0, 0.15, 2000)
    append_record(base, _record(CELL, raw))
    append_record(new, _record(CELL, raw * 1.4, 14.0))
    code, rows = _json_compare(base, new, capsys)
    assert code == 1 and rows["latency_p50_ms"]["canary_ratio"] is None


def test_canary_within_half_the_threshold_leaves_the_verdict_alone(tmp_path, capsys):
    # Canary ×1.02 is within [1/1.025, 1.025] at a 5% threshold: judged on the raw ratio.
    base, new = _compare(tmp_path, 1.2, 1.02)
    code, rows = _json_compare(base, new, capsys)
    assert code == 1 and rows["latency_p50_ms"]["verdict"] == "regressed"
    assert rows["latency_p50_ms"]["note"] == ""


def test_canary_column_in_markdown_and_table(tmp_path, capsys):
    base, new = _compare(tmp_path, 1.4, 1.4)
    main(["compare", str(base), str(new), "--format", "markdown"])
    markdown = capsys.readouterr().out
    assert "| canary |" in markdown and "1.400" in markdown
    assert "machine-speed canary" in markdown
    main(["compare", str(base), str(new)])
    assert "canary" in capsys.readouterr().out


def test_canary_ratio_and_band():
    def cell(**canary) -> Record:
        return Record.parse({"cell_id": CELL, **({"canary": canary} if canary else {})})

    with_canary = cell(before_ms=8.0, after_ms=12.0)
    slower = cell(before_ms=14.0, after_ms=14.0)
    assert canary_ratio(with_canary, slower) == pytest.approx(1.4)
    assert canary_ratio(cell(), slower) is None
    assert canary_ratio(cell(before_ms=0.0, after_ms=0.0), slower) is None
    assert canary_ratio(cell(before_ms=10.0, after_ms=None), slower) == 1.4
    assert not machine_moved(None, 0.05)
    assert not machine_moved(1.02, 0.05) and not machine_moved(1 / 1.02, 0.05)
    assert machine_moved(1.03, 0.05) and machine_moved(0.97, 0.05)
