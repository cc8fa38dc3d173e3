"""The scenario registry: a scenario added from outside accelbench (tests/toy_scenario.py, an
artifact's read rate) is accepted by every list of scenarios, has its suite options checked by
its own model, and is measured end to end by `accelbench run` in the runner's workers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import toy_scenario
import yaml
from conftest import DATA, run_cli

from accelbench.benchmarks import input_pipeline, serving, training
from accelbench.benchmarks.scenarios import (
    SCENARIOS,
    SCENARIOS_ENV,
    Scenario,
    register_scenario,
    scenario_info,
    selectable,
    unregister_scenario,
)
from accelbench.errors import UsageError
from accelbench.plugins import import_path
from accelbench.runner.pool import worker_key
from accelbench.runner.suite import Suite, expand, suite_from_mapping

TESTS = Path(__file__).parent
BUILTIN = (
    "single-stream",
    "multi-stream",
    "offline",
    "server",
    "input-pipeline",
    "training",
    "serving",
)
MODEL = str(DATA / "mlp_f32.tflite")


@pytest.fixture
def toy() -> Iterator[Scenario]:
    """The toy scenario registered in this process, unregistered after the test."""
    register_scenario(toy_scenario.TOY)
    yield toy_scenario.TOY
    unregister_scenario("artifact-read")


@pytest.fixture
def toy_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The toy scenario named in $ACCELBENCH_SCENARIOS, as a user adds one to the CLI: this
    process and every one it starts (the runner's workers) registers it; gone after the test."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv(SCENARIOS_ENV, "toy_scenario:TOY")


def _toy_suite(tmp_path: Path, **options: object) -> Path:
    suite = {
        "models": [MODEL],
        "profiles": ["host"],
        "threads": [1],
        "scenarios": ["artifact-read"],
        **({"artifact_read": options} if options else {}),
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_the_builtin_scenarios_are_the_table(capsys):
    from accelbench.cli import main

    assert selectable() == BUILTIN
    assert tuple(SCENARIOS) == (*BUILTIN, "paired")  # paired: added by the suite, not named
    with pytest.raises(UsageError, match="unknown scenario 'burst'; use one of single-stream, "):
        scenario_info("burst")
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    bench_help = " ".join(capsys.readouterr().out.split())
    assert f"--scenario SCENARIO comma-separated, of {', '.join(BUILTIN[:-1])} or serving" in (
        bench_help
    )


def test_every_builtin_scenario_names_what_imports():
    from accelbench.benchmarks.presets import BATCHED_SCENARIOS
    from accelbench.benchmarks.presets import SCENARIOS as LOADGEN_PRESET_SCENARIOS

    for scenario in SCENARIOS.values():
        runner = scenario.runner
        assert isinstance(runner, str)
        assert callable(import_path(runner, "runner"))
        if scenario.report_section is not None:
            section = scenario.section()
            assert isinstance(section.title, str) and callable(section.render)
    loadgen = {name for name, s in SCENARIOS.items() if s.kind == "loadgen"}
    assert loadgen == set(LOADGEN_PRESET_SCENARIOS)  # LoadGen's presets cover its scenarios
    assert {name for name, s in SCENARIOS.items() if s.batched} == set(BATCHED_SCENARIOS)


def test_the_suite_option_fields_are_the_module_scenarios_options():
    with_options = {s.options_key: s for s in SCENARIOS.values() if s.options is not None}
    # The built-in ones keep fields of their own in a suite file; a registered one's is extra.
    assert set(with_options) == {"input_pipeline", "training", "serving"}
    assert set(with_options) <= set(Suite.model_fields)
    assert with_options["input_pipeline"].option_names() == tuple(input_pipeline.DEFAULTS)
    assert with_options["training"].option_names() == training.OPTIONS
    assert with_options["serving"].option_names() == tuple(serving.DEFAULTS)
    # The model runs the module's own check: the same defaults, the same one-line refusals.
    assert SCENARIOS["serving"].check_options({}) == serving.check_options({})
    with pytest.raises(UsageError, match="^modes: unknown mode 'fast'; use online, batching"):
        SCENARIOS["serving"].check_options({"modes": ["fast"]})


def test_every_list_of_scenarios_follows_the_registry(toy, capsys):
    from accelbench.cli import main

    assert selectable() == (*BUILTIN, "artifact-read")
    suite = suite_from_mapping(
        {
            "models": [MODEL],
            "threads": [1],
            "scenarios": ["single-stream", "artifact-read"],
            "artifact_read": {"reads": 2},
        },
        "t",
    )
    by_scenario = {cell.scenario: cell for cell in expand(suite)}
    assert by_scenario["artifact-read"].settings["artifact_read"] == {"reads": 2}
    assert by_scenario["single-stream"].settings == {}
    assert worker_key(by_scenario["artifact-read"]) is None  # a worker of its own
    assert worker_key(by_scenario["single-stream"]) is not None
    defaults = suite_from_mapping({"models": [MODEL], "scenarios": ["artifact-read"]}, "t")
    assert [c.settings["artifact_read"] for c in expand(defaults)] == [{"reads": 3}]
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    assert "input-pipeline, training, serving or artifact-read" in " ".join(
        capsys.readouterr().out.split()
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"reeds": 2},
            "t: field 'artifact_read': unknown option 'reeds'; did you mean 'reads'? ",
        ),
        ({"reads": 0}, "t: field 'artifact_read': reads: Input should be greater than or equal"),
        (3, "t: field 'artifact_read' must be a mapping, not 3"),
    ],
)
def test_a_registered_scenario_s_options_are_checked_by_its_model(toy, options, message):
    data = {"models": [MODEL], "scenarios": ["artifact-read"], "artifact_read": options}
    with pytest.raises(UsageError) as refused:
        suite_from_mapping(data, "t")
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_an_unregistered_scenario_is_unknown_again(tmp_path):
    register_scenario(toy_scenario.TOY)
    unregister_scenario("artifact-read")
    assert selectable() == BUILTIN
    unknown = "^t: unknown field 'artifact_read'; the fields are name, "
    with pytest.raises(UsageError, match=unknown):
        suite_from_mapping({"models": [MODEL], "artifact_read": {"reads": 2}}, "t")


def test_registration_refuses_a_taken_name_or_a_bad_path(toy):
    for name in ("single-stream", "paired", "artifact-read"):
        with pytest.raises(ValueError, match=f"scenario name '{name}' is taken"):
            register_scenario(Scenario(name, "module", "m:run_cell"))
    renamed = Scenario("artifact_read", "module", "m:run_cell", options="m:Options")
    with pytest.raises(ValueError, match="from the suite field 'artifact_read', as scenario 'ar"):
        register_scenario(renamed)
    with pytest.raises(ValueError, match="write it as 'module:attribute'"):
        Scenario("other", "module", "no_colon")
    with pytest.raises(ValueError, match="use 'loadgen' or 'module'"):
        Scenario("other", "batch", "m:run_cell")  # type: ignore[arg-type]


def test_run_measures_a_scenario_named_in_the_environment(toy_in_environment, tmp_path):
    assert "artifact-read" in SCENARIOS  # this process reads the variable too
    out = tmp_path / "run"
    proc = run_cli("run", str(_toy_suite(tmp_path, reads=2)), "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (record,) = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert record["scenario"] == "artifact-read"
    assert record["status"] == "ok", record["error"]
    assert record["settings"]["reads"] == 2  # measured in the worker, with the suite's option
    assert record["metrics"]["read_mb_per_s"]["value"] > 0
    assert record["metrics"]["reads"]["value"] == 2
    # Its own report section, named in its table entry, is in the run's report.
    report = (out / "report.md").read_text()
    assert "## Artifact read rate" in report
    assert f"mlp_f32: {record['metrics']['read_mb_per_s']['value']:.1f} MB/s read" in report
    assert report.index("## Artifact read rate") < report.index("## Environment")


def test_a_suite_naming_an_unknown_scenario_is_one_usage_line(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("run", str(_toy_suite(tmp_path)), "--out", str(out), "--no-progress")
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith("accelbench: error: ")
    assert "field 'scenarios': unknown scenario 'artifact-read'; use one of single-stream" in line
    assert not out.exists()


def test_a_scenario_path_that_is_not_a_scenario_is_one_usage_line(monkeypatch, tmp_path):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv(SCENARIOS_ENV, "toy_scenario:Options")
    proc = run_cli("run", str(_toy_suite(tmp_path)), "--out", str(tmp_path / "run"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(
        "accelbench: error: $ACCELBENCH_SCENARIOS entry 'toy_scenario:Options' is a "
    )
    assert "not a Scenario" in proc.stderr and "Traceback" not in proc.stderr
