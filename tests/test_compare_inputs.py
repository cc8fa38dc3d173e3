"""`accelbench compare` on every kind of input: run folders, stored baselines, pytest-benchmark
JSON files and histories; McNemar accuracy verdicts, exact size, and the evidence behind each
verdict."""

import json
from pathlib import Path

import numpy as np
import pytest

from accelbench.cli import main
from accelbench.records import append_record, metric
from accelbench.stats import benchmark_stats


def _pb_file(path: Path, benches: dict, *, version="5.2.3", save_data=True, extra=None) -> Path:
    """A pytest-benchmark 5.x file: {fullname: raw timings in seconds}."""
    items = []
    for fullname, data in benches.items():
        stats = {**benchmark_stats(data), "iterations": 1}
        if save_data:
            stats["data"] = [float(x) for x in data]
        items.append(
            {
                "group": None,
                "name": fullname.split("::")[-1],
                "fullname": fullname,
                "params": None,
                "param": None,
                "extra_info": dict((extra or {}).get(fullname, {})),
                "options": {"timer": "perf_counter", "min_rounds": 5},
                "stats": stats,
            }
        )
    payload = {
        "machine_info": {"machine": "x86_64", "system": "Linux", "cpu": {"brand_raw": "Test CPU"}},
        "commit_info": {"id": "abc"},
        "benchmarks": items,
        "datetime": "2026-01-01T00:00:00+00:00",
        "version": version,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return path


def _timings(rng, n=300, scale=1.0):
    # Right-skewed per-call times around 2 ms, as real benchmark rounds are.
    return 2e-3 * scale * rng.lognormal(0.0, 0.15, n)


def _run(path: Path, cells: dict) -> Path:
    """A run folder: {cell_id: dict(raw=..., accuracy=..., bits=..., model_bytes=...)}."""
    for cell_id, c in cells.items():
        raw = [float(x) for x in c.get("raw", [])]
        metrics = {"model_bytes": metric(c.get("model_bytes", 1000), "bytes", "lower")}
        if raw:
            metrics["latency_p50_ms"] = metric(float(np.median(raw)), "ms", "lower")
        if "accuracy" in c:
            metrics["accuracy"] = metric(c["accuracy"], "fraction", "higher")
        record = {
            "cell_id": cell_id,
            "run_id": path.name,
            "status": "ok",
            "metrics": metrics,
            "raw_latencies_ms": raw,
            "artifact": {"sha256": c.get("sha", "a" * 64)},
            "environment": {"host_fingerprint_id": "h1"},
            "finished_at": "2026-01-01T00:00:00+00:00",
        }
        if "bits" in c:
            record["quality"] = {"correct_bits": c["bits"], "per_class": {"x": 1}}
        append_record(path, record)
    return path


def _compare_json(capsys, *args) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["compare", *map(str, args), "--format", "json"])
    out = capsys.readouterr().out
    return code, json.loads(out) if code != 2 else {}


def _row(payload, cell, name):
    (row,) = [r for r in payload["rows"] if r["cell_id"] == cell and r["metric"] == name]
    return row


def test_aa_pytest_benchmark_and_baseline_report_no_regression_in_95_percent(tmp_path, capsys):
    """The same SUT twice (same latency distribution, fresh draws) over repeated trials."""
    trials, tests = 20, 10
    names = [f"tests/test_m.py::test_model[{i}]" for i in range(tests)]
    clean_files, clean_runs, judged = 0, 0, 0
    for trial in range(trials):
        rng = np.random.default_rng(100 + trial)
        a = _pb_file(tmp_path / f"a{trial}.json", {n: _timings(rng) for n in names})
        b = _pb_file(tmp_path / f"b{trial}.json", {n: _timings(rng) for n in names})
        code, payload = _compare_json(capsys, a, b)
        clean_files += code == 0
        judged += sum(
            r["metric"] == "latency_p50_ms" and r["p_value"] is not None for r in payload["rows"]
        )
        run_a = _run(tmp_path / f"ra{trial}", {n: {"raw": _timings(rng) * 1e3} for n in names})
        run_b = _run(tmp_path / f"rb{trial}", {n: {"raw": _timings(rng) * 1e3} for n in names})
        store = tmp_path / "store"
        assert (
            main(["baseline", "save", str(run_a), "--name", f"t{trial}", "--store", str(store)])
            == 0
        )
        code, _ = _compare_json(capsys, f"baseline:t{trial}", run_b, "--store", store)
        clean_runs += code == 0
    assert judged == trials * tests  # every latency was actually tested, not skipped
    assert clean_files / trials >= 0.95
    assert clean_runs / trials >= 0.95


