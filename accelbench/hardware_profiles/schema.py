"""The hardware profile schema and its one-line validation messages."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PositiveFloat,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from accelbench.errors import UsageError
from accelbench.runtimes.registry import RESERVED_NAMES, RUNTIMES, names_text

Kind = Literal["cpu", "gpu", "tpu", "edge-cpu", "edge-tpu", "npu"]
# Precisions with a peak-compute figure (TFLOP/s for floats, TOP/s for int8).
PeakPrecision = Literal["fp32", "fp16", "bf16", "int8"]
# Precisions a device can run; int16x8 (int16 activations, int8 weights) has no peak of its own.
Precision = Literal["fp32", "fp16", "bf16", "int8", "int16x8"]


def profile_runtimes() -> tuple[str, ...]:
    """What a profile's ``runtimes`` may list: the registered runtimes, and "remote"."""
    return (*RUNTIMES, *RESERVED_NAMES)


def _known_runtime(value: Any) -> str:
    # Read at validation time, so that a runtime registered after import is accepted; the error
    # is the one a Literal of these names gives, so that _describe words it the same.
    names = profile_runtimes()
    if value not in names:
        expected = names_text(tuple(map(repr, names)))
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": expected}
        )
    return value


Runtime = Annotated[str, PlainValidator(_known_runtime)]
Execution = Literal["local", "emulated", "projected", "remote"]

