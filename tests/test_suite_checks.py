"""The library checks a suite as the CLI does: run_suite refuses a missing model or data file, a
file that is not a model and a batch size the model rules out with the CLI's one-line reason,
before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import DATA

from accelbench.cli import main
from accelbench.errors import UsageError
from accelbench.runner.suite import suite_from_mapping
from accelbench.runner.sweep import run_suite


def _not_a_model(tmp_path: Path) -> Path:
    path = tmp_path / "notes.tflite"
    path.write_text("not a model\n")
    return path


@pytest.mark.parametrize(
    ("suite", "reason"),
    [
        ({"models": [{"path": "TMP/missing.tflite"}]}, "does not exist"),
        ({"models": [{"path": "TMP/notes.tflite"}]}, "is not a TFLite model"),
        (
            {"models": [{"path": str(DATA / "mlp.keras"), "data": "TMP/missing.npz"}]},
            "data file",
        ),
        (
            {
                "models": [{"path": str(DATA / "mlp_f32.tflite")}],
                "scenarios": ["offline"],
                "batch_size": 8,
            },
            "batch dimension is fixed to 1",
        ),
    ],
)
def test_run_suite_refuses_what_accelbench_run_refuses(
    suite: dict, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _not_a_model(tmp_path)
    for entry in suite["models"]:
        for key, value in entry.items():
            entry[key] = value.replace("TMP", str(tmp_path))
    suite_file = tmp_path / "suite.yaml"
    suite_file.write_text(yaml.safe_dump(suite))

    assert main(["run", str(suite_file), "--out", str(tmp_path / "cli"), "--no-progress"]) == 2
    (cli_line,) = capsys.readouterr().err.splitlines()
    with pytest.raises(UsageError) as refused:
        run_suite(suite_from_mapping(suite, "test"), tmp_path / "api", progress=False)

    assert reason in str(refused.value)
    assert cli_line == f"accelbench: error: {refused.value}"
    assert not (tmp_path / "cli").exists() and not (tmp_path / "api").exists()
