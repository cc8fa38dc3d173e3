"""The hardware comparison: per model and profile the best throughput, per watt and per dollar."""

from __future__ import annotations

from accelbench.records import Record
from accelbench.report.document import Document
from accelbench.report.sections.context import Context, RunProfile, num

title = "Hardware comparison"

_BASIS_RANK = {"Offline samples/s": 2, "Server completed samples/s": 1}


def _rate_band(record: Record) -> str:
    """' [210–620]': the inferences/s a projected latency's band gives; ' [unchecked]'."""
    band, _ = record.projected_band
    if band is None:
        return " [unchecked]"
    return f" [{num(1e3 / band[1])}–{num(1e3 / band[0])}]"


def hardware_rows(
    records: list[Record], profiles: dict[str, RunProfile]
) -> tuple[list[str], list[list[str]]]:
    """Per model and profile (and threads), the best throughput, per watt and per dollar."""
    from accelbench.benchmarks.presets import SCENARIOS as LOADGEN_SCENARIOS
    from accelbench.hardware_profiles.pricing import (
        device_throughput,
        hourly_price,
        usd_per_million,
    )

    # fmt: skip below: 12 names packed as a paragraph, not one per line.
    header = ["model", "profile", "thr", "figure", "best optimization", "inferences/s", "basis",
              "TDP W", "inferences/J (per W)", "price $/h", "inferences per $",
              "$ per million inferences"]  # fmt: skip
    best: dict[tuple[str, str, int], tuple[float, str, str, Record]] = {}
    for r in records:
        if r.status != "ok" or r.scenario not in LOADGEN_SCENARIOS:
            continue
        got = device_throughput(r)
        if got is None:
            continue
        key = (str(r.model), str(r.profile), r.threads or 0)
        # Offline is the throughput scenario: where measured it is the figure, else the best of
        # the others; a single-stream 1 / p50 never outranks a measured Offline rate.
        rank = (_BASIS_RANK.get(got[1], 0), got[0])
        if key not in best or rank > (_BASIS_RANK.get(best[key][1], 0), best[key][0]):
            best[key] = (*got, r)
    rows = []
    for (model, name, threads), (rate, basis, kind, r) in best.items():
        data = profiles[name].data if name in profiles else None
        tdp = (data or {}).get("tdp_watts")
        price, why = hourly_price(data or {})
        unknown = None if data else f"n/a: profile figures unknown ({profiles[name].origin})"
        if unknown:
            per_watt = per_dollar = per_million = unknown
        else:
            per_watt = num(rate / tdp) if tdp else f"n/a: profile {name} states no tdp_watts"
            if price is None:
                per_dollar = f"n/a: profile {name} states no price_per_hour_usd" + (
                    f" ({why})" if why else ""
                )
                per_million = per_dollar
            elif price == 0:
                per_dollar = per_million = "n/a: price_per_hour_usd is 0 (owned hardware?)"
            else:
                per_dollar = num(rate * 3600 / price)
                per_million = f"{usd_per_million(rate, price):.3g} ({kind})"
        rows.append(
            [
                model,
                name,
                str(threads),
                kind,
                str(r.optimization),
                num(rate) + (_rate_band(r) if kind == "projected" else ""),
                basis,
                num(tdp) if tdp else "n/a",
                per_watt,
                f"{price:.3g}" if price is not None else "n/a",
                per_dollar,
                per_million,
            ]
        )
    rows.sort(key=lambda row: (row[0], row[1], int(row[2])))
    return header, rows


def render(doc: Document, ctx: Context) -> None:
    from accelbench.hardware_profiles.pricing import hourly_price

    profiles = ctx.profiles
    header, rows = hardware_rows(ctx.records, profiles)
    if not rows:
        return
    doc.heading(2, title)
    doc.para(
        "Per model and profile, the highest throughput in the run (Offline samples/s where "
        "measured, else 1 / single-stream p50), divided by the profile's TDP (inferences per "
        "joule at full rated power: an upper bound on energy, not a measurement of it) and "
        "priced per hour (inferences per dollar, and its inverse, the dollars a million "
        "inferences cost with the device busy all hour, labelled measured or projected by the "
        "throughput it rests on). A cloud device is priced on demand per hour; a bought one by "
        "its purchase price spread over its service life (3 years of continuous use unless "
        "its profile says otherwise; no electricity or hosting). Emulated and projected "
        "devices use their projected latency: an emulated cell's own figures are this host's "
        "speed, not the device's. n/a says which figure a profile lacks; nothing is assumed "
        "in its place."
    )
    doc.table(header, rows)
    notes = []
    for name in dict.fromkeys(row[1] for row in rows):
        data = profiles[name].data or {}
        if data.get("price"):
            notes.append(f"{name} price: {hourly_price(data)[1]}")
        for source in data.get("sources") or []:
            if source.get("figure") in ("tdp_watts", "price_per_hour_usd"):
                cited = str(source.get("url_or_citation") or "")
                cited = cited if len(cited) <= 160 else cited[:157] + "..."
                notes.append(f"{name} {source['figure']}: {source.get('value')} ({cited})")
        notes.append(f"{name}: figures from {profiles[name].origin}.")
    doc.bullets(notes)
