"""Result records: the metric triple, the record schema (Record) and the append-only
records.jsonl file."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from accelbench.runtimes.tflite_cost import CostTotals

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"

Direction = Literal["lower", "higher", "none"]
Status = Literal["ok", "failed", "invalid", "skipped"]
STATUSES: tuple[str, ...] = get_args(Status)


def metric(value: float | int | None, unit: str, direction: Direction) -> dict[str, Any]:
    """One metric as stored in a record: its value, its unit, and which way is better."""
    if direction not in get_args(Direction):
        raise ValueError(f"direction must be 'lower', 'higher' or 'none', not {direction!r}")
    if value is not None and not isinstance(value, int):
        value = float(value)
    return {"value": value, "unit": unit, "direction": direction}


# ---------------------------------------------------------------------------------------------
# The record schema. A record is one JSON object per line of records.jsonl; these models read
# every record accelbench writes and give it back unchanged (``Record.to_dict``): fields a record
# does not carry stay absent, keys the models do not name are kept (``extra="allow"``), and
# numbers keep their type (strict validation: an int stays an int, no string or bool passes for
# a number). Fields are optional because records vary by scenario and by who wrote them (a
# baseline keeps a slim part, a pytest-benchmark file gives what it has); what every record a
# run writes must carry is RUN_FIELDS.

Number = int | float
Execution = Literal["local", "emulated", "projected", "remote"]
# The quality metrics a model can state, in the order a record's is looked for.
QUALITY_METRICS = ("accuracy", "auc")
_EXECUTION_WORDS = {
    "local": "measured on this host",
    "emulated": "emulated on this host",
    "projected": "projected",
    "remote": "measured remotely",
}


class _Part(BaseModel):
    """A part of a record: strict types, unknown keys kept, unset fields left out of to_dict."""

    model_config = ConfigDict(extra="allow", strict=True)

    def to_dict(self) -> dict[str, Any]:
        """The part as it is written: only the keys it was given, unknown ones included."""
        return self.model_dump(exclude_unset=True)


class Metric(_Part):
    """One measured or derived figure."""

    value: Number | None = Field(description="the figure; null where it could not be obtained")
    unit: str = Field(description="its unit, e.g. `ms`, `samples/s`, `bytes`, `fraction`")
    direction: Direction = Field(
        description="which way is better: `lower`, `higher`, or `none` (neither; not judged)"
    )


class Artifact(_Part):
    """The model file (or SavedModel folder) a cell ran."""

    path: str | None = Field(None, description="as the run saw it (a baseline: in its store)")
    sha256: str | None = Field(None, description="of the file, or of every file of a folder")
    bytes: int | None = Field(None, description="size on disk")


class Environment(_Part):
    """The machine and software a record was measured on (the hardware fingerprint)."""

    host_fingerprint_id: str | None = Field(
        None,
        description="a short hash of the hardware (CPU model and flags, machine, cores, memory, "
        "GPUs): compare judges times only between records with the same one",
    )
    cpu_model: str | None = Field(None, description="CPU model name")
    cpu_vendor: str | None = Field(None, description="CPU vendor")
    cpu_flags: list[str] | None = Field(None, description="CPU feature flags (avx2, amx_int8…)")
    machine: str | None = Field(None, description="architecture, e.g. x86_64")
    logical_cores: int | None = Field(None, description="logical cores of the machine")
    physical_cores: int | None = Field(None, description="physical cores")
    available_cores: int | None = Field(None, description="cores this process may run on")
    memory_total_gb: Number | None = Field(None, description="the machine's memory")
    memory_cgroup_limit_gb: Number | None = Field(None, description="a cgroup's memory limit")
    os: str | None = Field(None, description="operating system")
    os_release: str | None = Field(None, description="its release (PRETTY_NAME)")
    kernel: str | None = Field(None, description="kernel release")
    python: str | None = Field(None, description="Python version")
    python_implementation: str | None = Field(None, description="e.g. CPython")
    packages: dict[str, str | None] | None = Field(
        None, description="version of each package a result depends on; null: not installed"
    )
    gpus: list[dict[str, Any]] | None = Field(
        None, description="attached GPUs: name, driver, memory_mib"
    )
    git_commit: str | None = Field(None, description="the git commit of the working folder")
    git_dirty: bool | None = Field(None, description="whether it had uncommitted changes")


class RuntimeInfo(_Part):
    """What the runtime reported about itself once the model was loaded; the rest of its keys
    depend on the runtime (interpreter package and version, signature keys, JAX devices…)."""

    runtime: str | None = Field(None, description="litert, tflite-runtime, tensorflow, jax…")
    threads: int | None = Field(None, description="threads it was given")
    xnnpack: bool | None = Field(None, description="whether LiteRT's XNNPACK delegate was on")


class Validity(_Part):
    """LoadGen's verdict on a LoadGen cell (null parts for other scenarios)."""

    result: str | None = Field(None, description="LoadGen's result: VALID or INVALID")
    criteria: dict[str, bool] | None = Field(
        None, description="each criterion: min duration, min queries, early stopping, latency"
    )
    early_stopping: dict[str, Any] | None = Field(
        None, description="early-stopping result and its percentile estimates"
    )