FLOAT_PRECISIONS = ("fp32", "fp16", "bf16")
SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
HOST_NAME = "host"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where one published figure comes from."""

    figure: str = Field(min_length=1)
    value: str | float | int
    url_or_citation: str = Field(min_length=1)


class Price(_Strict):
    """What the device costs, with where and when the figure was read (see pricing.py): a
    cloud device's on-demand price per hour, or a bought one's purchase price, spread over
    ``lifetime_years`` of continuous use; or, where no figure is known, why not."""

    usd_per_hour: float | None = Field(default=None, ge=0)
    purchase_usd: float | None = Field(default=None, ge=0)
    lifetime_years: float | None = Field(default=None, gt=0)
    source: str = ""
    date: dt.date | None = None
    unknown: str = ""

    @model_validator(mode="after")
    def _one_figure_with_its_source(self) -> Price:
        figures = [
            name for name in ("usd_per_hour", "purchase_usd") if getattr(self, name) is not None
        ]
        if len(figures) > 1:
            raise ValueError("give usd_per_hour (cloud) or purchase_usd (bought), not both")
        if not figures and not self.unknown:
            raise ValueError(
                "give usd_per_hour (cloud) or purchase_usd (bought) with source and date, or "
                "unknown: why no figure is given"
            )
        if figures and (not self.source or self.date is None):
            raise ValueError(
                f"{figures[0]} needs source (the page it was read from) and date (when it was "
                "read, YYYY-MM-DD)"
            )
        if self.lifetime_years is not None and self.purchase_usd is None:
            raise ValueError("lifetime_years spreads a purchase_usd; give one or drop it")
        return self


class Emulation(_Strict):
    """Limits applied to this host when it stands in for the device."""

    threads: int | None = Field(default=None, gt=0)
    memory_mb: int | None = Field(default=None, gt=0)


# user@host[:port], the host a name or an address ([...] around an IPv6 address with a port).
SSH_HOST_PATTERN = r"^[A-Za-z0-9._-]+@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(:[0-9]{1,5})?$"


class Remote(_Strict):
    """How accelbench reaches a real device: over SSH with the device's own Python, or as the
    Ray cluster node that serves the profile (accelbench agent start)."""

    transport: Literal["ssh", "ray"]
    host: str | None = Field(default=None, pattern=SSH_HOST_PATTERN)
    python: str | None = Field(default=None, min_length=1)
    identity_file: str | None = None
    known_hosts: str | None = None
    host_key_checking: Literal["yes", "accept-new"] = "yes"
    arch: str | None = None
    folder: str = Field(default=".accelbench", min_length=1)
    connect_timeout_s: float = Field(default=10.0, gt=0)


OpKind = Literal[
    "conv", "pointwise", "depthwise", "matmul", "pool", "avgpool", "elementwise", "relu", "other"
]
# A kind with no efficiency of its own in a profile uses its parent's, then "other"'s.
KIND_PARENT = {"pointwise": "conv", "avgpool": "pool", "elementwise": "other", "relu": "other"}
OpPrecision = Literal["int8", "fp32", "fp16"]


class ProjectionParameters(_Strict):
    """The per-op device model's parameters (hardware_profiles/projection.py), each sourced."""

    runtime: str = ""
    # Fraction of the peak each op kind reaches at each precision, relative to the peak used.
    efficiency: dict[OpKind, dict[OpPrecision, PositiveFloat]] = Field(default_factory=dict)
    # Parameter count at which an op kind reaches half its efficiency (none: no effect).
    weights_half: dict[OpKind, dict[OpPrecision, PositiveFloat]] = Field(default_factory=dict)
    per_op_overhead_us: float = Field(default=0.0, ge=0)
    per_inference_overhead_us: float = Field(default=0.0, ge=0)
    device_bandwidth_gbps: float | None = Field(default=None, gt=0)
    # Rate at which an op's weights arrive from beyond the cache, once per call (CPUs).
    weight_stream_gbps: float | None = Field(default=None, gt=0)
    # A core's own cache (CPUs): an op's weights up to this size arrive at weight_stream_gbps
    # once per call; beyond it they stream on every pass, which the op's efficiency holds.
    cache_mb: float | None = Field(default=None, gt=0)
    # Rate of an op's bytes beyond cache_mb (the weights and activations that do not fit in it).
    spill_bandwidth_gbps: float | None = Field(default=None, gt=0)
    link_bandwidth_gbps: float | None = Field(default=None, gt=0)
    link_latency_us: float = Field(default=0.0, ge=0)
    on_chip_parameter_mb: float | None = Field(default=None, ge=0)
    fill_output_elements: float | None = Field(default=None, gt=0)
    fuse_elementwise: bool = False
    stream_overlaps_compute: bool = False
    runtime_call_overhead_us: dict[str, float] = Field(default_factory=dict)
    sources: dict[str, str] = Field(default_factory=dict)

    def efficiency_for(self, kind: str, precision: str) -> float:
        """The efficiency of ``kind`` ops at ``precision``: its own, else its parent kind's, else
        "other"'s, else 1."""
        for name in dict.fromkeys((kind, KIND_PARENT.get(kind, kind), "other")):
            by_precision = self.efficiency.get(name)  # type: ignore[call-overload]
            if by_precision:
                if precision in by_precision:
                    return by_precision[precision]
                return next(iter(by_precision.values()))
        return 1.0

    def shape_factor(self, kind: str, precision: str, weights: float) -> float:
        """The share of its efficiency an op with ``weights`` parameters reaches: W / (W + W½)
        where ``weights_half`` gives W½ for the kind (else its parent) and precision, else 1."""
        half = None
        for name in (kind, KIND_PARENT.get(kind, kind)):
            half = half or self.weights_half.get(name, {}).get(precision)  # type: ignore[call-overload]
        if half is None or not weights:
            return 1.0
        return weights / (weights + half)

    def set_parameters(self) -> list[str]:
        """The parameters this block sets, each of which ``sources`` must name."""
        fields = type(self).model_fields
        return [
            name
            for name, info in fields.items()
            if name not in ("runtime", "sources")
            and getattr(self, name) != info.get_default(call_default_factory=True)
        ]

    def unsourced(self) -> list[str]:
        return [name for name in self.set_parameters() if not self.sources.get(name)]