def test_twenty_percent_slower_is_regressed_one_percent_is_not(tmp_path, capsys):
    rng = np.random.default_rng(7)
    raw = _timings(rng, n=8000)
    base = _pb_file(tmp_path / "base.json", {"t::slow": raw, "t::slight": raw})
    new = _pb_file(tmp_path / "new.json", {"t::slow": raw * 1.2, "t::slight": raw * 1.01})
    code, payload = _compare_json(capsys, base, new, "--threshold", "5%")
    assert code == 1
    slow = _row(payload, "t::slow", "latency_p50_ms")
    assert slow["verdict"] == "regressed" and slow["ratio"] == pytest.approx(1.2)
    assert slow["ci_low"] < 1.2 < slow["ci_high"]
    slight = _row(payload, "t::slight", "latency_p50_ms")
    assert slight["p_value"] < 0.01 and slight["verdict"] == "unchanged"
    assert payload["base_source"]["kind"] == "pytest-benchmark"
    assert payload["base_source"]["version"] == "5.2.3"
    # Without raw timings (no --benchmark-save-data) nothing is judged by accident.
    base_nodata = _pb_file(tmp_path / "bn.json", {"t::slow": raw}, save_data=False)
    new_nodata = _pb_file(tmp_path / "nn.json", {"t::slow": raw * 1.2}, save_data=False)
    code, payload = _compare_json(capsys, base_nodata, new_nodata)
    row = _row(payload, "t::slow", "latency_p50_ms")
    assert (code, row["verdict"], row["note"]) == (0, "inconclusive", "no raw timings")


def test_accuracy_drop_of_two_points_is_flagged_by_mcnemar(tmp_path, capsys):
    rng = np.random.default_rng(3)
    raw = _timings(rng) * 1e3
    base_hits = rng.random(1000) < 0.90
    # The new model gets 20 more examples wrong and 0 more right: 2 points on the same 1000.
    flipped = np.flatnonzero(base_hits)[:20]
    new_hits = base_hits.copy()
    new_hits[flipped] = False
    # A noisy but equal one: 6 examples change each way.
    noisy = base_hits.copy()
    noisy[np.flatnonzero(base_hits)[:6]] = False
    noisy[np.flatnonzero(~base_hits)[:6]] = True

    def bits(hits):
        return "".join("1" if h else "0" for h in hits)

    def cell(hits, **kw):
        return {"raw": raw, "accuracy": float(hits.mean()), "bits": bits(hits), **kw}

    base = _run(
        tmp_path / "base",
        {"drop": cell(base_hits), "same": cell(base_hits), "swap": cell(base_hits)},
    )
    new = _run(
        tmp_path / "new",
        {"drop": cell(new_hits, sha="b" * 64), "same": cell(base_hits), "swap": cell(noisy)},
    )
    code, payload = _compare_json(capsys, base, new)
    assert code == 1
    drop = _row(payload, "drop", "accuracy")
    assert drop["verdict"] == "regressed" and drop["sha_changed"]
    assert drop["p_value"] == pytest.approx(2 * 0.5**20)  # exact McNemar, b=20, c=0
    assert "McNemar b=20 c=0" in drop["note"]
    same = _row(payload, "same", "accuracy")
    assert same["verdict"] == "unchanged" and same["note"] == "identical predictions"
    swap = _row(payload, "swap", "accuracy")
    assert swap["verdict"] == "unchanged" and swap["p_value"] == pytest.approx(1.0)
    assert payload["settings"]["accuracy_tests"] == 2
    capsys.readouterr()
    assert main(["compare", str(base), str(new), "--format", "markdown"]) == 1
    markdown = capsys.readouterr().out
    assert "| drop | unknown | accuracy |" in markdown and "McNemar b=20 c=0" in markdown
    assert "2 accuracy McNemar tests" in markdown and f"run `{base}`" in markdown


def test_one_byte_growth_is_regressed_under_the_exact_size_policy(tmp_path, capsys):
    rng = np.random.default_rng(4)
    raw = _timings(rng) * 1e3
    base = _run(tmp_path / "base", {"m": {"raw": raw, "model_bytes": 10_000}})
    new = _run(tmp_path / "new", {"m": {"raw": raw, "model_bytes": 10_001}})
    code, payload = _compare_json(capsys, base, new)
    assert code == 1 and _row(payload, "m", "model_bytes")["verdict"] == "regressed"
    code, payload = _compare_json(capsys, base, new, "--size-policy", "threshold")
    assert code == 0 and _row(payload, "m", "model_bytes")["verdict"] == "unchanged"