class Canary(_Part):
    """The machine's own speed right before and after the cell (benchmarks/canary.py)."""

    before_ms: Number | None = Field(None, description="the canary workload's time before")
    after_ms: Number | None = Field(None, description="and after the cell")
    method: str | None = Field(None, description="what the canary workload is")

    @property
    def mean_ms(self) -> float | None:
        """The mean of the positive, finite times; None without one."""
        times = [float(t) for t in (self.before_ms, self.after_ms) if t is not None]
        if not times or not all(0.0 < t < math.inf for t in times):
            return None
        return sum(times) / len(times)


class Graph(CostTotals, _Part):
    """A .tflite graph's cost (runtimes/tflite_cost.py's GraphCost without its per-op list);
    `memory_bytes` and `arithmetic_intensity` are GraphCost's own arithmetic."""

    path: str | None = Field(None, description="the file analysed")
    flops: int = Field(0, description="FLOPs per inference, 2 per multiply-accumulate")
    weight_bytes: int = Field(0, description="bytes of constant tensors")
    activation_bytes: int = Field(0, description="bytes of every computed tensor and input")
    precision: str | None = Field(
        None, description="fp32, fp16, bf16, dynamic, int8, int16x8, mixed or int32"
    )
    is_full_integer: bool | None = Field(None, description="no op computes in float")
    float_ops: list[str] | None = Field(None, description="ops that compute in float")
    int_ops: list[str] | None = Field(None, description="ops that compute in integers")
    op_counts: dict[str, int] | None = Field(None, description="ops by name")
    uncounted_ops: list[str] | None = Field(None, description="ops whose FLOPs are not known")


class Quality(_Part):
    """How a prepared artifact scores on the test data, against fp32."""

    per_class: dict[str, Any] | None = Field(None, description="accuracy per class")
    flagged_classes: list[str] | None = Field(
        None, description="classes that lose more than `flag_threshold_points` against fp32"
    )
    worst_class_delta: Number | None = Field(None, description="the largest per-class loss")
    agreement: Number | None = Field(None, description="share of predictions equal to fp32's")
    flag_threshold_points: Number | None = Field(None, description="the flagging threshold")
    correct_bits: str | None = Field(
        None, description="which test examples it gets right, '0'/'1' each (for McNemar)"
    )
    unique_weights_per_layer: dict[str, Any] | None = Field(None, description="per layer")
    sparsity_per_layer: dict[str, Any] | None = Field(None, description="per layer")
    weight_dtypes: Any = Field(None, description="weight types of the artifact")
    float_ops: list[str] | None = Field(None, description="ops that stayed in float")
    int_ops: list[str] | None = Field(None, description="ops in integers")
    steps: Any = Field(None, description="the optimization's steps")
    notes: Any = Field(None, description="what the optimization left out, and why")


class Paired(_Part):
    """A paired comparison: two artifacts timed call by call, alternately, in one worker."""

    sides: list[str] | None = Field(
        None, description="the two sides (a suite's: `base` fp32, then the optimization)"
    )
    base: str | None = Field(None, description="the side the ratio is against (a suite's fp32)")
    seed: int | None = Field(None, description="seed of the call order")
    order: list[list[int]] | None = Field(
        None, description="per pair, the sides in the order called (0 base, 1 new)"
    )
    times_ms: dict[str, list[Number]] | None = Field(None, description="every call's time")
    ratio: Number | None = Field(
        None, description="second side's time / the first's (Hodges–Lehmann over all pairs)"
    )
    ci_low: Number | None = Field(None, description="its 95% signed-rank interval, low end")
    ci_high: Number | None = Field(None, description="and high end")
    confidence: Number | None = Field(None, description="the interval's level")
    round_ratios: list[Number] | None = Field(None, description="each round's median ratio")
    round_ratio_min: Number | None = Field(None, description="their smallest")
    round_ratio_max: Number | None = Field(None, description="and largest")
    rounds: int | None = Field(None, description="rounds")
    pairs: int | None = Field(None, description="pairs over all rounds")
    verdict: str | None = Field(
        None, description="improved, regressed, unchanged or inconclusive at the threshold"
    )


