"""The one table of scenarios: each one's name, kind, cells, options, runner and report section.

Every list of scenarios elsewhere (a suite's ``scenarios:`` and option mappings, the cells the
suite expands to, the worker's dispatch, the pool's worker sharing, the plan, the CLI's help)
reads ``SCENARIOS``. Importing this module imports no framework, no numpy and no pydantic: the
runner, the options model and the report section are named as "module:attribute" and imported
when a cell runs, a suite is read or a report is written.

A scenario outside accelbench joins the table as runtimes do (runtimes/registry.py):
``register_scenario(scenario)`` for this process only, or ``$ACCELBENCH_SCENARIOS``
("module:attribute" paths of Scenario objects, comma-separated) for every process that inherits
the environment, the runner's workers included.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from accelbench.errors import UsageError
from accelbench.plugins import Registry, import_path

if TYPE_CHECKING:
    from pydantic import BaseModel

__all__ = [
    "SCENARIOS",
    "SCENARIOS_ENV",
    "Scenario",
    "ScenarioRunner",
    "names_text",
    "register_scenario",
    "scenario_info",
    "selectable",
    "unregister_scenario",
]

SCENARIOS_ENV = "ACCELBENCH_SCENARIOS"
ScenarioRunner = Callable[[dict[str, Any], Path], dict[str, Any]]


@dataclass(frozen=True)
class Scenario:
    """One scenario: what a cell of it measures and how.

    ``kind`` is "loadgen" for the MLPerf LoadGen scenarios, which the worker runs on the cell's
    model artifact through benchmarks/loadgen, or "module" for a scenario that measures in a
    module of its own. ``runner`` measures one cell: ``runner(cell, log_dir) -> result`` (the
    worker's result mapping: status, error, metrics and the scenario's own parts), given as the
    callable or as "module:callable" to import it only when a cell runs.

    ``options`` is a pydantic model of the scenario's option mapping in a suite (under
    ``options_key``: the name with '_' for '-'), or "module:Model"; its validated dump is the
    cell's ``settings[options_key]``. ``report_section`` names the report's renderer of the
    scenario's records: a section of the report (an object with ``title`` and ``render(doc, ctx)``,
    as each module of accelbench.report.sections has), "module:attribute".
    """

    name: str
    kind: Literal["loadgen", "module"]
    runner: str | ScenarioRunner
    help: str = ""  # what a cell measures, a few words for the CLI's help and the docs
    options: str | type[BaseModel] | None = None
    report_section: str | None = None
    # One cell per model (the model's data or its training) rather than per optimization; its
    # cells record ``model_optimization`` as their optimization.
    per_model: bool = False
    model_optimization: str = "none"
    batched: bool = False  # takes the suite's batch_size (samples per runtime call)
    latency: bool = False  # an inference-latency scenario: records with LoadGen's latencies
    # A cell of its own worker process: the scenario changes its process's global state
    # (Keras, servers, data caches), so no other cell may share the process.
    own_worker: bool = True
    # Named in a suite's ``scenarios:``; a scenario the suite adds by itself (paired) is not.
    selectable: bool = True

    def __post_init__(self) -> None:
        if not self.name or any(c.isspace() or c == "," for c in self.name):
            raise ValueError(
                f"scenario name {self.name!r} must be a plain word such as 'single-stream', "
                "without spaces or commas"
            )
        if self.kind not in ("loadgen", "module"):
            raise ValueError(
                f"scenario {self.name!r} has kind {self.kind!r}; use 'loadgen' or 'module'"
            )
        for what in ("runner", "options", "report_section"):
            value = getattr(self, what)
            if isinstance(value, str) and ":" not in value:
                raise ValueError(
                    f"scenario {self.name!r} has {what} {value!r}; write it as "
                    "'module:attribute' or pass the object"
                )

    @property
    def options_key(self) -> str:
        """The suite field holding the scenario's options: 'input-pipeline' -> 'input_pipeline'."""
        return self.name.replace("-", "_")

    def run(self, cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
        """Measure one cell with the runner (importing it first when it is named by path)."""
        runner = self.runner
        if isinstance(runner, str):
            runner = import_path(runner, f"scenario {self.name!r}'s runner")
        return runner(cell, log_dir)

    def options_model(self) -> type[BaseModel] | None:
        """The options model (importing it when it is named by path); None without options."""
        if isinstance(self.options, str):
            return import_path(self.options, f"scenario {self.name!r}'s options")
        return self.options

    def check_options(self, options: Any) -> dict[str, Any]:
        """The suite's option mapping validated, every default filled in; UsageError with one
        line when an option is wrong (the model's own message, or pydantic's first)."""
        model = self.options_model()
        if model is None:
            return {}
        from pydantic import ValidationError

        try:
            return model.model_validate({} if options is None else options).model_dump()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            if first["type"] in ("model_type", "dict_type"):
                raise UsageError(
                    f"must be a mapping of {self.name} options, not {options!r}"
                ) from None
            where = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")
            raise UsageError(f"{where}: {message}" if where else message) from None

    def option_names(self) -> tuple[str, ...]:
        """The names of the scenario's options (none without an options model)."""
        model = self.options_model()
        return tuple(model.model_fields) if model is not None else ()

    def section(self) -> Any:
        """The report's section of this scenario's records (imported; an object with ``title``
        and ``render(doc, ctx)``); None without one."""
        if self.report_section is None:
            return None
        return import_path(self.report_section, f"scenario {self.name!r}'s report section")


def _check_options_key(scenario: Scenario, table: Mapping[str, Scenario]) -> None:
    """ValueError when the scenario's options would share a suite field with another's."""
    if scenario.options is None:
        return
    for other in table.values():
        if other.options is not None and other.options_key == scenario.options_key:
            raise ValueError(
                f"scenario {scenario.name!r} would read its options from the suite field "
                f"{scenario.options_key!r}, as scenario {other.name!r} does; choose another name"
            )


_LOADGEN_RUNNER = "accelbench.runner.worker:run_loadgen_cell"
_LOADGEN_SECTION = "accelbench.report.sections:latency"


def _loadgen(name: str, help: str, *, batched: bool = False) -> Scenario:
    return Scenario(
        name,
        "loadgen",
        _LOADGEN_RUNNER,
        help=help,
        report_section=_LOADGEN_SECTION,
        batched=batched,
        latency=True,
        own_worker=False,
    )


_REGISTRY: Registry[Scenario] = Registry(
    "scenario",
    Scenario,
    SCENARIOS_ENV,
    (
        _loadgen("single-stream", "one query at a time; latency percentiles"),
        _loadgen("multi-stream", "queries of several samples back to back; latency"),
        _loadgen("offline", "every sample at once; throughput", batched=True),
        _loadgen("server", "Poisson arrivals under a latency bound; QPS", batched=True),
        Scenario(
            "input-pipeline",
            "module",
            "accelbench.benchmarks.input_pipeline:run_cell",
            help="tf.data throughput by file format and pipeline",
            options="accelbench.benchmarks.scenario_options:InputPipelineOptions",
            report_section="accelbench.report.sections:input_pipeline",
            per_model=True,
        ),
        Scenario(
            "training",
            "module",
            "accelbench.benchmarks.training:run_cell",
            help="time to train to a target quality",
            options="accelbench.benchmarks.scenario_options:TrainingOptions",
            report_section="accelbench.report.sections:training",
            per_model=True,
            model_optimization="fp32",
        ),
        Scenario(
            "serving",
            "module",
            "accelbench.benchmarks.serving:run_cell",
            help="accelbench's model server under load; peak QPS",
            options="accelbench.benchmarks.scenario_options:ServingOptions",
            report_section="accelbench.report.sections:serving",
        ),
        # A model's optimizations timed against its fp32 artifact in one worker, pair by pair:
        # the suite adds it wherever single-stream runs (its options are the suite's `paired:`).
        Scenario(
            "paired",
            "module",
            "accelbench.runner.worker:run_paired_cell",
            help="optimizations timed against fp32 in one worker, pair by pair",
            own_worker=False,
            selectable=False,
        ),
    ),
    check=_check_options_key,
)
SCENARIOS: Mapping[str, Scenario] = _REGISTRY


def register_scenario(scenario: Scenario) -> None:
    """Add a scenario to this process's table (after those there); ValueError when its name is
    taken. Worker processes see it only through ``$ACCELBENCH_SCENARIOS``."""
    _REGISTRY.register(scenario)


def unregister_scenario(name: str) -> None:
    """Remove a scenario that register_scenario added."""
    _REGISTRY.unregister(name)


def scenario_info(name: str) -> Scenario:
    """The registered scenario of this name; UsageError naming the valid ones otherwise."""
    scenario = SCENARIOS.get(name)
    if scenario is None:
        raise UsageError(f"unknown scenario {name!r}; use one of {', '.join(selectable())}")
    return scenario


def selectable() -> tuple[str, ...]:
    """The scenarios a suite's ``scenarios:`` and the CLI's --scenario may name, in order."""
    return tuple(name for name, scenario in SCENARIOS.items() if scenario.selectable)


def names_text(names: tuple[str, ...] | None = None) -> str:
    """'single-stream, multi-stream, … or serving': names joined for a message or a help text
    (the selectable scenarios' when none are given)."""
    names = selectable() if names is None else names
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
