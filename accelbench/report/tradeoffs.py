"""Trade-offs across optimizations: speed-ups, Pareto fronts, recommendations and budget answers.

Works on records only (no framework, no pandas): one *point* per artifact and profile, taken from
its single-stream cell (or its projection, labelled so), joined with the artifact's quality. A
point's speed-up over fp32 comes from the paired cell that timed both in one worker when there is
one; two single-stream cells measured minutes apart on a drifting machine give a figure, never
evidence of a difference.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from accelbench.benchmarks.paired import DEFAULT_THRESHOLD, round_range, verdict
from accelbench.errors import UsageError
from accelbench.records import Record, as_records

# A projected speed-up (an estimate, not a measurement) is claimed only when at least this large.
MIN_SPEEDUP = 1.10
# A cell whose interquartile range exceeds this share of its median saw the machine's speed vary.
UNSTABLE_SPREAD = 0.30
# A paired time verdict, in words about speed.
_SPEED_VERDICTS = {
    "improved": "faster",
    "regressed": "slower",
    "unchanged": "no measurable difference",
    "inconclusive": "inconclusive",
}


@dataclass(frozen=True)
class Speedup:
    """An artifact's speed-up over fp32 (fp32's time / its time: above 1 is faster), where the
    figure comes from, and what it shows.

    ``source``: "paired" (both timed in one worker, pair by pair: ``ci`` is the 95% interval and
    ``round_range`` the per-round medians), "separate" (two separately measured cells: a figure,
    not evidence), or "projected" (two projections). ``verdict``: for a paired figure "faster" or
    "slower" (interval excludes 1 and the change passes the threshold), "no measurable
    difference" (interval within the threshold) or "inconclusive"; else empty.
    """

    value: float
    source: str
    ci: tuple[float, float] | None = None
    confidence: float = 0.95
    rounds: int | None = None
    round_range: tuple[float, float] | None = None
    verdict: str = ""

    @property
    def faster(self) -> bool:
        return self.verdict == "faster"

    def text(self) -> str:
        """The figure with where it comes from, e.g. '1.84× (95% CI 1.80–1.88, 5 rounds
        1.79–1.90, paired)'."""
        if self.source == "paired" and self.ci and self.round_range:
            return (
                f"{self.value:.2f}× ({self.confidence:.0%} CI {self.ci[0]:.2f}–{self.ci[1]:.2f}, "
                f"{self.rounds} rounds {self.round_range[0]:.2f}–{self.round_range[1]:.2f}, paired)"
            )
        if self.source == "projected":
            return f"{self.value:.2f}× (projected)"
        return f"{self.value:.2f}× (separately measured cells, not evidence of a difference)"

    def describe(self) -> str:
        """The figure and, for a paired one, what it shows: '… paired): faster'."""
        return f"{self.text()}: {self.verdict}" if self.verdict else self.text()


def paired_speedup(record: Record, threshold: float = DEFAULT_THRESHOLD) -> Speedup:
    """The speed-up a paired record shows: the inverse of its time ratio (optimization / fp32),
    interval and round range inverted alike, judged against ``threshold`` (a relative change)."""
    paired = record.paired
    assert paired is not None  # paired_records gives only records with one
    ratio, low, high = paired.ratio, paired.ci_low, paired.ci_high
    rounds = round_range(paired.to_dict())
    return Speedup(
        value=1.0 / ratio,
        source="paired",
        ci=(1.0 / high, 1.0 / low),
        confidence=float(paired.confidence if paired.confidence is not None else 0.95),
        rounds=paired.rounds,
        round_range=(1.0 / paired.round_ratio_max, 1.0 / paired.round_ratio_min),
        verdict=_SPEED_VERDICTS[verdict(ratio, low, high, threshold, rounds)],
    )


