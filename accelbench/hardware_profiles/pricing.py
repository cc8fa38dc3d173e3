"""What an hour of a profile's device costs, and what a million inferences cost on it.

A cloud device is priced by the hour (on-demand, as its provider publishes it); a bought one by
its purchase price spread over its service life in continuous use (by default 3 years, 26,280
hours; a profile may state another ``lifetime_years``). Electricity, hosting and the host a USB
accelerator needs are not included. These functions read a profile as a mapping (a record's or a
run's cell file), so that reports need not validate it again.

A million inferences are priced at the device's throughput in a record: a measured cell's own
(Offline or Server samples/s, else 1 / single-stream p50 at batch 1), and for a projected or
emulated cell the device's projected rate (1 / projected latency at batch 1; an emulated cell's
own figures are this host's speed, not the device's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from accelbench.records import Record

HOURS_PER_YEAR = 8760
DEFAULT_LIFETIME_YEARS = 3.0


def hourly_price(profile: Mapping[str, Any]) -> tuple[float | None, str]:
    """(US$ per hour, what it rests on) for a profile mapping; (None, why) where it states none."""
    price = profile.get("price")
    if price:
        cited = f"{price.get('source')}, read {price.get('date')}"
        if price.get("usd_per_hour") is not None:
            usd = float(price["usd_per_hour"])
            return usd, f"cloud on-demand ${usd:g}/h ({cited})"
        if price.get("purchase_usd") is not None:
            years = float(price.get("lifetime_years") or DEFAULT_LIFETIME_YEARS)
            usd = float(price["purchase_usd"])
            return usd / (years * HOURS_PER_YEAR), (
                f"purchase ${usd:g} over {years:g} years of continuous use ({cited})"
            )
        return None, f"unknown: {price.get('unknown')}"
    if profile.get("price_per_hour_usd") is not None:
        return float(profile["price_per_hour_usd"]), "price_per_hour_usd"
    return None, ""


def usd_per_million(inferences_per_s: float, usd_per_hour: float) -> float:
    """US$ for a million inferences at ``inferences_per_s``, the device busy the whole hour."""
    return usd_per_hour / (inferences_per_s * 3600) * 1e6


def device_throughput(record: Record) -> tuple[float, str, str] | None:
    """(inferences/s, what it is, "measured" or "projected") of the device in one benchmark
    record, or None where the record gives none (see the module docstring)."""
    scenario = record.scenario
    if record.execution in ("projected", "emulated"):
        projected = record.metric("projected_latency_ms")
        if scenario != "single-stream" or not projected:
            return None
        return 1e3 / projected, "1 / projected latency (batch 1)", "projected"
    qps = record.metric("qps")
    if scenario == "offline" and qps:
        return qps, "Offline samples/s", "measured"
    if scenario == "server" and qps:
        return qps, "Server completed samples/s", "measured"
    p50 = record.latency_p50_ms
    if scenario == "single-stream" and p50:
        return 1e3 / p50, "1 / single-stream p50 (batch 1)", "measured"
    return None


def cost_part(record: Record) -> dict[str, Any] | None:
    """A record's ``cost`` part: US$ per million inferences at its device's throughput, priced
    by its profile; None where the profile states no price or the record no throughput."""
    price, price_basis = hourly_price(record.profile_data or {})
    rate = device_throughput(record) if record.status == "ok" else None
    if not price or rate is None:
        return None
    inferences_per_s, rate_basis, kind = rate
    return {
        "usd_per_million": usd_per_million(inferences_per_s, price),
        "throughput": kind,
        "inferences_per_s": inferences_per_s,
        "inferences_per_s_basis": rate_basis,
        "usd_per_hour": price,
        "price": price_basis,
    }