class Remote(_Part):
    """Where a remote cell ran: the device as it reported itself, and how it was timed there."""

    transport: str | None = Field(None, description="how the device was reached: `ssh` or `ray`")
    host: str | None = Field(
        None, description="user@host[:port] of the device (ssh), or the node's address (ray)"
    )
    node_id: str | None = Field(None, description="the Ray node that ran the cell (ray)")
    fingerprint: dict[str, Any] | None = Field(
        None,
        description="the device's own environment: hostname, machine (CPU architecture), CPU "
        "model, cores, memory_gb, OS, Python and the versions of numpy, the interpreter packages "
        "and LoadGen there (null: not installed)",
    )
    timing: str | None = Field(
        None,
        description="`loadgen` (LoadGen on the device issued the queries) or `timed-loop` (the "
        "device has no LoadGen: queries back to back for the preset's duration and count)",
    )
    folder: str | None = Field(None, description="the run's folder on the device (home-relative)")
    artifact_path: str | None = Field(None, description="the artifact's copy on the device")
    contradictions: list[str] | None = Field(
        None,
        description="where the device contradicts the profile (another CPU architecture, fewer "
        "cores, less memory); empty when it does not",
    )
    started_at: str | None = Field(
        None, description="when the cell started on the node, ISO 8601 UTC (ray)"
    )
    ended_at: str | None = Field(None, description="when it ended there, ISO 8601 UTC (ray)")


class Node(_Part):
    """The Ray cluster node that measured a `local` or `emulated` cell sent there with
    `--spread` (the record's `environment` is that node's)."""

    transport: str | None = Field(None, description="`ray`")
    host: str | None = Field(None, description="the node's address")
    node_id: str | None = Field(None, description="the Ray node's id")
    hostname: str | None = Field(None, description="the node machine's host name")
    started_at: str | None = Field(None, description="when the cell started there, ISO 8601 UTC")
    ended_at: str | None = Field(None, description="when it ended there, ISO 8601 UTC")


class Cost(_Part):
    """What a million inferences cost on the cell's device (hardware_profiles/pricing.py)."""

    usd_per_million: Number | None = Field(
        None, description="US$ per million inferences, the device busy the whole hour"
    )
    throughput: Literal["measured", "projected"] | None = Field(
        None,
        description="which throughput it rests on: `measured` (the cell's own) or `projected` "
        "(a projected or emulated cell's projected rate)",
    )
    inferences_per_s: Number | None = Field(None, description="that throughput")
    inferences_per_s_basis: str | None = Field(
        None,
        description="what it is: Offline or Server samples/s, 1 / single-stream p50, or "
        "1 / projected latency (batch 1)",
    )
    usd_per_hour: Number | None = Field(
        None, description="the device's price per hour (a purchase spread over its service life)"
    )
    price: str | None = Field(
        None, description="what the price rests on: the figure, its source and the date read"
    )


