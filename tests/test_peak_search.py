"""The peak search's confirmation: a target that met the bound once is the peak only if a re-run
of it meets the bound too. The LoadGen runs are scripted here (run_endpoint replaced), so each
test says exactly which run met the bound; the real search against a real server is in
test_serving_load.py."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from accelbench.benchmarks import serving
from accelbench.benchmarks.loadgen import ScenarioResult
from accelbench.benchmarks.serving import MAX_CONFIRMATIONS, EndpointRun, find_peak
from accelbench.records import metric
from accelbench.report.serving import best_qps

CAPACITY = 400.0


def _run(target: float | None, valid: bool, log_dir: Path, qps: float) -> EndpointRun:
    p99 = 5.0 if valid else 30.0
    scenario = ScenarioResult(
        scenario="server" if target else "offline",
        preset="quick",
        valid=valid,
        result_validity="VALID" if valid else "INVALID",
        criteria={"performance_constraints_satisfied": valid},
        metrics={
            "qps": metric(qps, "samples/s", "higher"),
            "latency_p50_ms": metric(1.0, "ms", "lower"),
            "latency_p99_ms": metric(p99, "ms", "lower"),
        },
        latencies_ms=[],
        latencies_source="none",
        settings={"log": {"outdir": str(log_dir)}},
        comparable_to_mlperf=False,
        early_stopping={},
        log_files={},
    )
    counts = {"requests": 10, "ok": 10, "errors": 0, "http_429": 0, "first_error": None}
    return EndpointRun(scenario, counts, target)


def _scripted(monkeypatch: pytest.MonkeyPatch, meets) -> Counter:
    """Replace LoadGen: meets(target, nth run at that target) says whether the run met the bound.
    Returns the count of runs per target (the Offline capacity probe under None)."""
    calls: Counter = Counter()

    def run_endpoint(runtime, samples, scenario, preset, log_dir, *, target_qps=None, **_):
        calls[target_qps] += 1
        assert not Path(log_dir).exists(), f"{log_dir} reused by a second run"
        Path(log_dir).mkdir(parents=True)
        if scenario == "offline":
            return _run(None, True, log_dir, CAPACITY)
        return _run(target_qps, meets(target_qps, calls[target_qps]), log_dir, target_qps)

    monkeypatch.setattr(serving, "run_endpoint", run_endpoint)
    return calls


def _search(tmp_path: Path, steps: int = 1):
    return find_peak(
        None, [], "quick", tmp_path, latency_bound_ms=10.0, curve_points=4, search_steps=steps
    )


def test_a_steady_peak_is_run_twice_and_kept(monkeypatch, tmp_path):
    calls = _scripted(monkeypatch, lambda target, nth: target <= 330)
    search = _search(tmp_path)  # curve 100..400, then 350 (missed)
    # 300 holds twice; the runs left bisect the gap to 350: 325 holds twice too.
    assert search.peak.target_qps == 325 and search.peak_confirmed
    assert calls[300] == 2 and calls[325] == 2 and calls[350] == 1 and calls[None] == 1
    result = search.result()
    assert result["metrics"]["server_peak_qps"]["value"] == 325
    assert result["settings"]["peak_confirmed"] is True
    assert best_qps({"settings": result["settings"]}, 10.0) == 325


def test_a_lucky_peak_that_misses_when_re_run_is_not_reported(monkeypatch, tmp_path):
    # 300 met the bound once, then missed it: the next lower target is re-run and kept.
    calls = _scripted(monkeypatch, lambda t, nth: t <= 200 or (t == 300 and nth == 1))
    search = _search(tmp_path)
    # 200 holds twice; 250, halfway to the 300 that missed, misses; one run left is not enough
    # for a new target and its re-run.
    assert search.peak.target_qps == 200 and search.peak_confirmed
    assert calls[300] == 2 and calls[200] == 2 and calls[250] == 1
    result = search.result()
    assert result["metrics"]["server_peak_qps"]["value"] == 200
    # The report's per-bound answer agrees with the peak: 300 failed one of its two runs.
    assert best_qps({"settings": result["settings"]}, 10.0) == 200
    curve = result["settings"]["curve"]
    assert sorted(p["meets_bound"] for p in curve if p["target_qps"] == 300) == [False, True]


def test_when_the_lowest_target_misses_on_re_run_the_search_looks_lower(monkeypatch, tmp_path):
    # Only 100 met the bound, once; its re-run missed: half of it is tried, then confirmed.
    calls = _scripted(monkeypatch, lambda t, nth: t < 100 or (t == 100 and nth == 1))
    search = _search(tmp_path)  # curve 100..400, then 150 (missed)
    assert search.peak.target_qps == 50 and search.peak_confirmed
    assert calls[100] == 2 and calls[50] == 2 and calls[150] == 1


def test_confirmation_stops_after_its_limit_and_says_so(monkeypatch, tmp_path):
    # Every target meets the bound once and misses it on a re-run: the re-runs stop at the
    # limit, and the peak left is reported as not confirmed.
    calls = _scripted(monkeypatch, lambda target, nth: nth == 1)
    search = _search(tmp_path, steps=1)  # curve 100..400, then 600 (all met once)
    reruns = sum(n - 1 for target, n in calls.items() if target is not None)
    assert reruns == MAX_CONFIRMATIONS == 4  # 600, 400, 300, 200 each missed when re-run
    assert search.peak.target_qps == 100 and not search.peak_confirmed
    assert search.result()["settings"]["peak_confirmed"] is False


def test_no_target_met_the_bound_means_no_re_run(monkeypatch, tmp_path):
    calls = _scripted(monkeypatch, lambda target, nth: False)
    search = _search(tmp_path, steps=1)
    assert search.peak is None and not search.peak_confirmed
    assert all(n == 1 for n in calls.values())  # nothing was worth repeating
    assert search.result()["metrics"]["server_peak_qps"]["value"] is None
