"""compare: an Offline cell's p50 (completion times within one query) is never judged as latency."""

from __future__ import annotations

import json

import numpy as np

from accelbench.cli import main
from accelbench.records import append_record, metric


def _run(path, scale: float, samples: int) -> str:
    rng = np.random.default_rng(7)
    # Offline completion times: spread over the whole run, so their median is half its length.
    completions = np.sort(rng.uniform(0, 1000.0 * scale, samples))
    p50 = float(np.median(completions))
    qps = samples / (completions[-1] / 1e3)
    append_record(
        path,
        {
            "cell_id": "m.fp32.host.t1.offline.abcd",
            "model": "m",
            "optimization": "fp32",
            "profile": "host",
            "threads": 1,
            "scenario": "offline",
            "status": "ok",
            "environment": {"host_fingerprint_id": "h"},
            "artifact": {"sha256": "a"},
            "metrics": {
                "latency_p50_ms": metric(p50, "ms", "lower"),
                "qps": metric(qps, "samples/s", "higher"),
            },
            "raw_latencies_ms": completions.tolist(),
        },
    )
    return str(path)


def test_offline_p50_is_info_and_a_small_throughput_change_is_unchanged(tmp_path, capsys):
    # Same throughput, but LoadGen ran 10% more samples: the p50 of completion times moves 10%.
    base = _run(tmp_path / "base", 1.0, 5000)
    new = _run(tmp_path / "new", 1.1, 5500)
    assert main(["compare", base, new, "--format", "json"]) == 0
    rows = {r["metric"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["latency_p50_ms"]["verdict"] == "info"
    assert "completion times" in rows["latency_p50_ms"]["note"]
    assert rows["qps"]["verdict"] == "unchanged"