class Record(_Part):
    """One cell's result: what ran, where and how, its metrics, and the machine it ran on."""

    schema_version: int | None = Field(
        None, description=f"the record format's version (now {SCHEMA_VERSION})"
    )
    run_id: str | None = Field(None, description="the run folder's name")
    cell_id: str | None = Field(
        None,
        description="the cell's logical identity (model, optimization, profile, threads, "
        "scenario, preset, runtime, XNNPACK, scenario options) plus a hash of it, never the "
        "artifact hash, so runs can be compared after a model changes; a configuration of a "
        "multi-configuration cell adds its key",
    )
    parent_cell_id: str | None = Field(
        None, description="a configuration's record: the cell it belongs to"
    )
    configuration_keys: list[str] | None = Field(
        None, description="every configuration key of that cell (a resumed run sees one cut short)"
    )
    key: str | None = Field(None, description="a configuration's key (the end of its cell_id)")
    status: Status | None = Field(
        None,
        description="`ok`, `failed`, `invalid` (LoadGen said INVALID) or `skipped` (the device "
        "refuses the artifact)",
    )
    error: str | None = Field(None, description="why it is not ok")
    model: str | None = Field(None, description="the model's name")
    optimization: str | None = Field(None, description="fp32, int8, prune50+int8… or none")
    profile: str | None = Field(None, description="the hardware profile's name")
    profile_kind: str | None = Field(None, description="cpu, gpu, tpu, edge-tpu, edge-cpu…")
    profile_data: dict[str, Any] | None = Field(
        None, description="the whole profile used (its YAML's fields, a calibrated host's peaks)"
    )
    execution: Execution | None = Field(
        None,
        description="how the figures were obtained: `local`, `emulated` (on this host under the "
        "device's limits), `projected` (per-op model, never measured) or `remote`",
    )
    scenario: str | None = Field(
        None,
        description="single-stream, multi-stream, offline, server, paired, accuracy, training, "
        "input-pipeline, serving…",
    )
    runtime: str | None = Field(None, description="the runtime asked for, or `auto`")
    runtime_info: RuntimeInfo | None = Field(None, description="what the runtime reported")
    threads: int | None = Field(None, description="threads the cell ran with")
    settings: dict[str, Any] | None = Field(
        None,
        description="preset, threads, XNNPACK, inputs, seed, timeout, every LoadGen setting used, "
        "`comparable_to_mlperf` (always false: accelbench runs neither the benchmark's reference "
        "data set nor an accuracy run) and `mlperf_comparability`, which says part by part what "
        "matches an MLPerf Inference result (`loadgen_settings`: true for the `mlperf` preset; "
        '`dataset`: e.g. "64 synthetic samples"; `reference_dataset`, `accuracy_run`: false); '
        "for pipeline, training and serving configurations also `format`/`pipeline`, "
        "`framework`/`strategy`/`precision`/`xla`/`devices`, `mode` with the server's settings "
        "and the latency-throughput `curve`",
    )
    environment: Environment | None = Field(
        None,
        description="CPU model and flags, cores, memory, OS and kernel, Python, package versions, "
        "GPUs and driver where present, git commit",
    )
    artifact: Artifact | None = Field(None, description="path, sha256, bytes")
    metrics: dict[str, Metric] | None = Field(
        None, description="name → metric (the names are listed below the tables)"
    )
    quality: Quality | None = Field(
        None,
        description="for prepared artifacts: per-class accuracy and flags, agreement with fp32, "
        "per-layer sparsity and unique weights, and `correct_bits` (which test examples it gets "
        "right, for McNemar)",
    )
    validity: Validity | None = Field(
        None,
        description="LoadGen's result, each criterion (min duration, min queries, early "
        "stopping, server latency constraint), early-stopping estimates",
    )
    emulation: dict[str, Any] | None = Field(
        None, description="the limits applied (threads, affinity, memory cap)"
    )
    projection: dict[str, Any] | None = Field(
        None,
        description="the per-op projection (hardware_profiles/projection.py): "
        '`projected_latency_ms`, its `band` (`low_ms`, `high_ms` and `rests_on`: "checked on N '
        'published rows for <device class>: worst R×" or "unchecked"), `bound` (compute, '
        "memory, overhead or link), `top_ops`, the runtime it models and its method",
    )
    cost: Cost | None = Field(
        None,
        description="latency and throughput cells on a profile with a price: US$ per million "
        "inferences, from `measured` or `projected` throughput, with the price and its source",
    )
    remote: Remote | None = Field(
        None,
        description="`remote` records: transport, host, the device's own fingerprint, how it "
        "was timed, and where the device contradicts the profile",
    )
    node: Node | None = Field(
        None,
        description="`--spread` records: the Ray node that measured the cell (address, node id, "
        "host name, when the cell started and ended there); `environment` is that node's",
    )
    graph: Graph | None = Field(
        None, description="FLOPs, bytes, precision, float and integer ops of a .tflite graph"
    )
    paired: Paired | None = Field(
        None,
        description="paired records (`scenario: paired`, from `ab` or a suite's paired cell): "
        "the two `sides` (a suite's: `base` fp32 and the optimization), seed, each pair's call "
        "order, every call's time per side, `ratio` = the second side's time / the first's "
        "(Hodges–Lehmann estimate over all pairs) with `ci_low`/`ci_high` (95% signed-rank "
        "interval), `round_ratios` and their min/max, and a `verdict` at 5%",
    )
    training: dict[str, Any] | None = Field(
        None, description="a reference model's training: epochs, quality, target, times"
    )
    raw_latencies_ms: list[Number] | None = Field(
        None,
        description="every query's latency as LoadGen timed it (from its trace; empty for the "
        "`mlperf` preset, whose trace would be hundreds of MB)",
    )
    canary: Canary | None = Field(None, description="the machine's speed before and after")
    sandbox: str | None = Field(None, description="how the worker was sandboxed, or `off`")
    sandbox_reason: str | None = Field(None, description="why it was not")
    worker: dict[str, Any] | None = Field(
        None, description="which worker process ran it, and how many cells it ran before"
    )
    wall_s: Number | None = Field(None, description="the worker's wall time")
    log: str | None = Field(None, description="its log file")
    finished_at: str | None = Field(None, description="when, ISO 8601 in UTC")

    @model_validator(mode="after")
    def _written_by_a_run(self, info: ValidationInfo) -> Record:
        if info.context == RUN_CONTEXT:
            missing = [name for name in RUN_FIELDS if name not in self.model_fields_set]
            if missing:
                raise ValueError(f"a run's record must carry {', '.join(missing)}")
        return self

    @classmethod
    def parse(cls, data: Any, where: str = "record", *, run: bool = False) -> Record:
        """A record from its dict, or a ValueError of one line naming ``where`` and the first
        field that does not fit. ``run``: also require every field a run writes (RUN_FIELDS)."""
        if isinstance(data, Record):
            if not run:
                return data
            data = data.to_dict()
        try:
            return cls.model_validate(data, context=RUN_CONTEXT if run else None)
        except ValidationError as err:
            raise ValueError(
                f"{where} does not fit the record schema: {_first_error(err)}"
            ) from None

    def metric(self, name: str) -> float | None:
        """The value of metric `name`, or None when the record has none."""
        found = (self.metrics or {}).get(name)
        return found.value if found is not None else None

    @property
    def latency_p50_ms(self) -> float | None:
        """LoadGen's median query latency."""
        return self.metric("latency_p50_ms")

    @property
    def model_bytes(self) -> float | None:
        """The artifact's size on disk."""
        return self.metric("model_bytes")

    @property
    def model_gzip_bytes(self) -> float | None:
        """The artifact's size gzip-compressed (what pruning and clustering shrink)."""
        return self.metric("model_gzip_bytes")

    @property
    def quality_metric(self) -> str | None:
        """The name of the quality metric the record carries (accuracy, else auc)."""
        return next((q for q in QUALITY_METRICS if self.metric(q) is not None), None)

    @property
    def quality_value(self) -> float | None:
        """Its value."""
        name = self.quality_metric
        return self.metric(name) if name else None

    @property
    def quality_delta(self) -> float | None:
        """Its change against fp32 (a fraction: -0.01 is one point lost)."""
        name = self.quality_metric
        return self.metric(f"{name}_delta") if name else None

    @property
    def flagged_classes(self) -> list[str]:
        """Classes that lose more than the flag threshold against fp32."""
        return list((self.quality.flagged_classes if self.quality else None) or [])

    @property
    def worst_class_delta(self) -> float | None:
        """The largest loss of one class's accuracy against fp32."""
        return self.quality.worst_class_delta if self.quality else None

    @property
    def correct_bits(self) -> str | None:
        """Which test examples the artifact gets right ('0'/'1' each), for a paired test."""
        return self.quality.correct_bits if self.quality else None

    @property
    def execution_label(self) -> str:
        """How the figures were obtained, 'unknown' for a record that does not say."""
        return self.execution or "unknown"

    @property
    def cell_key(self) -> tuple[str, str]:
        """What compare and history match records on: the cell and how its figures were
        obtained (an emulated p50 is never read as a device's latency)."""
        return self.cell_id or "", self.execution_label

    @property
    def projected_band(self) -> tuple[tuple[float, float] | None, str]:
        """A projected figure's error band, (low, high) ms, and what it rests on; (None,
        "unchecked (why)") where no published row checks the device's projection."""
        band = (self.projection or {}).get("band") or {}
        rests_on = str(band.get("rests_on") or "unchecked (the record carries no band)")
        if band.get("low_ms") is None or band.get("high_ms") is None:
            return None, rests_on
        return (float(band["low_ms"]), float(band["high_ms"])), rests_on

    @property
    def profile_label(self) -> str:
        """The profile, with how it ran unless measured here: 'rpi4 (emulated)'."""
        if self.execution == "local":
            return str(self.profile)
        return f"{self.profile} ({self.execution})"

    @property
    def where(self) -> str:
        """Profile and thread count, with how the figures were obtained."""
        how = _EXECUTION_WORDS.get(self.execution or "", self.execution or "")
        return f"{self.profile}, {self.threads} thr — {how}"

    @property
    def configuration_key(self) -> str:
        """A configuration's key (its cell id after its parent's), else the cell id."""
        parent, cell_id = self.parent_cell_id, self.cell_id or ""
        if parent and cell_id.startswith(parent + "."):
            return cell_id[len(parent) + 1 :]
        return cell_id

    @property
    def host_fingerprint(self) -> str | None:
        """The hardware's fingerprint (compare judges times only within one)."""
        return self.environment.host_fingerprint_id if self.environment else None

    @property
    def artifact_sha256(self) -> str | None:
        """The artifact's hash (compare flags a change on the cell's rows)."""
        return self.artifact.sha256 if self.artifact else None