def paired_records(
    records: Iterable[Record | dict[str, Any]],
) -> dict[tuple[str, str, int, str], Record]:
    """A suite's paired comparisons with fp32, by (model, profile, threads, optimization)."""
    found = {}
    for r in as_records(records):
        if r.scenario == "paired" and r.status == "ok" and r.paired and r.paired.base == "fp32":
            found[(str(r.model), str(r.profile), r.threads or 0, str(r.optimization))] = r
    return found


# A recommendation prefers optimizations that lose at most this much quality (1 point).
MAX_LOSS = 0.01


@dataclass
class Point:
    """One artifact on one profile: its latency, quality and size, and how each was obtained."""

    model: str
    optimization: str
    profile: str
    execution: str
    threads: int
    latency_ms: float | None
    latency_kind: str  # "measured p50", "emulated p50" or "projected"
    quality: float | None
    quality_metric: str | None
    quality_delta: float | None
    worst_class_delta: float | None
    flagged_classes: list[str] = field(default_factory=list)
    model_bytes: int | None = None
    model_gzip_bytes: int | None = None
    speedup: Speedup | None = None  # over fp32 on the same profile and threads
    size_ratio_vs_fp32: float | None = None  # fp32's .tflite bytes over this one's, on disk
    gzip_ratio_vs_fp32: float | None = None  # the same, both gzip-compressed
    latency_ci: tuple[float, float] | None = None  # 95% CI of the median (measured cells)
    spread: float | None = None  # interquartile range / median
    # The device's own latency, which a latency budget is judged on (see device_latency).
    device_latency_ms: float | None = None
    device_latency_kind: str = ""
    device_refusal: str | None = None
    # A projected device latency's error band (low, high ms), from the record's projection.
    device_band: tuple[float, float] | None = None
    device_band_rests_on: str = ""

    @property
    def speedup_vs_fp32(self) -> float | None:
        return self.speedup.value if self.speedup else None

    @property
    def unstable(self) -> bool:
        return self.spread is not None and self.spread > UNSTABLE_SPREAD

    @property
    def label(self) -> str:
        return self.profile if self.execution == "local" else f"{self.profile} ({self.execution})"

    @property
    def kind(self) -> str:
        """How its latency was obtained: measured (here or on a remote device), emulated (this
        host under the device's limits) or projected (the device model's estimate)."""
        return self.execution if self.execution in ("emulated", "projected") else "measured"

    @property
    def smaller_by(self) -> float | None:
        """How many times smaller than fp32 it is, as judged: gzipped where both sizes are
        known, because what pruning and clustering buy is compressibility, not raw bytes."""
        return self.gzip_ratio_vs_fp32 or self.size_ratio_vs_fp32

    def smaller_text(self) -> str:
        """'2.7× smaller gzipped (2.1× on disk)': both ratios, each named, the judged one first."""
        disk, gzip = self.size_ratio_vs_fp32, self.gzip_ratio_vs_fp32
        if gzip and disk:
            return f"{gzip:.1f}× smaller gzipped ({disk:.1f}× on disk)"
        if gzip:
            return f"{gzip:.1f}× smaller gzipped"
        return f"{disk or 0:.1f}× smaller on disk"


def _latency_stats(record: Record) -> tuple[tuple[float, float] | None, float | None]:
    import numpy as np

    from accelbench.stats import median_ci

    raw = record.raw_latencies_ms or []
    if len(raw) < 10:
        return None, None
    q1, q2, q3 = np.percentile(raw, [25, 50, 75])
    return median_ci(raw), float((q3 - q1) / q2) if q2 > 0 else None


