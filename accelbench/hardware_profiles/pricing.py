"""What an hour of a profile's device costs, and what a million inferences cost on it.

A cloud device is priced by the hour (on-demand, as its provider publishes it); a bought one by
its purchase price spread over its service life in continuous use (by default 3 years, 26,280
hours; a profile may state another ``lifetime_years``). Electricity, hosting and the host a USB
accelerator needs are not included. These functions read a profile as a mapping (a record's or a
run's cell file), so that reports need not validate it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