def _first_error(err: ValidationError) -> str:
    """'metrics.qps.value: Input should be a valid integer or a valid number': the first field
    that does not fit, with what each type it may have asks of it (a union's branches are
    pydantic's last location parts; they are folded into the message)."""
    errors = err.errors()
    loc = errors[0]["loc"]
    if len(loc) > 1 and _is_branch(loc[-1]):
        loc = loc[:-1]
        messages = [e["msg"] for e in errors if e["loc"][:-1] == loc and _is_branch(e["loc"][-1])]
    else:
        messages = [errors[0]["msg"]]
    words = [m.removeprefix("Input should be ") for m in dict.fromkeys(messages)]
    message = "Input should be " + " or ".join(words) if len(words) > 1 else messages[0]
    return f"{'.'.join(str(part) for part in loc) or 'the record'}: {message}"


def _is_branch(part: Any) -> bool:
    return part in ("int", "float", "str", "bool") or str(part).startswith("literal[")


# The fields every record a run writes carries (sweep.make_record and the preparation's).
# fmt: skip below: 19 names packed as a paragraph, not one per line.
RUN_FIELDS = (
    "schema_version", "run_id", "cell_id", "status", "error", "model", "optimization", "profile",
    "execution", "scenario", "runtime", "threads", "settings", "environment", "metrics",
    "artifact", "wall_s", "log", "finished_at",
)  # fmt: skip
RUN_CONTEXT = {"written_by": "run"}


