"""The built-in suites are YAML files in a user's suite format: listed, shown, copied and run."""

from __future__ import annotations

from pathlib import Path

import pytest

from accelbench.cli import main
from accelbench.models import list_specs
from accelbench.runner.suite import expand, host_cores, load_suite, suite_from_mapping
from accelbench.runner.suites import BUILTIN_SUITES, builtin_suite, suite_text


def test_suites_list_names_each_with_its_description(capsys: pytest.CaptureFixture) -> None:
    assert main(["suites", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(BUILTIN_SUITES)
    assert all(len(line.split()) > 3 for line in lines)  # a description follows each name


@pytest.mark.parametrize("name", BUILTIN_SUITES)
def test_a_shown_suite_copied_to_a_file_plans_the_same_cells(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["suites", "show", name]) == 0
    shown = capsys.readouterr().out
    assert shown == suite_text(name)
    copy = tmp_path / f"my-{name}.yaml"
    copy.write_text(shown)
    from_file = [c.cell_id for c in expand(load_suite(copy))]
    builtin = suite_from_mapping(builtin_suite(name, host_cores()), f"built-in suite {name}")
    assert from_file and from_file == [c.cell_id for c in expand(builtin)]


def test_the_full_suite_lists_every_reference_model() -> None:
    listed = [m["name"] for m in builtin_suite("full", 2)["models"]]
    assert sorted(listed) == sorted(spec.name for spec in list_specs())


def test_all_in_threads_is_this_hosts_cores(tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("models: [digits_cnn]\nthreads: [1, all]\n")
    assert load_suite(suite).threads == sorted({1, host_cores()})
    assert builtin_suite("default", 8)["threads"] == [1, 8]
    assert builtin_suite("default", 1)["threads"] == [1]


def test_an_unknown_suite_is_one_line_and_exit_2(capsys: pytest.CaptureFixture) -> None:
    assert main(["suites", "show", "nightly"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "accelbench: error: unknown built-in suite 'nightly'; use one of default, full, ci"
    ]