class HardwareProfile(_Strict):
    """One device: its published peak figures, what it runs, and how accelbench reaches it."""

    name: str = Field(pattern=SLUG_PATTERN)
    kind: Kind
    vendor: str = Field(min_length=1)
    model: str = Field(min_length=1)
    # CPU cores for CPUs, CUDA cores for GPUs, TensorCores for TPUs, 1 for an Edge TPU.
    cores: int = Field(gt=0)
    memory_gb: float = Field(gt=0)
    peak_compute: dict[PeakPrecision, PositiveFloat] = Field(default_factory=dict)
    memory_bandwidth_gbps: float | None = Field(default=None, gt=0)
    tdp_watts: float | None = Field(default=None, gt=0)
    price_per_hour_usd: float | None = Field(default=None, ge=0)
    price: Price | None = None
    supported_precisions: list[Precision] = Field(min_length=1)
    runtimes: list[Runtime] = Field(default_factory=list)
    delegate: str | None = None
    execution: Execution
    emulation: Emulation | None = None
    remote: Remote | None = None
    sources: list[Source] = Field(default_factory=list)
    projection: ProjectionParameters | None = None
    notes: str = ""

    def peak_ops_per_s(self, precision: str) -> float | None:
        """Peak operations per second at ``precision``, or None where no figure is published."""
        tera = self.peak_compute.get(precision)  # type: ignore[call-overload]
        return None if tera is None else tera * 1e12

    def published_figures(self) -> list[str]:
        """The figure names this profile states, each of which a source must back."""
        figures = [f"peak_compute.{p}" for p in self.peak_compute]
        for field in ("memory_bandwidth_gbps", "tdp_watts", "price_per_hour_usd", "memory_gb"):
            if getattr(self, field) is not None:
                figures.append(field)
        return figures

    def unsourced_figures(self) -> list[str]:
        """Published figures that no entry of ``sources`` names."""
        cited = {source.figure for source in self.sources}
        return [figure for figure in self.published_figures() if figure not in cited]


# What each field accepts, in words, for the one-line error message.
_ACCEPTS: dict[str, str] = {
    "name": "a slug of lowercase letters, digits and hyphens, such as 'my-board'",
    "kind": "one of " + ", ".join(get_args(Kind)),
    "vendor": "a non-empty string",
    "model": "a non-empty string",
    "cores": "a positive integer",
    "memory_gb": "a positive number of gigabytes",
    "peak_compute": "a mapping from precision ("
    + ", ".join(get_args(PeakPrecision))
    + ") to a positive TFLOP/s or TOP/s figure",
    "memory_bandwidth_gbps": "a positive number of GB/s",
    "tdp_watts": "a positive number of watts",
    "price_per_hour_usd": "a number of US dollars per hour, 0 or more",
    "price": "a mapping with usd_per_hour (cloud) or purchase_usd and lifetime_years (bought), "
    "source and date; or unknown: the reason (docs/profiles.md, Price)",
    "usd_per_hour": "a number of US dollars per hour, 0 or more",
    "purchase_usd": "a number of US dollars, 0 or more",
    "lifetime_years": "a positive number of years",
    "source": "the URL of the page the price was read from",
    "date": "the date the price was read, as YYYY-MM-DD",
    "unknown": "why no price is given",
    "supported_precisions": "a non-empty list drawn from " + ", ".join(get_args(Precision)),
    "runtimes": "a list of runtime names",  # _describe names them: the ones registered then
    "delegate": "a delegate library name such as libedgetpu.so.1",
    "execution": "one of " + ", ".join(get_args(Execution)),
    "emulation": "a mapping with threads and/or memory_mb",
    "threads": "a positive integer",
    "memory_mb": "a positive integer number of megabytes",
    "sources": "a list of mappings with figure, value and url_or_citation",
    "figure": "the name of the figure it backs, such as peak_compute.fp16",
    "value": "the figure as published, a number or a string",
    "url_or_citation": "a URL or a citation of the datasheet",
    "notes": "a string",
    "projection": "a mapping of per-op model parameters (docs/profiles.md, Projection)",
    "efficiency": "a mapping from op kind (conv, pointwise, depthwise, matmul, pool, avgpool, "
    "elementwise, relu, other) to a mapping from precision (int8, fp32, fp16) to a positive "
    "fraction of the peak",
    "weights_half": "a mapping from op kind to a mapping from precision (int8, fp32, fp16) to a "
    "positive parameter count",
    "per_op_overhead_us": "a number of microseconds, 0 or more",
    "per_inference_overhead_us": "a number of microseconds, 0 or more",
    "device_bandwidth_gbps": "a positive number of GB/s",
    "weight_stream_gbps": "a positive number of GB/s",
    "cache_mb": "a positive number of megabytes",
    "spill_bandwidth_gbps": "a positive number of GB/s",
    "link_bandwidth_gbps": "a positive number of GB/s",
    "link_latency_us": "a number of microseconds, 0 or more",
    "on_chip_parameter_mb": "a number of megabytes, 0 or more",
    "fill_output_elements": "a positive number of output elements",
    "fuse_elementwise": "true or false",
    "stream_overlaps_compute": "true or false",
    "runtime_call_overhead_us": "a mapping from runtime name to microseconds per call",
    "remote": "a mapping with transport, host, python and optionally identity_file, "
    "known_hosts, host_key_checking, arch, folder, connect_timeout_s (docs/real-devices.md)",
    "transport": "ssh or ray",
    "host": "user@host or user@host:port, such as pi@192.168.1.20:22",
    "python": "the device's Python, such as /home/pi/venv/bin/python",
    "identity_file": "a path to an SSH private key, such as ~/.ssh/id_ed25519",
    "known_hosts": "a path to an OpenSSH known_hosts file",
    "host_key_checking": "yes or accept-new",
    "arch": "the device's machine architecture as uname -m says it, such as aarch64",
    "connect_timeout_s": "a positive number of seconds",
    "folder": "the device's folder for accelbench's files, relative to the home folder or absolute",
}