def device_latency(record: Record) -> tuple[float | None, str, str | None]:
    """The device's single-sample latency in a record: (ms, what it is, why there is none).

    A local or remote cell ran on the device itself, so its p50 is the device's ("measured
    p50"). A projected cell's figure is its projection. An emulated cell ran on this host under
    the profile's thread and memory limits: its own p50 is this host's speed, never the
    device's, so the device's figure is the projection the record carries ("projected"), and
    without one there is none and the reason says so. The report's device figures and
    `accelbench recommend` both read a device's latency through this function.
    """
    execution = record.execution
    profile = record.profile or "the device"
    projected = record.metric("projected_latency_ms")
    if execution in ("projected", "emulated"):
        if projected:
            return float(projected), "projected", None
        if execution == "emulated":
            why = (
                f"emulated on this host under {profile}'s limits, so its p50 is this host's "
                f"speed, and the record has no projected latency for {profile}"
            )
        else:
            why = f"the projection for {profile} gave no latency"
        return None, "", why
    p50 = record.latency_p50_ms
    if p50:
        return float(p50), "measured p50", None
    return None, "", "no single-stream p50 in the record"


def clearly_faster(fast: Point, slow: Point) -> bool:
    """Faster by at least MIN_SPEEDUP, with non-overlapping median CIs where both are measured."""
    if not (fast.latency_ms and slow.latency_ms):
        return False
    if slow.latency_ms / fast.latency_ms < MIN_SPEEDUP:
        return False
    if fast.latency_ci and slow.latency_ci:
        return fast.latency_ci[1] < slow.latency_ci[0]
    return True


def claimed_faster(p: Point, base: Point) -> bool:
    """Whether the data shows p faster than its fp32 base: a paired verdict of "faster", or a
    projection clearly faster; two separately measured cells never show it."""
    if p.speedup is None:
        return False
    if p.speedup.source == "paired":
        return p.speedup.faster
    return p.speedup.source == "projected" and clearly_faster(p, base)


def points(
    records: Iterable[Record | dict[str, Any]], threshold: float = DEFAULT_THRESHOLD
) -> list[Point]:
    """Points from a run's records: single-stream cells that are ok, and projections; each
    speed-up over fp32 from the run's paired cell where there is one (judged at ``threshold``)."""
    records = as_records(records)
    out: list[Point] = []
    for r in records:
        if r.scenario != "single-stream" or r.status != "ok":
            continue
        if r.execution == "projected":
            latency, kind = r.metric("projected_latency_ms"), "projected"
        else:
            latency = r.latency_p50_ms
            kind = "emulated p50" if r.execution == "emulated" else "measured p50"
        out.append(
            Point(
                model=str(r.model),
                optimization=str(r.optimization),
                profile=str(r.profile),
                execution=str(r.execution),
                threads=r.threads or 0,
                latency_ms=latency,
                latency_kind=kind,
                quality=r.quality_value,
                quality_metric=r.quality_metric,
                quality_delta=r.quality_delta,
                worst_class_delta=r.worst_class_delta,
                flagged_classes=r.flagged_classes,
                model_bytes=r.model_bytes,
                model_gzip_bytes=r.model_gzip_bytes,
            )
        )
        out[-1].latency_ci, out[-1].spread = _latency_stats(r)
        device = device_latency(r)
        out[-1].device_latency_ms, out[-1].device_latency_kind, out[-1].device_refusal = device
        if device[1] == "projected":
            out[-1].device_band, out[-1].device_band_rests_on = r.projected_band
    _relative_to_fp32(out, paired_records(records), threshold)
    return out


def _relative_to_fp32(
    pts: list[Point], paired: dict[tuple[str, str, int, str], Record], threshold: float
) -> None:
    base = {
        (p.model, p.profile, p.threads): p
        for p in pts
        if p.optimization in ("fp32", "none") and p.latency_ms
    }
    for p in pts:
        record = paired.get((p.model, p.profile, p.threads, p.optimization))
        if record is not None:
            p.speedup = paired_speedup(record, threshold)
        b = base.get((p.model, p.profile, p.threads))
        if b is None:
            continue
        if p.speedup is None and p.latency_ms and p is not b:
            source = "projected" if p.execution == "projected" else "separate"
            p.speedup = Speedup(b.latency_ms / p.latency_ms, source)
        if p.model_bytes and b.model_bytes:
            p.size_ratio_vs_fp32 = b.model_bytes / p.model_bytes
        if p.model_gzip_bytes and b.model_gzip_bytes:
            p.gzip_ratio_vs_fp32 = b.model_gzip_bytes / p.model_gzip_bytes