def test_baseline_store_save_list_compare_and_no_overwrite(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(5)
    raw = _timings(rng) * 1e3
    run = _run(tmp_path / "run1", {"m": {"raw": raw, "accuracy": 0.9, "bits": "1101"}})
    monkeypatch.chdir(tmp_path)
    assert main(["baseline", "save", str(run), "--name", "main"]) == 0
    stored = tmp_path / ".accelbench" / "baselines" / "main.jsonl"
    header, record = [json.loads(line) for line in stored.read_text().splitlines()]
    assert header["name"] == "main" and header["cells"] == 1
    assert record["raw_latencies_ms"] == pytest.approx(list(raw))
    assert record["quality"] == {"correct_bits": "1101"}  # only what compare needs
    before = stored.read_bytes()
    capsys.readouterr()
    assert main(["baseline", "save", str(run), "--name", "main"]) == 2
    err = capsys.readouterr().err
    assert "already exists" in err and "--force" in err and err.count("\n") == 1
    assert stored.read_bytes() == before
    assert main(["baseline", "save", str(run), "--name", "main", "--force"]) == 0
    assert main(["baseline", "list"]) == 0
    assert "main" in capsys.readouterr().out
    slower = _run(tmp_path / "run2", {"m": {"raw": raw * 1.3, "accuracy": 0.9, "bits": "1101"}})
    for base in ("baseline:main", str(stored)):
        capsys.readouterr()
        assert main(["compare", base, str(slower), "--format", "markdown"]) == 1
        assert "baseline `main` (run run1" in capsys.readouterr().out


def test_pytest_benchmark_history_folder_latest_and_two_latest(tmp_path, capsys):
    rng = np.random.default_rng(6)
    raw = _timings(rng, n=500)
    machine = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    _pb_file(machine / "0001_first.json", {"t::a": raw})
    _pb_file(machine / "0002_second.json", {"t::a": raw})
    _pb_file(
        machine / "0010_third.json", {"t::a": raw * 1.25}, extra={"t::a": {"sha256": "f" * 64}}
    )
    code, payload = _compare_json(capsys, tmp_path / ".benchmarks")
    assert code == 1
    assert payload["base"].endswith("0002_second.json") and payload["new"].endswith(
        "0010_third.json"
    )
    assert _row(payload, "t::a", "latency_p50_ms")["sha_changed"]
    code, payload = _compare_json(capsys, machine / "0001_first.json", machine)
    assert code == 1 and payload["new"].endswith("0010_third.json")


def test_bad_inputs_exit_2_with_one_line_and_write_nothing(tmp_path, capsys):
    rng = np.random.default_rng(8)
    good = _pb_file(tmp_path / "good.json", {"t::a": _timings(rng)})
    old = _pb_file(tmp_path / "old.json", {"t::a": _timings(rng)}, version="3.2.3")
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"benchmarks": [')
    other = _pb_file(tmp_path / "other.json", {"t::b": _timings(rng)})
    run = _run(tmp_path / "run", {"c": {"raw": _timings(rng) * 1e3}})
    broken_run = tmp_path / "broken"
    broken_run.mkdir()
    (broken_run / "records.jsonl").write_text('{"cell_id": "c"}\n{oops\n{"cell_id": "d"}\n')
    one = tmp_path / "single"
    _pb_file(one / "0001_x.json", {"t::a": _timings(rng)})
    cases = [
        ((old, good), "pytest-benchmark '3.2.3'"),
        ((good, corrupt), "neither"),
        ((good, tmp_path / "missing.json"), "does not exist"),
        ((good, other), "no cells in common"),
        ((broken_run, run), "corrupt"),
        (("baseline:nope", run), "no baseline named 'nope'"),
        ((one,), "two or more runs"),
        ((good, good, "--size-policy", "loose"), "invalid choice"),
    ]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    for args, message in cases:
        capsys.readouterr()
        assert main(["compare", *map(str, args)]) == 2, args
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("accelbench: error:")
    assert "supported versions are 4.x and 5.x" in _error_of(capsys, old, good)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def _error_of(capsys, *args) -> str:
    capsys.readouterr()
    main(["compare", *map(str, args)])
    return capsys.readouterr().err