def as_records(records: Iterable[Record | dict[str, Any]]) -> list[Record]:
    """Records as Record objects (dicts validated, Records passed through)."""
    return [Record.parse(r, f"record {number}") for number, r in enumerate(records, start=1)]


def append_record(run_dir: Path, record: Record | dict[str, Any]) -> None:
    """Append one record as a JSON line, written through Record, and flush it to disk, so a
    crash loses nothing finished. A record that does not fit the schema is a ValueError (a bug:
    nothing is written)."""
    typed = Record.parse(record, "the record to append")
    run_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps(typed.to_dict(), sort_keys=True, default=_json_default)
    path = run_dir / RECORDS_FILE
    with open(path, "a+b") as fh:
        mend_torn_tail(fh, path)
        fh.write(line.encode("utf-8") + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def mend_torn_tail(fh: BinaryIO, path: Path) -> Path | None:
    """Make a records file end in a newline before anything is appended to it.

    A writer killed mid-line leaves a fragment with no newline; the next record appended would
    be glued onto it and both lost. A fragment that is a whole record (only the newline
    missing) gets its newline; any other is cut off and kept in ``records.jsonl.torn-STAMP``
    beside the file, returned, so that the cell it belonged to counts as not run.
    ``fh`` is the file opened "a+b" (reads anywhere, writes at the end).
    """
    size = fh.seek(0, os.SEEK_END)
    if size == 0:
        return None
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return None
    start = _last_line_start(fh, size)
    fh.seek(start)
    fragment = fh.read()
    try:
        whole = isinstance(json.loads(fragment), dict)
    except ValueError:  # UnicodeDecodeError included
        whole = False
    if whole:
        fh.write(b"\n")
        return None
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    kept = path.with_name(f"{path.name}.torn-{stamp}-{os.getpid()}")
    kept.write_bytes(fragment)
    fh.truncate(start)
    fh.flush()
    os.fsync(fh.fileno())
    return kept


def _last_line_start(fh: BinaryIO, size: int, block: int = 1 << 16) -> int:
    """Offset just past the file's last newline (0 if it has none), read backwards in blocks."""
    end = size
    while end > 0:
        begin = max(0, end - block)
        fh.seek(begin)
        at = fh.read(end - begin).rfind(b"\n")
        if at >= 0:
            return begin + at + 1
        end = begin
    return 0


def read_records(run_dir: Path) -> list[dict[str, Any]]:
    """All complete records of a run, as dicts; a torn last line (a killed writer) is ignored."""
    return list(iter_records(run_dir))


def read_typed_records(run_dir: Path) -> list[Record]:
    """All complete records of a run as Records; one that does not fit the schema is a
    ValueError of one line naming it."""
    path = run_dir / RECORDS_FILE
    return [
        Record.parse(record, f"record {number} of {path}")
        for number, record in enumerate(iter_records(run_dir), start=1)
    ]


def iter_records(run_dir: Path) -> Iterator[dict[str, Any]]:
    path = run_dir / RECORDS_FILE
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) or (number == len(lines) - 1 and not lines[-1]):
                continue  # the last line was cut short by a kill: not a record
            raise ValueError(
                f"{path}:{number} is not valid JSON; the records file is corrupt"
            ) from None


