"""Serving records in the report: peak QPS per mode, latency-throughput curves, which mode to pick.

A serving record is one whose ``settings.curve`` holds the Server runs of a peak search (the
``serving`` suite scenario, one record per mode; or ``accelbench load --find-peak``). Everything
said here is computed from those records: for a latency bound, a mode qualifies at a curve point
when that run had no failed request and its p99 stayed within the bound (at the search's own
bound, LoadGen must also have judged the run VALID), and the mode to pick is the one with the
highest such target QPS. Imports no framework; matplotlib loads only for the HTML plot.
"""

from __future__ import annotations

import base64
import html
import io
import ipaddress
from typing import Any
from urllib.parse import urlsplit

from accelbench.benchmarks.serving import split_targets
from accelbench.report.tables import markdown_table

MODE_ORDER = ("online", "batching", "cache")


def serving_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that carry a latency-throughput curve."""
    return [r for r in records if isinstance((r.get("settings") or {}).get("curve"), list)]


GroupKey = tuple[str, str, str, int, str]


def _group_key(r: dict[str, Any]) -> GroupKey:
    return (
        r["model"],
        r.get("optimization") or "",
        r.get("profile") or "",
        r.get("threads") or 0,
        _execution(r),
    )


def _execution(r: dict[str, Any]) -> str:
    return str(r.get("execution") or "unknown")


def _groups(records: list[dict[str, Any]]) -> dict[GroupKey, list[dict]]:
    groups: dict[GroupKey, list[dict]] = {}
    for r in serving_records(records):
        groups.setdefault(_group_key(r), []).append(r)
    for members in groups.values():
        members.sort(key=lambda r: (_order(_mode(r)), _mode(r)))
    return groups


def _mode(r: dict[str, Any]) -> str:
    return str((r.get("settings") or {}).get("mode") or r.get("scenario") or "endpoint")


def _order(mode: str) -> int:
    return MODE_ORDER.index(mode) if mode in MODE_ORDER else len(MODE_ORDER)


def _title(key: GroupKey) -> str:
    model, optimization, profile, threads, execution = key
    opt = f" {optimization}" if optimization and optimization != "none" else ""
    thr = f", {threads} thread(s)" if threads else ""
    return f"{model}{opt} on {profile} ({execution}){thr}"


def is_loopback(host: str | None) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if not host:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def where_measured(members: list[dict[str, Any]]) -> str:
    """One sentence naming where the group's endpoint was: loopback, or the remote host(s)."""
    urls = sorted({str(u) for r in members if (u := (r.get("settings") or {}).get("url"))})
    if not urls:
        return "The endpoint's URL is not in the records, so where it ran is not known."
    hosts = {url: urlsplit(url).hostname for url in urls}
    remote = sorted({h or url for url, h in hosts.items() if not is_loopback(h)})
    if not remote:
        return f"Measured on loopback ({', '.join(urls)}): client and server shared one host."
    return (
        f"Measured against the remote host {', '.join(remote)} ({', '.join(urls)}): the "
        "figures include the network between the load client and that host."
    )


def _bound(r: dict[str, Any]) -> float | None:
    value = (r.get("settings") or {}).get("latency_bound_ms")
    return float(value) if value else None


def _search_bounds(members: list[dict[str, Any]]) -> list[float]:
    """Each peak search's own latency bound, once each, ascending."""
    return sorted({b for b in map(_bound, members) if b})


def bounds_of(members: list[dict[str, Any]]) -> list[float]:
    """The latency bounds to answer for: each search's bound, with half and twice it."""
    return sorted({round(f * b, 6) for b in _search_bounds(members) for f in (0.5, 1.0, 2.0)})


def best_qps(r: dict[str, Any], bound_ms: float) -> float | None:
    """The highest target QPS at which this mode kept p99 within bound_ms with no failed request,
    in every run at that target (the peak search runs its peak's target twice)."""
    own = _bound(r)

    def met(point: dict[str, Any]) -> bool:
        p99 = point.get("latency_p99_ms")
        if point.get("errors") or p99 is None or p99 > bound_ms:
            return False
        # At the search's own bound, LoadGen's verdict decides (early stopping included).
        return own is None or abs(bound_ms - own) >= 1e-9 or bool(point.get("loadgen_valid"))

    curve = [p for p in r["settings"]["curve"] if p.get("target_qps") is not None]
    kept, _ = split_targets((float(p["target_qps"]), met(p)) for p in curve)
    return max(kept, default=None)


def pick_sentences(members: list[dict[str, Any]]) -> list[str]:
    """One sentence per latency bound: which mode sustains the most QPS within it."""
    sentences = []
    for bound in bounds_of(members):
        scores = [(_mode(r), best_qps(r, bound)) for r in members]
        able = [(m, q) for m, q in scores if q is not None]
        if not able:
            sentences.append(
                f"For a p99 bound of {bound:g} ms: no mode met it at any QPS tried; "
                "serve a faster model or hardware, or relax the bound."
            )
            continue
        mode, qps = max(able, key=lambda mq: mq[1])
        others = ", ".join(
            f"{m} {q:.0f}" if q is not None else f"{m} none" for m, q in scores if m != mode
        )
        sentences.append(
            f"For a p99 bound of {bound:g} ms: pick {mode} ({qps:.0f} QPS"
            + (f"; {others} QPS" if others else "")
            + ")."
        )
    return sentences