def pareto_front(pts: list[Point]) -> list[Point]:
    """Points no other point beats on both latency (lower) and quality (higher), by latency."""
    usable = [p for p in pts if p.latency_ms is not None and p.quality is not None]
    usable.sort(key=lambda p: (p.latency_ms, -(p.quality or 0)))
    front: list[Point] = []
    best = -math.inf
    for p in usable:
        if p.quality is not None and p.quality > best:
            front.append(p)
            best = p.quality
    return front


def _points_delta(p: Point) -> str:
    if p.quality_delta is None:
        return ""
    return f"{p.quality_delta * 100:+.1f} points"


@dataclass
class Choice:
    """What the recommendation picks for one model on one profile (and thread count), and why.

    ``pick``: the artifact the data shows faster than fp32 (the largest speed-up that loses at
    most a point and no class, else the most accurate), or, where fp32 has no latency, the
    fastest there is. ``smaller``: a harmless artifact worth naming for its size. ``why_none``:
    without a pick, why nothing is recommended, with the best figure there is.
    """

    model: str
    label: str
    pick: Point | None = None
    base: Point | None = None
    smaller: Point | None = None
    why_none: str = ""

    def sentence(self) -> str:
        """One plain sentence: 'on host, int8 is 1.84× (…, paired) faster than fp32 for …'."""
        label, pick = self.label, self.pick
        if pick is None:
            return f"on {label}, {self.reason()}."
        if self.base is None:
            return (
                f"on {label}, {pick.optimization} is the fastest at "
                f"{pick.latency_ms:.3g} ms ({pick.latency_kind}); fp32 was refused or "
                "failed there."
            )
        speed = pick.speedup.text() if pick.speedup else ""  # claimed_faster needs a speed-up
        sentence = f"on {label}, {pick.optimization} is {speed} faster than fp32"
        delta = _points_delta(pick)
        sentence += f" for {delta}" if delta else ""
        if pick.flagged_classes:
            sentence += f", but classes {', '.join(pick.flagged_classes)} lose more than 2 points"
        if self.smaller is not None:
            sentence += f"; {self.smaller.optimization} is also {self.smaller.smaller_text()}"
        return sentence + "."

    def reason(self) -> str:
        """Without a pick: why nothing is recommended, and a harmlessly smaller artifact if any."""
        text, s = self.why_none, self.smaller
        if s is not None:
            text += f"; {s.optimization} is {s.smaller_text()}"
            text += f" for {_points_delta(s)}" if _points_delta(s) else ""
        return text


def _harmless(p: Point) -> bool:
    return p.quality_delta is not None and p.quality_delta > -MAX_LOSS and not p.flagged_classes


def choose(pts: list[Point], model: str, label: str) -> Choice:
    """The recommendation for one model on one profile (and thread count)."""
    group = [p for p in pts if p.model == model and p.label == label]
    base = next((p for p in group if p.optimization in ("fp32", "none")), None)
    choice = Choice(model, label, base=base)
    if not group:
        choice.why_none = f"no single-stream result for {model}"
        return choice
    if base is None:
        fastest = min((p for p in group if p.latency_ms), key=lambda p: p.latency_ms, default=None)
        if fastest is None:
            choice.why_none = f"no latency was obtained for {model}"
        choice.pick = fastest
        return choice
    # Dominated points count too: one that hurts no class can be worth a little speed.
    faster = [p for p in group if p is not base and claimed_faster(p, base)]
    if not faster:
        choice.why_none = _nothing_faster(group, base)
        smaller = [p for p in group if p.smaller_by and p.smaller_by > 1.2 and _harmless(p)]
        choice.smaller = max(smaller, key=lambda p: p.smaller_by or 0, default=None)
        return choice
    # The pick: the largest speed-up that loses at most a point and no class, else the most
    # accurate. By speed-up, not latency: separately measured latencies may order them otherwise.
    harmless = [p for p in faster if (p.quality_delta or 0) >= -MAX_LOSS and not p.flagged_classes]
    if harmless:
        pick = max(harmless, key=lambda p: p.speedup_vs_fp32 or 0.0)
    else:
        pick = max(faster, key=lambda p: (p.quality or 0, p.speedup_vs_fp32 or 0.0))
    choice.pick = pick
    smaller = [
        p
        for p in group
        if p.smaller_by
        and pick.smaller_by
        and p.smaller_by > pick.smaller_by * 1.2
        and _harmless(p)
    ]
    choice.smaller = max(smaller, key=lambda p: p.smaller_by or 0, default=None)
    return choice