_MODELS_BY_FIELD: dict[str, type[BaseModel]] = {
    "emulation": Emulation,
    "sources": Source,
    "projection": ProjectionParameters,
    "price": Price,
    "remote": Remote,
}


def profile_from_mapping(data: Any, origin: str) -> HardwareProfile:
    """Validate parsed YAML into a profile, or raise UsageError naming ``origin`` and the field."""
    if not isinstance(data, dict):
        raise UsageError(
            f"profile {origin} holds a {type(data).__name__}, not a mapping of fields; "
            "write it as 'name: ...', 'kind: ...' and so on, one field a line"
        )
    try:
        profile = HardwareProfile.model_validate(data)
    except ValidationError as exc:
        raise UsageError(_one_line(exc, origin)) from None
    if profile.name == HOST_NAME:
        raise UsageError(
            f"profile {origin}: field 'name' is 'host', which is reserved for the detected "
            "machine; use another name"
        )
    if profile.price is not None and profile.price_per_hour_usd is not None:
        raise UsageError(
            f"profile {origin}: fields 'price' and 'price_per_hour_usd' both price the device; "
            "keep 'price' (with its source and date) and drop 'price_per_hour_usd'"
        )
    if profile.execution == "remote" and profile.remote is None:
        raise UsageError(
            f"profile {origin}: execution is 'remote' but there is no 'remote:' block; add one "
            "with transport: ssh, host: user@host[:port] and python: the device's Python"
        )
    if profile.remote is not None and profile.remote.transport == "ssh":
        for field in ("host", "python"):
            if getattr(profile.remote, field) is None:
                raise UsageError(
                    f"profile {origin}: field 'remote.{field}' is missing; transport ssh needs "
                    f"it: add it as {_ACCEPTS[field]}"
                )
    if profile.remote is not None and profile.execution != "remote":
        raise UsageError(
            f"profile {origin}: a 'remote:' block needs execution: remote (it is "
            f"{profile.execution!r}); set execution: remote or remove the block"
        )
    if profile.projection is not None and profile.projection.unsourced():
        missing = ", ".join(profile.projection.unsourced())
        raise UsageError(
            f"profile {origin}: projection parameter(s) {missing} have no source; add "
            "projection.sources.<name>: a published figure with its URL, or 'fitted to: <rows>'"
        )
    return profile


def _one_line(exc: ValidationError, origin: str) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"profile {origin}: {_describe(first)}{more}"


def _describe(error: dict[str, Any]) -> str:
    loc = list(error["loc"])
    kind = error["type"]
    is_key = bool(loc) and loc[-1] == "[key]"
    if is_key:
        loc = loc[:-2]  # drop the key and its marker: the mapping itself is the field
    path = _path(loc)
    field = next((part for part in reversed(loc) if part in _ACCEPTS), "")
    accepts = _ACCEPTS.get(field, error["msg"].lower())
    if field == "runtimes":
        accepts = "a list drawn from " + ", ".join(profile_runtimes())
    if field == "peak_compute" and len(loc) > 1:
        accepts = "a positive number of TFLOP/s (TOP/s for int8)"
    if kind == "literal_error":
        accepts = "one of " + str(error["ctx"]["expected"]).replace("'", "")
    if kind == "extra_forbidden":
        parent = loc[0] if len(loc) > 1 else None
        allowed = _MODELS_BY_FIELD.get(parent, HardwareProfile).model_fields if parent else None
        allowed = allowed or HardwareProfile.model_fields
        return f"field '{path}' is not a known field; use only {', '.join(allowed)}"
    if kind == "missing":
        return f"field '{path}' is missing; add it as {accepts}"
    if kind == "value_error":
        # A model's own check (Price): its message names the problem and the fix.
        return f"field '{path}': {error['msg'].removeprefix('Value error, ')}"
    if is_key:
        # A literal error on a mapping key: the key itself is wrong, not its value.
        return f"field '{path}' has key {error['input']!r}; use {accepts}"
    return f"field '{path}' is {_show(error.get('input'))}; use {accepts}"


