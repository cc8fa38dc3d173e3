"""Suites and cells: what to run (a suite YAML or CLI flags), expanded into one cell per point."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from accelbench.benchmarks.scenarios import SCENARIOS, selectable
from accelbench.errors import UsageError
from accelbench.runtimes.registry import RUNTIMES

# A model's optimizations timed against its fp32 artifact in one worker, pair by pair: added
# per model, profile and thread count wherever single-stream runs there (see _paired_cells).
PAIRED_SCENARIO = "paired"
PAIRED_BASE = "fp32"
PRESETS = ("quick", "standard", "mlperf")
ACCELERATOR_KINDS = ("gpu", "tpu")


KERAS_SUFFIXES = (".keras", ".h5")


class ModelEntry(BaseModel):
    """One model of a suite: a reference model by name, or an artifact or Keras file by path.

    A reference model is trained and made into every optimization of the suite. A Keras file
    with ``data`` (.npz) is optimized the same way; any other artifact is measured as given.
    """

    model_config = ConfigDict(extra="forbid")
    path: str | None = None
    name: str | None = None
    data: str | None = Field(default=None, description="training/evaluation data")
    label: str | None = Field(
        default=None, description="label column (CSV, Parquet) or key (TFRecord) of data"
    )
    optimization: str | None = None
    inputs: str | None = Field(default=None, description=".npy/.npz file of real inputs")

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str | None) -> str | None:
        if v is not None and (not v or any(c in v for c in "/\\ .")):
            raise ValueError(f"model name {v!r} must be a plain name without '/', '.' or spaces")
        return v

    @property
    def kind(self) -> str:
        """'reference' (trained here), 'keras' (optimized here) or 'artifact' (as given)."""
        if self.path is None:
            return "reference"
        if self.data and (Path(self.path).suffix in KERAS_SUFFIXES or Path(self.path).is_dir()):
            return "keras"
        return "artifact"

    @property
    def display_name(self) -> str:
        return self.name or (Path(self.path).stem if self.path else "model")


class ProfileEntry(BaseModel):
    """A profile with thread counts of its own, overriding the suite's ``threads``."""

    model_config = ConfigDict(extra="forbid")
    name: str
    threads: list[int]

    @field_validator("threads")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(t < 1 for t in v):
            raise ValueError("threads must be positive integers, for example [1, 2]")
        return v