def _cache_note(members: list[dict[str, Any]]) -> str | None:
    if not any(_mode(r) == "cache" for r in members):
        return None
    qsl = ((members[0].get("settings") or {}).get("loadgen") or {}).get("qsl") or {}
    n = qsl.get("total_sample_count")
    repeats = f"cycles over {n} distinct inputs" if n else "repeats its inputs"
    return (
        f"The cache answers repeated requests: this load {repeats}, so the cache mode's figures "
        "hold only for traffic that repeats as often."
    )


def _summary_rows(members: list[dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    # fmt: skip below: 10 names packed as a paragraph, not one per line.
    header = ["mode", "execution", "status", "peak QPS", "p99 bound ms", "p50 ms", "p99 ms",
              "capacity/s", "errors", "points"]  # fmt: skip
    rows = []
    for r in members:
        m = r.get("metrics") or {}

        def value(name: str, m: dict[str, Any] = m) -> str:
            v = (m.get(name) or {}).get("value")
            if isinstance(v, float):
                return f"{v:.3f}" if v < 100 else f"{v:.0f}"
            return "-" if v is None else str(v)

        bound = _bound(r)
        rows.append(
            [
                _mode(r),
                _execution(r),
                r.get("status", ""),
                value("server_peak_qps"),
                f"{bound:g}" if bound else "-",
                value("latency_p50_ms"),
                value("latency_p99_ms"),
                value("offline_capacity_qps"),
                value("request_errors"),
                str(len(r["settings"]["curve"])),
            ]
        )
    return header, rows


def serving_markdown(records: list[dict[str, Any]]) -> str:
    """The serving section of report.md, or "" when no record has a curve."""
    groups = _groups(records)
    if not groups:
        return ""
    lines = ["## Serving: latency vs throughput", ""]
    for key, members in groups.items():
        header, rows = _summary_rows(members)
        lines += [f"### {_title(key)}", "", markdown_table(header, rows), ""]
        lines += [f"- {s}" for s in pick_sentences(members)]
        note = _cache_note(members)
        if note:
            lines += ["", note]
        lines += ["", where_measured(members)]
        lines += ["", "Curve (target → achieved QPS, p50 / p99 ms, LoadGen verdict):", ""]
        for r in members:
            points = "; ".join(_point_text(p) for p in r["settings"]["curve"])
            lines.append(f"- {_mode(r)}: {points or 'no Server run'}")
        lines.append("")
    lines.append(
        "Peak QPS: the highest Server target QPS that LoadGen judged VALID under the p99 bound "
        "with no failed request."
    )
    return "\n".join(lines) + "\n"


def _point_text(p: dict[str, Any]) -> str:
    def f(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    verdict = "VALID" if p.get("loadgen_valid") else "INVALID"
    errors = f", {p['errors']} errors" if p.get("errors") else ""
    return (
        f"{f(p.get('target_qps'), '.0f')} → {f(p.get('achieved_qps'), '.0f')}: "
        f"{f(p.get('latency_p50_ms'), '.2f')} / {f(p.get('latency_p99_ms'), '.2f')} ms "
        f"{verdict}{errors}"
    )


def serving_html(records: list[dict[str, Any]]) -> str:
    """An HTML fragment: per model, the latency-throughput plot (embedded PNG), table, advice."""
    groups = _groups(records)
    if not groups:
        return ""
    parts = ['<section class="serving">', "<h2>Serving: latency vs throughput</h2>"]
    for key, members in groups.items():
        title = html.escape(_title(key))
        png = _plot_png(members, _title(key))
        header, rows = _summary_rows(members)
        parts.append(f"<h3>{title}</h3>")
        parts.append(
            f'<img alt="p50 and p99 latency against achieved QPS per serving mode, {title}" '
            f'src="data:image/png;base64,{png}">'
        )
        parts.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header))
        parts.append("</tr></thead><tbody>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
        parts.append(
            "<ul>"
            + "".join(f"<li>{html.escape(s)}</li>" for s in pick_sentences(members))
            + "</ul>"
        )
        note = _cache_note(members)
        if note:
            parts.append(f"<p>{html.escape(note)}</p>")
        parts.append(f"<p>{html.escape(where_measured(members))}</p>")
    parts.append("</section>")
    return "\n".join(parts) + "\n"


def _plot_png(members: list[dict[str, Any]], title: str) -> str:
    """Latency (p50 dashed, p99 solid) against achieved QPS, one colour per mode; base64 PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # A Figure on the Agg canvas, not pyplot: no global backend state, safe in any process.
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, r in enumerate(members):
        points = sorted(
            (p for p in r["settings"]["curve"] if p.get("achieved_qps") is not None),
            key=lambda p: p["achieved_qps"],
        )
        colour = f"C{i}"
        x = [p["achieved_qps"] for p in points]
        for name, style in (("latency_p50_ms", "--"), ("latency_p99_ms", "-")):
            y = [p.get(name) for p in points]
            label = f"{_mode(r)} {name.split('_')[1]}"
            ax.plot(x, y, style, marker="o", color=colour, label=label)
    for bound in _search_bounds(members):
        ax.axhline(bound, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(
            f"p99 bound {bound:g} ms",
            (0, bound),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            color="grey",
            va="bottom",
        )
    ax.set_yscale("log")
    ax.set_xlabel("achieved QPS (LoadGen Server)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
