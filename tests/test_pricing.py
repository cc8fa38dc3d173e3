"""Profiles' prices (source and date required), and the cost of a million inferences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from accelbench.errors import UsageError
from accelbench.hardware_profiles import list_profiles, load_profile
from accelbench.hardware_profiles.pricing import hourly_price, usd_per_million
from accelbench.hardware_profiles.schema import profile_from_mapping
from accelbench.records import Record, metric, read_records
from accelbench.report.sections.context import RunProfile
from accelbench.report.sections.hardware import hardware_rows

DATA = Path(__file__).parent / "data"
BOARD = {
    "name": "my-board",
    "kind": "edge-cpu",
    "vendor": "Acme",
    "model": "Acme board",
    "cores": 4,
    "memory_gb": 4,
    "peak_compute": {"fp32": 0.1},
    "memory_bandwidth_gbps": 4.0,
    "supported_precisions": ["fp32", "int8"],
    "execution": "projected",
}


def _with_price(price: dict) -> dict:
    return {**BOARD, "price": price}


def test_a_price_needs_its_source_and_date():
    bought = {"purchase_usd": 87.6, "lifetime_years": 1, "source": "https://acme.example/board"}
    with pytest.raises(UsageError, match=r"field 'price': purchase_usd needs source .* and date"):
        profile_from_mapping(_with_price(bought), "my-board.yaml")
    with pytest.raises(UsageError, match=r"usd_per_hour needs source"):
        profile_from_mapping(_with_price({"usd_per_hour": 1.2, "date": "2026-12-06"}), "x")
    with pytest.raises(UsageError, match="not both"):
        both = {"usd_per_hour": 1, "purchase_usd": 2, "source": "s", "date": "2026-12-06"}
        profile_from_mapping(_with_price(both), "x")
    with pytest.raises(UsageError, match="or unknown: why no figure is given"):
        profile_from_mapping(_with_price({"source": "s", "date": "2026-12-06"}), "x")
    with pytest.raises(UsageError, match="field 'price.date'.*YYYY-MM-DD"):
        profile_from_mapping(_with_price({**bought, "date": "last spring"}), "x")
    with pytest.raises(UsageError, match="keep 'price'"):
        profile_from_mapping({**_with_price({"unknown": "n/a"}), "price_per_hour_usd": 1.0}, "x")
    # With both, valid; a profile may also say why it has no figure.
    profile = profile_from_mapping(_with_price({**bought, "date": "2026-12-06"}), "x")
    assert profile.price is not None and str(profile.price.date) == "2026-12-06"
    assert profile_from_mapping(_with_price({"unknown": "not sold yet"}), "x").price is not None


def test_profiles_validate_refuses_an_unsourced_price_in_one_line(tmp_path):
    path = tmp_path / "my-board.yaml"
    path.write_text(yaml.safe_dump(_with_price({"purchase_usd": 50})), encoding="utf-8")
    result = run_cli("profiles", "validate", str(path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "purchase_usd needs source" in result.stderr


def test_every_builtin_price_has_a_source_and_date_or_a_reason():
    for profile in list_profiles():
        if profile.name == "host":
            continue
        assert profile.price is not None, profile.name
        if profile.price.unknown:
            assert profile.price.usd_per_hour is None and profile.price.purchase_usd is None
        else:
            assert profile.price.source.startswith("https://") and profile.price.date is not None


def test_hourly_price_and_cost_per_million_arithmetic():
    # Bought: $87.60 over one year of 8,760 hours is $0.01 an hour; 3 years by default.
    bought = {"price": {"purchase_usd": 87.6, "lifetime_years": 1, "source": "s", "date": "d"}}
    usd, basis = hourly_price(bought)
    assert usd == pytest.approx(0.01)
    assert basis == "purchase $87.6 over 1 years of continuous use (s, read d)"
    three = {"price": {"purchase_usd": 262.8, "source": "s", "date": "d"}}
    assert hourly_price(three)[0] == pytest.approx(0.01)
    cloud = {"price": {"usd_per_hour": 0.36, "source": "s", "date": "d"}}
    assert hourly_price(cloud) == (0.36, "cloud on-demand $0.36/h (s, read d)")
    assert hourly_price({"price": {"unknown": "why"}}) == (None, "unknown: why")
    assert hourly_price({"price_per_hour_usd": 0.5}) == (0.5, "price_per_hour_usd")
    assert hourly_price({}) == (None, "")
    # 100 inferences/s at $0.36/h: 360,000 an hour for $0.36, so $1 per million.
    assert usd_per_million(100, 0.36) == pytest.approx(1.0)
    rpi4 = load_profile("rpi4").model_dump(mode="json", exclude_none=True)
    assert hourly_price(rpi4)[0] == pytest.approx(55 / (3 * 8760))


def _record(profile: str, execution: str, **metrics: float) -> Record:
    return Record.parse(
        {
            "model": "m",
            "optimization": "fp32",
            "profile": profile,
            "execution": execution,
            "scenario": "single-stream",
            "status": "ok",
            "threads": 1,
            "metrics": {k: metric(v, "ms", "lower") for k, v in metrics.items()},
        }
    )


def test_hardware_table_cost_per_million_is_labelled_measured_or_projected():
    cloud = {**BOARD, "price": {"usd_per_hour": 0.36, "source": "s", "date": "2026-12-06"}}
    profiles = {
        "cloud-box": RunProfile("cloud-box", {**cloud, "name": "cloud-box"}, "its cell file"),
        "no-price": RunProfile("no-price", {**BOARD, "name": "no-price"}, "its cell file"),
    }
    records = [
        _record("cloud-box", "local", latency_p50_ms=10.0),  # 100/s measured: $1 per million
        _record("no-price", "local", latency_p50_ms=10.0),
    ]
    header, rows = hardware_rows(records, profiles)
    column = header.index("$ per million inferences")
    by_profile = {row[1]: row for row in rows}
    assert by_profile["cloud-box"][column] == "1 (measured)"
    assert by_profile["cloud-box"][header.index("inferences per $")] == "1,000,000"
    assert by_profile["no-price"][column].startswith("n/a: profile no-price states no price")


def test_project_shows_cost_per_million_from_the_projected_rate():
    shown = run_cli(
        "project", str(DATA / "cnn_int8.tflite"), "--profile", "rpi4,nvidia-t4", "--format", "json"
    )
    assert shown.returncode == 0, shown.stderr
    rows = {row["profile"]: row for row in json.loads(shown.stdout)}
    rpi4 = rows["rpi4"]
    per_hour = 55 / (3 * 8760)
    expected = per_hour / (1e3 / rpi4["projected_latency_ms"] * 3600) * 1e6
    assert rpi4["usd_per_million_inferences"] == pytest.approx(expected)
    assert rpi4["price_basis"].startswith("purchase $55 over 3 years")
    assert rows["nvidia-t4"]["usd_per_million_inferences"] is None
    assert rows["nvidia-t4"]["price_basis"].startswith("unknown: ")
    table = run_cli("project", str(DATA / "cnn_int8.tflite"), "--profile", "rpi4,nvidia-t4")
    assert "$ per M inferences" in table.stdout and "(projected)" in table.stdout
    assert "n/a: price unknown" in table.stdout


def test_records_and_the_results_table_carry_cost_per_million_measured_or_projected(tmp_path):
    # A profile of the user's own with a price of its own: how a user prices a device.
    own = {**BOARD, "name": "my-box", "kind": "cpu", "execution": "local"}
    own["price"] = {"usd_per_hour": 0.36, "source": "https://acme.example/p", "date": "2026-12-06"}
    path = tmp_path / "my-box.yaml"
    path.write_text(yaml.safe_dump(own), encoding="utf-8")
    out = tmp_path / "run"
    shown = run_cli(
        "bench",
        str(DATA / "cnn_int8.tflite"),
        "--profile",
        f"{path},coral-edgetpu,nvidia-t4",
        "--threads",
        "1",
        "--scenario",
        "offline,single-stream",
        "--preset",
        "quick",
        "--out",
        str(out),
        "--no-progress",
    )
    assert shown.returncode == 0, shown.stderr
    records = {(r["profile"], r["scenario"]): r for r in read_records(out)}
    measured = records["my-box", "offline"]
    qps = measured["metrics"]["qps"]["value"]
    assert measured["cost"]["throughput"] == "measured"
    assert measured["cost"]["inferences_per_s_basis"] == "Offline samples/s"
    assert measured["cost"]["usd_per_million"] == pytest.approx(0.36 / (qps * 3600) * 1e6)
    assert "https://acme.example/p, read 2026-12-06" in measured["cost"]["price"]
    projected = records["coral-edgetpu", "single-stream"]
    rate = 1e3 / projected["metrics"]["projected_latency_ms"]["value"]
    assert projected["cost"]["throughput"] == "projected"
    assert projected["cost"]["usd_per_million"] == pytest.approx(
        usd_per_million(rate, 75 / (3 * 8760))
    )
    assert "cost" not in records["nvidia-t4", "single-stream"]  # its price is unknown
    table = (out / "summary.md").read_text(encoding="utf-8")
    assert "$ per M inf" in table
    assert f"{projected['cost']['usd_per_million']:.3g} (projected)" in table
    assert f"{measured['cost']['usd_per_million']:.3g} (measured)" in table