def _path(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("str", "float", "int") or "[" in str(part):
            continue  # pydantic's union-branch labels, not part of the user's path
        else:
            text += f".{part}" if text else str(part)
    return text


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


ACCELERATOR_KINDS = ("gpu", "tpu")
# Words a profile name carries that no device name repeats.
_NAME_NOISE = {"nvidia", "tpu", "google"}
# Device names spell some chips differently from the profile names.
_DEVICE_ALIASES = (("v5 lite", "v5e"), ("v5litepod", "v5e"), ("v5lite", "v5e"))
# Boards of one chip differ in clocks, power and memory (an H100 PCIe has about three quarters
# of the SXM5's Tensor Core peak and 2.0 of its 3.35 TB/s), so a device is a profile's only when
# their boards agree. A name that states no board (nvidia-smi's "NVIDIA H100 80GB HBM3") agrees
# with any.
_VARIANTS = {
    "pcie": "PCIe",
    "sxm": "SXM",
    "sxm2": "SXM",
    "sxm3": "SXM",
    "sxm4": "SXM",
    "sxm5": "SXM",
    "nvl": "NVL",
}


def device_matches(profile: HardwareProfile, device_name: str) -> bool:
    """True when ``device_name`` (nvidia-smi's or JAX's ``device_kind``) is the profile's chip:
    every word of the profile's name but the vendor and board variant appears as a word of the
    device name, so nvidia-a100 matches "NVIDIA A100-SXM4-80GB" and nvidia-l4 does not match
    "NVIDIA L40S"; and the board variant (PCIe, SXM, NVL) agrees where both name one, so
    nvidia-h100, the SXM5 board, does not match "NVIDIA H100 PCIe" (see `variant_mismatch`)."""
    if not _same_family(profile, device_name):
        return False
    mine, theirs = profile_variant(profile), board_variant(device_name)
    return mine is None or theirs is None or mine == theirs


def variant_mismatch(profile: HardwareProfile, device_name: str) -> str | None:
    """Why a device of the profile's chip is still not the profile's device (another board
    variant, with other peaks), or None when it matches or is another chip."""
    if device_matches(profile, device_name) or not _same_family(profile, device_name):
        return None
    mine, theirs = profile_variant(profile), board_variant(device_name)
    return (
        f"{device_name!r} is the {theirs} board of {profile.name}'s chip, but {profile.name}'s "
        f"peaks and bandwidth are the {mine} board's ({profile.model}), so it is not matched; "
        f"write a profile for the {theirs} board (start from 'accelbench profiles show "
        f"{profile.name}')"
    )


def board_variant(name: str) -> str | None:
    """The board variant a device or profile name states (PCIe, SXM, NVL), or None."""
    found = {_VARIANTS[w] for w in _words(name) if w in _VARIANTS}
    return found.pop() if len(found) == 1 else None


def profile_variant(profile: HardwareProfile) -> str | None:
    """The board variant a profile describes: from its name, else from its ``model`` text."""
    return board_variant(profile.name) or board_variant(profile.model)


def _same_family(profile: HardwareProfile, device_name: str) -> bool:
    if profile.kind not in ACCELERATOR_KINDS:
        return False
    device = device_name.lower()
    for spelling, canonical in _DEVICE_ALIASES:
        device = device.replace(spelling, canonical)
    words = _words(device)
    wanted = [w for w in profile.name.split("-") if w not in _NAME_NOISE and w not in _VARIANTS]
    return bool(wanted) and all(w in words for w in wanted)


def _words(text: str) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", text.lower()))