def recommendation(pts: list[Point], model: str, label: str) -> str:
    """One plain sentence for one model on one profile (and thread count)."""
    return choose(pts, model, label).sentence()


def _nothing_faster(group: list[Point], base: Point) -> str:
    """Why no optimization is said to be faster than fp32, and the best figure there is."""
    others = [p for p in group if p is not base and p.speedup]
    fp32 = f"fp32 ({base.latency_ms:.3g} ms, {base.latency_kind})" if base.latency_ms else "fp32"
    if all(p is base for p in group):
        ran = f"{base.latency_ms:.3g} ms, {base.latency_kind}" if base.latency_ms else "no latency"
        return f"only {base.optimization} ran there ({ran}), so there is nothing to compare it with"
    paired = [p for p in others if p.speedup and p.speedup.source == "paired"]
    if paired:
        best = max(paired, key=lambda p: p.speedup_vs_fp32 or 0.0)
        return (
            f"nothing is measurably faster than {fp32}; the best paired speed-up is "
            f"{best.optimization}'s, {_describe_speedup(best)}"
        )
    if base.execution == "projected":
        return (
            f"nothing is clearly faster than {fp32}; 'clearly' = projected at least "
            f"{MIN_SPEEDUP:.2f}× faster"
        )
    text = f"no optimization was timed paired with {fp32}, so none is shown faster"
    best = max(others, key=lambda p: p.speedup_vs_fp32 or 0.0, default=None)
    if best is not None:
        text += f"; {best.optimization}: {_describe_speedup(best)}"
    return text


def _describe_speedup(p: Point) -> str:
    return p.speedup.describe() if p.speedup else "no speed-up figure"


@dataclass
class Budget:
    max_latency_ms: float | None = None
    min_quality: float | None = None
    max_size_mb: float | None = None

    def violations(self, p: Point) -> dict[str, float]:
        """How far a point is outside each constraint, relative to the constraint (0 = met)."""
        v: dict[str, float] = {}
        if self.max_latency_ms is not None:
            # The budget is the device's: an emulated host figure never stands in for it.
            lat = p.device_latency_ms if p.device_latency_ms is not None else math.inf
            v["latency"] = max(0.0, lat / self.max_latency_ms - 1)
        if self.min_quality is not None:
            q = p.quality if p.quality is not None else -math.inf
            v["quality"] = max(0.0, (self.min_quality - q) / max(self.min_quality, 1e-9))
        if self.max_size_mb is not None:
            size_mb = (p.model_bytes or math.inf) / 1e6
            v["size"] = max(0.0, size_mb / self.max_size_mb - 1)
        return v