def _json_default(obj: Any) -> Any:
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot store {type(obj).__name__} in a record")


def artifact_info(path: Path) -> dict[str, Any]:
    """Path, sha256 and size of an artifact file, or of every file of a SavedModel folder."""
    digest = hashlib.sha256()
    total = 0
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        data = f.read_bytes()
        total += len(data)
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode())
        digest.update(data)
    return {"path": str(path), "sha256": digest.hexdigest(), "bytes": total}


def find_artifact(artifact: dict[str, Any] | None, root: str | Path) -> tuple[Path | None, str]:
    """The file (or SavedModel folder) of a record's artifact, if it still has the recorded
    sha256; else (None, why not).

    A relative path is tried against `root` (a baseline store, or the run folder), then the
    current folder (a run records its artifacts' paths as the run saw them), then each tail of
    the path under `root` (the run folder moved or reached by another path). The sha256 decides.
    """
    artifact = artifact or {}
    recorded, sha = artifact.get("path"), artifact.get("sha256")
    if not sha:
        return None, "the record names no artifact sha256"
    if not recorded:
        return None, str(
            artifact.get("not_stored")
            or "the record keeps no artifact path (a baseline saved without its artifacts)"
        )
    path = Path(recorded)
    root = Path(root)
    candidates = [path] if path.is_absolute() else [root / path, path]
    candidates += [root.joinpath(*path.parts[i:]) for i in range(1, len(path.parts))]
    changed = None
    for candidate in dict.fromkeys(candidates):
        if not candidate.exists():
            continue
        now = artifact_info(candidate)["sha256"]
        if now == sha:
            return candidate, ""
        changed = changed or (candidate, now)
    if changed is not None:
        return None, (
            f"artifact {changed[0]} changed since it was recorded (sha256 {changed[1][:12]}…, "
            f"recorded {sha[:12]}…)"
        )
    return None, f"artifact {recorded} no longer exists"


def write_atomic(path: Path, text: str) -> Path:
    """Write text whole or not at all: a temporary file beside path, then a rename. A reader
    sees the old file or the new, after a power cut too (see replace_durably)."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        tmp.write_text(text, encoding="utf-8")
        replace_durably(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def temporary_path(path: Path) -> Path:
    """A temporary name beside path, unique per process and per call, so that concurrent
    writers (processes or threads) never share one."""
    return path.with_name(f"{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def replace_durably(tmp: Path, path: Path) -> None:
    """Rename a written temporary file onto path so that a crash leaves the old file or the
    whole new one: the data is fsynced before the rename (else the rename can reach the disk
    first, and path be empty), and the folder after it (else the rename can be lost)."""
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_result(path: Path, result: dict[str, Any]) -> None:
    """Write a worker's result atomically: the sweep sees all of it or nothing."""
    write_atomic(path, json.dumps(result, default=plain))


def plain(obj: Any) -> Any:
    """A JSON-able form of numpy scalars and arrays, pydantic models and plain objects."""
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "__dict__"):
        return {k: v for k, v in vars(obj).items() if not k.startswith("_")}
    return str(obj)
