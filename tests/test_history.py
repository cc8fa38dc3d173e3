"""Change points (E-divisive) on known series, and `accelbench history` over many runs."""

import base64
import re

import numpy as np
import pytest

from accelbench.cli import main
from accelbench.records import append_record, metric
from accelbench.stats import e_divisive


def test_a_step_change_is_found_at_the_right_index():
    rng = np.random.default_rng(0)
    series = np.r_[rng.normal(1.0, 0.02, 10), rng.normal(1.2, 0.02, 10)]
    assert e_divisive(series) == [10]


def test_two_shifts_in_opposite_directions_are_both_found():
    rng = np.random.default_rng(1)
    series = np.r_[rng.normal(1.0, 0.05, 15), rng.normal(1.3, 0.05, 8), rng.normal(0.9, 0.05, 12)]
    assert e_divisive(series) == [15, 23]


@pytest.mark.parametrize("seed", range(5))
def test_a_flat_noisy_series_gives_no_change_point(seed):
    rng = np.random.default_rng(seed)
    assert e_divisive(rng.normal(1.0, 0.05, 30), seed=seed) == []
    assert e_divisive(np.full(12, 3.0)) == []  # no variation at all


def test_e_divisive_rejects_bad_parameters():
    with pytest.raises(ValueError, match="min_size"):
        e_divisive([1.0, 2.0, 3.0], min_size=1)
    with pytest.raises(ValueError, match="NaN"):
        e_divisive([1.0, float("nan"), 3.0])


def _history_runs(root, n_runs=12, step_at=7):
    """Runs r00..r11 a day apart; cell 'a' gets 20% slower from run `step_at`, 'b' stays flat."""
    rng = np.random.default_rng(42)
    for i in range(n_runs):
        run = root / f"r{i:02d}"
        for cell, level in (
            ("m.fp32.host.t1.single-stream.a", 1.2 if i >= step_at else 1.0),
            ("m.int8.host.t1.single-stream.b", 0.5),
        ):
            append_record(
                run,
                {
                    "cell_id": cell,
                    "run_id": run.name,
                    "status": "ok",
                    "finished_at": f"2026-03-{i + 1:02d}T10:00:00+00:00",
                    "metrics": {
                        "latency_p50_ms": metric(level * rng.normal(1.0, 0.01), "ms", "lower"),
                        "model_bytes": metric(1000, "bytes", "lower"),
                    },
                },
            )
    return root


def test_history_cli_table_change_points_and_html(tmp_path, capsys):
    results = _history_runs(tmp_path / "results")
    html = tmp_path / "out" / "history.html"
    assert main(["history", str(results), "--metric", "latency_p50_ms", "--html", str(html)]) == 0
    out = capsys.readouterr().out
    (row_a,) = [line for line in out.splitlines() if line.startswith("m.fp32")]
    (row_b,) = [line for line in out.splitlines() if line.startswith("m.int8")]
    assert re.search(r"\b12\b", row_a)
    shift = re.search(r"r07: \+(\d+\.\d)%", row_a)
    assert shift and 17.0 < float(shift.group(1)) < 23.0  # the first slow run and ~+20%
    assert row_b.rstrip().endswith("none")
    assert "12 runs, r00" in out and "1 change points" in out
    page = html.read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 2 and all(base64.b64decode(i)[:4] == b"\x89PNG" for i in images)
    assert "r07: +" in page
    # A run folder given out of order and a single cell filter still order by time.
    capsys.readouterr()
    assert main(["history", str(results / "r11"), str(results / "r00"), "--cell", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "m.int8" not in out and "2 runs, r00" in out


def test_history_reads_a_baseline_store_once_per_run(tmp_path, capsys):
    results = _history_runs(tmp_path / "results", n_runs=6, step_at=3)
    store = tmp_path / "store"
    assert (
        main(["baseline", "save", str(results / "r05"), "--name", "main", "--store", str(store)])
        == 0
    )
    capsys.readouterr()
    assert main(["history", str(results), str(store), "--metric", "model_bytes"]) == 0
    assert "6 runs" in capsys.readouterr().out  # r05 and the baseline saved from it are one run
    assert main(["history", str(store), "--metric", "model_bytes"]) == 0
    assert "1 runs" in capsys.readouterr().out


def test_history_bad_input_exit_2_one_line(tmp_path, capsys):
    results = _history_runs(tmp_path / "results", n_runs=3)
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        ([str(empty)], "holds no run folders"),
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(results), "--metric", "latency_p50_ms,nope"], "metric nope is in no run"),
        ([str(results), "--cell", "zzz"], "no cell matches"),
    ]
    for args, message in cases:
        capsys.readouterr()
        assert main(["history", *args]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert not list(tmp_path.rglob("*.html"))