def answer_budget(pts: list[Point], budget: Budget, profile: str | None = None) -> list[str]:
    """Lines answering "what meets this budget?": the best candidates, or the closest miss."""
    if profile:
        pts = [p for p in pts if p.profile == profile]
        if not pts:
            raise UsageError(
                f"the run has no single-stream result on profile {profile!r}; "
                "pass a profile the run used, or omit --profile"
            )
    if not pts:
        raise UsageError("the run has no single-stream results to choose from; run one first")
    refused: list[Point] = []
    if budget.max_latency_ms is not None:
        refused = [p for p in pts if p.device_latency_ms is None]
        pts = [p for p in pts if p.device_latency_ms is not None]
    refusals = [f"  {p.model} {p.optimization} on {p.label}: {p.device_refusal}" for p in refused]
    if refused:
        refusals.insert(0, f"refused for the latency budget ({len(refused)}): no device latency")
    if not pts:
        return ["nothing in this run can be judged against the latency budget.", *refusals]
    meeting = [p for p in pts if not any(budget.violations(p).values())]
    if meeting:
        meeting.sort(key=lambda p: (p.device_latency_ms or math.inf, -(p.quality or 0)))
        lines = [f"{len(meeting)} of {len(pts)} results meet the budget; fastest first:"]
        for p in meeting[:10]:
            lines.append("  " + describe(p) + _straddles(p, budget))
        return lines + refusals
    closest = min(pts, key=lambda p: sum(budget.violations(p).values()))
    v = budget.violations(closest)
    missed = []
    if v.get("latency"):
        missed.append(
            f"latency {closest.device_latency_ms:.3g} ms ({closest.device_latency_kind}) > "
            f"{budget.max_latency_ms:g} ms{_straddles(closest, budget)}"
        )
    if v.get("quality"):
        have = f"{closest.quality:.4f}" if closest.quality is not None else "unknown"
        missed.append(f"{closest.quality_metric or 'quality'} {have} < {budget.min_quality:g}")
    if v.get("size"):
        missed.append(f"size {(closest.model_bytes or 0) / 1e6:.3f} MB > {budget.max_size_mb:g} MB")
    per_constraint = {name: min(budget.violations(p).get(name, 0.0) for p in pts) for name in v}
    easiest = [name for name, x in per_constraint.items() if x == 0]
    lines = [
        f"nothing in this run meets the budget ({len(pts)} results checked).",
        f"closest: {describe(closest)}; it misses: {'; '.join(missed)}.",
    ]
    if easiest:
        lines.append(
            f"met on its own by some result: {', '.join(easiest)}; not together with the rest."
        )
    return lines + refusals


def _straddles(p: Point, budget: Budget) -> str:
    """Where a projected latency's band straddles the latency budget, a clause saying so: the
    projection alone cannot tell whether the device meets the budget."""
    limit = budget.max_latency_ms
    if limit is None or p.device_band is None:
        return ""
    low, high = p.device_band
    if not low <= limit <= high:
        return ""
    inside = p.device_latency_ms is not None and p.device_latency_ms <= limit
    return (
        f" — but its band {low:.3g}–{high:.3g} ms straddles the {limit:g} ms budget, so it may "
        + ("miss it on the device" if inside else "meet it on the device")
        + "; measure it there to be sure"
    )


def _band(p: Point) -> str:
    """'; band 1.1–4.8 ms' after a projected figure, '; unchecked' where nothing checks it."""
    if p.device_latency_kind != "projected":
        return ""
    if p.device_band is None:
        return "; unchecked"
    return f"; band {p.device_band[0]:.3g}–{p.device_band[1]:.3g} ms"


def describe(p: Point) -> str:
    """One result in a budget answer: its device latency, labelled, then quality and size."""
    parts = [f"{p.model} {p.optimization} on {p.label}"]
    if p.threads:
        parts.append(f"{p.threads} thr")
    if p.device_latency_ms is not None:
        parts.append(f"{p.device_latency_ms:.3g} ms ({p.device_latency_kind}{_band(p)})")
    if p.quality is not None:
        parts.append(f"{p.quality_metric} {p.quality:.4f}")
    if p.model_bytes:
        parts.append(f"{p.model_bytes / 1e6:.3f} MB")
    if p.speedup:
        parts.append(f"speed-up vs fp32 {p.speedup.describe()}")
    return ", ".join(parts)