class Suite(BaseModel):
    """A suite file: the matrix of models x profiles x threads x scenarios, and how to measure.

    A scenario with options (benchmarks/scenarios.py) reads them from the field named by its
    ``options_key``: the built-in ones are fields below, a registered one's is an extra field.
    """

    # Extra fields are the option mappings of registered scenarios, and nothing else (below).
    model_config = ConfigDict(extra="allow")
    __pydantic_extra__: dict[str, dict[str, Any]]
    name: str = "suite"
    models: list[ModelEntry]
    profiles: list[str | ProfileEntry] = ["host"]
    threads: list[int] | None = None
    scenarios: list[str] = ["single-stream"]
    preset: str = "quick"
    runtime: str | None = None
    xnnpack: bool = True
    timeout_s: float = 600.0
    batch_size: int | None = None
    seed: int = 0
    # Every worker that loads a model runs sandboxed (runner/sandbox.py) unless this is false;
    # trust_model runs models whose files name file, network or process operations.
    sandbox: bool = True
    trust_model: bool = False
    optimizations: list[str] = ["fp32"]
    epochs: int | None = None
    fine_tune_epochs: int = 2
    prepare_timeout_s: float = 1800.0
    # The built-in module scenarios' options (a test holds them to the scenario table).
    input_pipeline: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    serving: dict[str, Any] = Field(default_factory=dict)
    paired: dict[str, Any] | bool = Field(default_factory=dict, validate_default=True)

    @field_validator("paired", mode="before")
    @classmethod
    def _paired_options(cls, v: Any) -> dict[str, Any] | bool:
        from accelbench.benchmarks.paired import check_suite_options

        try:
            return check_suite_options(v)
        except UsageError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("optimizations")
    @classmethod
    def _known_optimizations(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("list at least one optimization, for example [fp32, int8]")
        from accelbench.optimizers import parse_optimization

        for name in v:
            parse_optimization(name)  # a bad name raises the UsageError that explains it
        return v

    @field_validator("epochs", "fine_tune_epochs")
    @classmethod
    def _positive_epochs(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("epochs must be a positive integer")
        return v

    @field_validator("models")
    @classmethod
    def _some_models(cls, v: list[ModelEntry]) -> list[ModelEntry]:
        if not v:
            raise ValueError("list at least one model")
        return v

    @field_validator("profiles")
    @classmethod
    def _some_profiles(cls, v: list[str | ProfileEntry]) -> list[str | ProfileEntry]:
        if not v:
            raise ValueError("list at least one profile, for example [host]")
        return v

    @field_validator("threads", mode="before")
    @classmethod
    def _all_cores(cls, v: Any) -> Any:
        # "all" is this host's core count, so one suite file sweeps 1 and all cores anywhere.
        if isinstance(v, list):
            return list(dict.fromkeys(host_cores() if t == "all" else t for t in v))
        return v

    @field_validator("threads")
    @classmethod
    def _positive_threads(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or any(t < 1 for t in v)):
            raise ValueError("threads must be positive integers or all, for example [1, all]")
        return v

    @field_validator("scenarios")
    @classmethod
    def _known_scenarios(cls, v: list[str]) -> list[str]:
        names = selectable()
        bad = [s for s in v if s not in names]
        if bad or not v:
            name = bad[0] if bad else "(none)"
            raise ValueError(_unknown("scenario", name, names, f"use {_one_of(names)}"))
        return v

    @model_validator(mode="after")
    def _extra_fields_are_scenario_options(self) -> Suite:
        fields = suite_fields()
        for key in self.model_extra or {}:
            if key not in fields:
                raise ValueError(
                    _unknown("field", key, fields, f"the fields are {', '.join(fields)}")
                )
        return self

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        if v not in PRESETS:
            raise ValueError(_unknown("preset", v, PRESETS, f"use {_one_of(PRESETS)}"))
        return v

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, v: str | None) -> str | None:
        if v is not None and v not in RUNTIMES:
            names = tuple(RUNTIMES)
            raise ValueError(_unknown("runtime", v, names, f"use {_one_of(names)}"))
        return v

    @field_validator("timeout_s")
    @classmethod
    def _positive_timeout(cls, v: float) -> float:
        if not v > 0:  # NaN included
            raise ValueError("timeout_s must be a positive number of seconds")
        return v

    @field_validator("batch_size")
    @classmethod
    def _positive_batch_size(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError("batch_size must be a positive integer, for example 64")
        return v


def _one_of(names: tuple[str, ...]) -> str:
    return "one of " + ", ".join(names)


def _nearest(word: object, choices: Any) -> str:
    """'; did you mean 'x'?' for the closest of ``choices`` to a misspelt word, else ''."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _unknown(what: str, word: object, choices: Any, valid: str) -> str:
    """'unknown field 'x'; did you mean 'y'? the fields are ...': one sentence."""
    nearest = _nearest(word, choices)
    return f"unknown {what} {str(word)!r}{nearest}{' ' if nearest else '; '}{valid}"


def suite_fields() -> tuple[str, ...]:
    """A suite's field names: the Suite model's, then the option fields of registered
    scenarios that are not among them."""
    keys = [s.options_key for s in SCENARIOS.values() if s.options is not None]
    return tuple(dict.fromkeys([*Suite.model_fields, *keys]))


def _option_names() -> dict[str, Callable[[], Any]]:
    """The option names of each option mapping of a suite, by its field; read from the options
    model that checks them, so that a new option needs no second list here."""
    names: dict[str, Callable[[], Any]] = {
        s.options_key: s.option_names for s in SCENARIOS.values() if s.options is not None
    }
    names["paired"] = lambda: ("pairs", "rounds")
    return names


def scenario_options(suite: Suite, scenario: str) -> dict[str, Any]:
    """The suite's option mapping of a scenario ({} for a scenario without options)."""
    info = SCENARIOS[scenario]
    if info.options is None:
        return {}
    return dict(getattr(suite, info.options_key, None) or {})


# What a suite's author may call an optimization that has another name here.
OPTIMIZATION_ALIASES = {"none": "fp32"}
# What pydantic's type error codes ask for, in accelbench's words.
_EXPECTED = {
    "string": "text",
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "list": "a list",
    "dict": "a mapping",
    "model": "a mapping",
    "model_attributes": "a mapping",
}


def suite_from_mapping(data: Any, source: str) -> Suite:
    """Validate a suite mapping; a problem becomes one UsageError line naming the file, the
    field's path (``models[1].data``) and what it accepts.

    It takes a suite as people write one: a model as a plain name or path, ``none`` for fp32,
    and it answers a misspelt field with the nearest valid one.
    """
    if not isinstance(data, dict):
        raise UsageError(f"{source}: a suite must be a YAML mapping with at least 'models'")
    data = _as_written(data, source)
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        raise UsageError(f"{source}: {_explain(exc.errors(include_url=False))}") from None
    for i, entry in enumerate(suite.models):
        if entry.path is None and entry.name is None:
            raise UsageError(
                f"{source}: field 'models[{i}]' has neither 'path' nor 'name'; give a model "
                "file's path or a reference model's name (see accelbench models list)"
            )
    batched = [name for name, scenario in SCENARIOS.items() if scenario.batched]
    if suite.batch_size is not None and not set(suite.scenarios) & set(batched):
        raise UsageError(
            f"{source}: field 'batch_size': applies to the {' and '.join(batched)} scenarios "
            f"only, and the suite has {', '.join(suite.scenarios)}; add one of them or drop "
            "batch_size"
        )
    for name in suite.scenarios:
        scenario = SCENARIOS[name]
        if scenario.options is not None:
            key = scenario.options_key
            try:
                checked = scenario.check_options(getattr(suite, key, None))
            except UsageError as exc:
                raise UsageError(f"{source}: field '{key}': {exc}") from None
            setattr(suite, key, checked)
    return suite


def _as_written(data: dict[str, Any], source: str) -> dict[str, Any]:
    """The suite mapping with its newcomer forms made canonical, and every unknown field refused
    (with the nearest valid name) before pydantic sees it."""
    data = dict(data)
    _known_fields(data, suite_fields(), "", source)
    models = data.get("models")
    if isinstance(models, list):
        # A bare string is a reference model's name, or a file's path when it looks like one.
        data["models"] = [
            ({"path": m} if "/" in m or Path(m).suffix else {"name": m})
            if isinstance(m, str)
            else m
            for m in models
        ]
        for i, entry in enumerate(data["models"]):
            if isinstance(entry, dict):
                _known_fields(entry, ModelEntry.model_fields, f"models[{i}]", source)
    profiles = data.get("profiles")
    if isinstance(profiles, list):
        for i, entry in enumerate(profiles):
            if isinstance(entry, dict):
                _known_fields(entry, ProfileEntry.model_fields, f"profiles[{i}]", source)
    for key, names in _option_names().items():
        if isinstance(data.get(key), dict):
            _known_fields(data[key], names(), key, source, word="option")
    optimizations = data.get("optimizations")
    if isinstance(optimizations, list):
        data["optimizations"] = [
            _optimization(name, f"optimizations[{i}]", source)
            for i, name in enumerate(optimizations)
        ]
    return data


def _known_fields(
    mapping: dict[str, Any], fields: Any, where: str, source: str, word: str = "field"
) -> None:
    names = [str(f) for f in fields]
    for key in mapping:
        if key not in names:
            at = f"field '{where}': " if where else ""
            valid = f"the {word}s{' of ' + where if where else ''} are {', '.join(names)}"
            raise UsageError(f"{source}: {at}{_unknown(word, key, names, valid)}")


def _optimization(name: Any, where: str, source: str) -> Any:
    """An optimization name as recorded (an alias resolved); UsageError with the nearest name."""
    if not isinstance(name, str):
        return name  # pydantic's type check names it
    name = OPTIMIZATION_ALIASES.get(name.strip().lower(), name)
    from accelbench.optimizers import parse_optimization

    try:
        parse_optimization(name)
    except UsageError as exc:
        from accelbench.optimizers.converters import CONVERTERS
        from accelbench.runner.suites import builtin_suite

        known = dict.fromkeys([*CONVERTERS, *builtin_suite("full", 1)["optimizations"]])
        known.update(dict.fromkeys(OPTIMIZATION_ALIASES))
        raise UsageError(f"{source}: field '{where}': {exc}{_nearest(name, known)}") from None
    return name


def _explain(errors: list[dict[str, Any]]) -> str:
    """pydantic's errors as one sentence in accelbench's words: the deepest problem, since a
    union (a profile is a name or a mapping) reports every branch it tried."""
    errors = sorted(errors, key=lambda e: -len([p for p in e["loc"] if not _is_branch(p)]))
    first = errors[0]
    path = _field_path(first["loc"])
    kind = first["type"]
    got = _show(first.get("input"))
    if kind == "missing":
        return f"field '{path}' is required; add it"
    if kind == "value_error":
        return f"field '{path}': {first['msg'].removeprefix('Value error, ')}"
    same = [e for e in errors if _field_path(e["loc"]) == path]
    wanted = [_EXPECTED.get(e["type"].rsplit("_", 1)[0]) for e in same]
    if all(wanted):
        return f"field '{path}' must be {' or '.join(dict.fromkeys(wanted))}, not {got}"
    if kind == "literal_error":
        return f"field '{path}' is {got}; use one of {first['ctx']['expected']}"
    # Any other constraint: pydantic's sentence, reworded.
    msg = first["msg"].replace("Input should be", "must be").split(",")[0]
    return f"field '{path}' {msg}, not {got}"


def _field_path(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif not _is_branch(part):
            text += f".{part}" if text else str(part)
    return text or "(top level)"


def _is_branch(part: Any) -> bool:
    """pydantic's name of a union branch in an error's location, not part of the user's path."""
    branches = ("str", "int", "float", "bool", "ProfileEntry", "ModelEntry")
    return isinstance(part, str) and (part in branches or "[" in part)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def load_suite(path: str | Path) -> Suite:
    """Read and validate a suite YAML file; model paths are resolved against the file's folder."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"suite file {p} does not exist; pass the path of a suite YAML file")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"suite file {p} is not UTF-8 text (byte {exc.start} is not); pass a suite YAML file"
        ) from None
    except OSError as exc:
        raise UsageError(
            f"suite file {p} cannot be read ({exc.strerror or exc}); check it"
        ) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" at line {line + 1}" if line is not None else ""
        raise UsageError(f"suite file {p} is not valid YAML{at}; fix the syntax") from None
    suite = suite_from_mapping(data, str(p))
    for entry in suite.models:
        for attr in ("path", "inputs", "data"):
            value = getattr(entry, attr)
            if value and not Path(value).is_absolute():
                setattr(entry, attr, str((p.parent / value).resolve()))
    return suite


@dataclass
class Cell:
    """One point of the matrix: a model artifact, a profile, a thread count and a scenario."""

    model: str
    model_path: str
    optimization: str
    profile: str
    profile_data: dict[str, Any]
    execution: str
    threads: int
    scenario: str
    preset: str
    runtime: str | None
    xnnpack: bool
    inputs_path: str | None
    seed: int
    timeout_s: float
    settings: dict[str, Any] = field(default_factory=dict)
    prepared_by: str | None = None  # the preparation job that makes this cell's artifact
    batch_size: int | None = None  # samples per runtime call (offline/server); None: the default
    sandbox: bool = True  # run the worker in the sandbox (not part of the cell's identity)
    trust_model: bool = False  # load the model even if model_inspect flags it

    @property
    def on_accelerator(self) -> bool:
        """True when the cell runs on an attached GPU/TPU (through JAX, see `on_accelerator`)."""
        return on_accelerator(self.profile_data.get("kind"), self.execution)

    @property
    def logical_key(self) -> dict[str, Any]:
        """What identifies the cell across runs: names and settings, never the artifact's hash."""
        key = {
            "model": self.model,
            "optimization": self.optimization,
            "profile": self.profile,
            "threads": self.threads,
            "scenario": self.scenario,
            "preset": self.preset,
            "runtime": self.runtime or "auto",
            "xnnpack": self.xnnpack,
        }
        scenario = SCENARIOS.get(self.scenario)
        if scenario is not None and scenario.options is not None:
            key["options"] = self.settings.get(scenario.options_key)
        if "paired_options" in self.settings:
            key["options"] = self.settings["paired_options"]
        if self.batch_size is not None:
            # Only when set, so that the cells of runs without a batch size keep their ids.
            key["batch_size"] = self.batch_size
        return key

    @property
    def cell_id(self) -> str:
        k = self.logical_key
        digest = hashlib.sha256(json.dumps(k, sort_keys=True).encode()).hexdigest()[:8]
        parts = (k["model"], k["optimization"], k["profile"], f"t{k['threads']}", k["scenario"])
        return ".".join((*parts, digest))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cell_id": self.cell_id}


def host_cores() -> int:
    return len(os.sched_getaffinity(0))


def on_accelerator(profile_kind: str | None, execution: str) -> bool:
    """True for a cell on an attached GPU/TPU (a gpu/tpu profile that runs ``local``): only
    such a cell runs JAX on the accelerator; every other cell runs JAX on the CPU."""
    return execution == "local" and profile_kind in ACCELERATOR_KINDS


@dataclass
class PrepareJob:
    """Train or load one model and make its optimized artifacts (one worker process)."""

    model: str
    kind: str  # reference | keras
    path: str | None
    data: str | None
    optimizations: list[str]
    seed: int
    epochs: int | None
    fine_tune_epochs: int
    timeout_s: float
    sandbox: bool = True
    trust_model: bool = False
    label: str | None = None  # the label column or key of a user's data file

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prepare_jobs(suite: Suite) -> list[PrepareJob]:
    # Scenarios about a model's data or its training need no optimized artifacts.
    if all(SCENARIOS[s].per_model for s in suite.scenarios):
        return []
    jobs = []
    for entry in suite.models:
        if entry.kind == "artifact":
            continue
        jobs.append(
            PrepareJob(
                model=entry.display_name,
                kind=entry.kind,
                path=entry.path,
                data=entry.data,
                label=entry.label,
                optimizations=list(suite.optimizations),
                seed=suite.seed,
                epochs=suite.epochs,
                fine_tune_epochs=suite.fine_tune_epochs,
                timeout_s=suite.prepare_timeout_s,
                sandbox=suite.sandbox,
                trust_model=suite.trust_model,
            )
        )
    return jobs


def check_entry(entry: ModelEntry, *, trust: bool = False) -> None:
    """Fail fast on a suite model whose files are missing or unusable."""
    from accelbench.runtimes.model_inspect import check_model_safety
    from accelbench.runtimes.validate import check_artifact

    if entry.data is not None and not Path(entry.data).exists():
        raise UsageError(f"data file {entry.data} does not exist; pass an existing dataset path")
    if entry.kind == "artifact":
        check_artifact(Path(entry.path), trust=trust)
    elif entry.kind == "keras":
        if not Path(entry.path).exists():
            raise UsageError(f"model file {entry.path} does not exist; pass a .keras or .h5 file")
        check_model_safety(Path(entry.path), trust=trust)


def check_suite(suite: Suite) -> None:
    """Refuse, before any folder is written, a suite whose model files are missing or unusable
    (unsafe ones unless ``trust_model``), or whose batch size a model's fixed batch dimension
    rules out. ``expand`` calls it, so every run (the CLI's and run_suite's) is checked."""
    for entry in suite.models:
        check_entry(entry, trust=suite.trust_model)
        if suite.batch_size is not None and entry.kind == "artifact":
            # Imported here: LoadGen loads with it, and only a batch size needs it.
            from accelbench.benchmarks.loadgen.sut import check_batch_size

            check_batch_size(Path(entry.path), suite.batch_size)


def expand(suite: Suite) -> list[Cell]:
    """Expand a suite into cells, local cells first so projections can use their measurements."""
    from accelbench.hardware_profiles import execution_mode, load_profile

    check_suite(suite)
    profiles = []
    for item in suite.profiles:
        name, threads = (
            (item, suite.threads) if isinstance(item, str) else (item.name, item.threads)
        )
        profiles.append((load_profile(name), threads))
    names = [e.display_name for e in suite.models]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup:
        raise UsageError(f"two models are named {dup!r}; give each a distinct 'name'")
    cells: list[Cell] = []
    for entry in suite.models:
        if entry.kind == "reference":
            from accelbench.models import get_spec

            get_spec(entry.display_name)  # an unknown name raises the UsageError listing them
        if entry.kind == "artifact":
            variants = [(entry.optimization or "none", entry.path, None)]
        else:
            variants = [(o, "", entry.display_name) for o in suite.optimizations]
        for optimization, model_path, prepared_by in variants:
            for profile, wanted_threads in profiles:
                execution = execution_mode(profile)
                # An attached GPU/TPU runs the JAX path (the model's .jaxexport), never a .tflite.
                accelerated = on_accelerator(profile.kind, execution)
                threads_list = _threads_for(profile, wanted_threads)
                scenarios = [s for s in suite.scenarios if not SCENARIOS[s].per_model]
                if execution == "projected":
                    # A projection estimates one inference on the device: it has no thread count of
                    # this host and no traffic pattern, so one single-stream cell stands for all.
                    threads_list, scenarios = [1], ["single-stream"]
                if accelerated:
                    threads_list = [1]  # host threads do not size an accelerator's work
                for threads in threads_list:
                    for scenario in scenarios:
                        cells.append(
                            _cell(
                                suite,
                                entry,
                                profile,
                                execution,
                                threads,
                                scenario,
                                model_path=model_path or "",
                                optimization=optimization,
                                runtime="jax" if accelerated else suite.runtime,
                                prepared_by=prepared_by,
                            )
                        )
        cells.extend(_model_cells(suite, entry, profiles))
        cells.extend(_paired_cells(suite, entry, profiles))
    order = {"local": 0, "remote": 1, "emulated": 2, "projected": 3}
    cells.sort(key=lambda c: order.get(c.execution, 9))
    return cells


def _cell(
    suite: Suite,
    entry: ModelEntry,
    profile: Any,
    execution: str,
    threads: int,
    scenario: str,
    *,
    model_path: str,
    optimization: str,
    runtime: str | None,
    prepared_by: str | None = None,
) -> Cell:
    return Cell(
        model=entry.display_name,
        model_path=model_path,
        optimization=optimization,
        profile=profile.name,
        profile_data=profile.model_dump(mode="json"),
        execution=execution,
        threads=threads,
        scenario=scenario,
        preset=suite.preset,
        runtime=runtime,
        xnnpack=suite.xnnpack,
        inputs_path=entry.inputs,
        seed=suite.seed,
        timeout_s=suite.timeout_s,
        settings=_scenario_settings(suite, scenario, entry),
        prepared_by=prepared_by,
        batch_size=suite.batch_size if SCENARIOS[scenario].batched else None,
        sandbox=suite.sandbox,
        trust_model=suite.trust_model,
    )


def _scenario_settings(suite: Suite, scenario: str, entry: ModelEntry) -> dict[str, Any]:
    info = SCENARIOS[scenario]
    if info.options is None:
        return {}
    label = {"data_label": entry.label} if entry.label else {}
    return {info.options_key: scenario_options(suite, scenario), "data": entry.data, **label}


def _model_cells(suite: Suite, entry: ModelEntry, profiles: list[tuple[Any, Any]]) -> list[Cell]:
    """Cells of the scenarios about a model's data or training: one per model, profile, threads.

    They run where this host runs (local or emulated); a projected device cannot train here.
    """
    from accelbench.hardware_profiles import execution_mode

    wanted = [s for s in suite.scenarios if SCENARIOS[s].per_model]
    if not wanted or (entry.kind == "artifact" and not entry.data):
        return []
    cells = []
    for profile, wanted_threads in profiles:
        execution = execution_mode(profile)
        if execution == "projected":
            continue
        for threads in _threads_for(profile, wanted_threads):
            for scenario in wanted:
                cells.append(
                    _cell(
                        suite,
                        entry,
                        profile,
                        execution,
                        threads,
                        scenario,
                        model_path=entry.path or "",
                        optimization=SCENARIOS[scenario].model_optimization,
                        runtime=suite.runtime,
                    )
                )
    return cells


def _paired_cells(suite: Suite, entry: ModelEntry, profiles: list[tuple[Any, Any]]) -> list[Cell]:
    """One paired cell per profile and thread count where a model's optimizations run in
    single-stream on this host (local or emulated): every artifact of the model loaded in one
    worker and timed pair by pair, each optimization against fp32.

    The speed-ups the report and recommend state come from these cells: separately measured
    LoadGen cells minutes apart mostly compare the machine's speed at two moments.
    """
    from accelbench.hardware_profiles import execution_mode

    others = [o for o in suite.optimizations if o != PAIRED_BASE]
    if (
        suite.paired is False
        or "single-stream" not in suite.scenarios
        or entry.kind == "artifact"
        or PAIRED_BASE not in suite.optimizations
        or not others
    ):
        return []
    options = {"base": PAIRED_BASE, "optimizations": others, **dict(suite.paired)}
    cells = []
    for profile, wanted_threads in profiles:
        execution = execution_mode(profile)
        if execution not in ("local", "emulated") or on_accelerator(profile.kind, execution):
            continue
        for threads in _threads_for(profile, wanted_threads):
            cell = _cell(
                suite,
                entry,
                profile,
                execution,
                threads,
                PAIRED_SCENARIO,
                model_path="",
                optimization=PAIRED_BASE,
                runtime=suite.runtime,
                prepared_by=entry.display_name,
            )
            cell.preset = PAIRED_SCENARIO
            cell.settings = {"paired_options": dict(options)}
            cells.append(cell)
    return cells


def attach_paired_artifacts(cell: Cell, prepared: Callable[[str], dict[str, Any]]) -> str | None:
    """Give a suite's paired cell its sides: ``prepared(optimization)`` says what preparation
    made (``status``, ``artifact.path``, ``error``). Sets ``settings.paired_sides`` (base first)
    and ``settings.paired_left_out`` (optimization: reason); returns why the cell cannot run
    (no base artifact), else None."""
    options = cell.settings["paired_options"]
    base = options["base"]
    sides, left_out = [], {}
    for name in [base, *options["optimizations"]]:
        made = prepared(name)
        if made.get("status") == "ok":
            sides.append({"optimization": name, "path": made["artifact"]["path"]})
        else:
            left_out[name] = f"no artifact: {name} failed ({made.get('error')})"
    if base in left_out:
        return f"{left_out[base]}; the paired timings need it as their base"
    cell.model_path = sides[0]["path"]
    cell.settings["paired_sides"] = sides
    cell.settings["paired_left_out"] = left_out
    return None


def _threads_for(profile: Any, requested: list[int] | None) -> list[int]:
    """Thread counts for one profile: as asked, else all host cores, else the device's own count.

    An emulated device never gets more threads than it has cores, nor more than this host has.
    """
    available = host_cores()
    if requested:
        wanted = list(requested)
    elif profile.name == "host":
        wanted = [available]
    else:
        emu = getattr(profile, "emulation", None)
        wanted = [getattr(emu, "threads", None) or profile.cores or available]
    if getattr(profile, "execution", None) == "remote":
        # The device's own cores, not this host's, bound its threads.
        return sorted({min(t, profile.cores) for t in wanted})
    if profile.name != "host":
        # Emulation pins the worker to real cores: it cannot have more than the device or this host.
        wanted = [min(t, profile.cores or t, available) for t in wanted]
    return sorted(set(wanted))
