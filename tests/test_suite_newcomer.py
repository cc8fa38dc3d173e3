"""Suites as a newcomer writes them, and the plan a run states before it starts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import DATA, run_cli

PYDANTIC_WORDS = ("pydantic", "Input should be", "validation error")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _refused(tmp_path: Path, text: str, *needles: str) -> str:
    """Run --dry-run on a suite that must be refused: exit 2, one accelbench line, no pydantic."""
    suite = _write(tmp_path, text)
    proc = run_cli("run", str(suite), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith(f"accelbench: error: {suite}: "), line
    for word in PYDANTIC_WORDS:
        assert word not in line, line
    for needle in needles:
        assert needle in line, line
    assert not (tmp_path / "results").exists()
    return line


def _plan(tmp_path: Path, text: str) -> str:
    suite = _write(tmp_path, text)
    proc = run_cli("run", str(suite), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_plain_model_names_and_none_are_accepted(tmp_path: Path) -> None:
    out = _plan(
        tmp_path,
        "models: [digits_cnn, {name: breast_cancer_mlp}]\n"
        "optimizations: [none, int8]\nthreads: [1]\nscenarios: [single-stream]\n",
    )
    assert "  digits_cnn: train, 2 optimizations" in out
    assert "  breast_cancer_mlp: train, 2 optimizations" in out
    # none is recorded as fp32, the name records and reports use
    assert "  fp32: " in out and "  none: " not in out


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        (
            "models: [digits_cnn]\nruntimes: litert\n",
            ("unknown field 'runtimes'; did you mean 'runtime'?", "the fields are name, models"),
        ),
        (
            "models: [{nme: digits_cnn}]\n",
            ("field 'models[0]': unknown field 'nme'; did you mean 'name'?", "path, name, data"),
        ),
        (
            "models: [digits_cnn]\nprofiles: [host, {name: rpi4, thread: [4]}]\n",
            ("field 'profiles[1]': unknown field 'thread'; did you mean 'threads'?",),
        ),
        (
            "models: [digits_cnn]\nscenarios: [training]\ntraining: {epoch: 2}\n",
            ("field 'training': unknown option 'epoch'; did you mean 'epochs'?", "seeds"),
        ),
        (
            "models: [digits_cnn]\npaired: {pears: 50}\n",
            ("field 'paired': unknown option 'pears'; did you mean 'pairs'?",),
        ),
        (
            "models: [digits_cnn, {name: kws_dscnn, data: [a, b]}]\n",
            ("field 'models[1].data' must be text, not ['a', 'b']",),
        ),
        ("models: [digits_cnn]\nthreads: two\n", ("field 'threads' must be a list, not 'two'",)),
        (
            "models: [digits_cnn]\nprofiles: [host, 4]\n",
            ("field 'profiles[1]' must be text or a mapping, not 4",),
        ),
        (
            "models: [digits_cnn]\npreset: quik\n",
            ("unknown preset 'quik'; did you mean 'quick'?", "quick, standard, mlperf"),
        ),
        (
            "models: [digits_cnn]\nscenarios: [single_stream]\n",
            ("did you mean 'single-stream'?", "single-stream, multi-stream, offline, server"),
        ),
        (
            "models: [digits_cnn]\noptimizations: [fp32, int9]\n",
            ("field 'optimizations[1]'", "did you mean 'int8'?", "fp32 | dynamic | float16"),
        ),
        ("optimizations: [fp32]\n", ("field 'models' is required",)),
    ],
)
def test_bad_suites_are_refused_in_accelbench_words(
    tmp_path: Path, text: str, needles: tuple[str, ...]
) -> None:
    _refused(tmp_path, text, *needles)


def test_dry_run_of_the_default_suite_plans_and_writes_nothing(tmp_path: Path) -> None:
    proc = run_cli("run", "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    first = out.splitlines()[0]
    assert re.fullmatch(
        r"plan: \d+ cells \(\d+ measured, \d+ emulated, \d+ projected, \d+ paired\), "
        r"3 preparation jobs, about \d+ (s|min|h) on this machine",
        first,
    ), first
    for group in ("by model:", "by optimization:", "by profile:", "by scenario:", "preparation:"):
        assert group in out
    for name in (
        "digits_cnn:",
        "ic_resnet8:",
        "prune50+int8:",
        "rpi4 (emulated):",
        "coral-edgetpu (projected):",
        "offline:",
        "paired:",
    ):
        assert name in out, name
    assert "shipped costs" in out
    assert list(tmp_path.iterdir()) == []  # no results folder, nothing at all


def test_dry_run_of_a_tiny_suite(tmp_path: Path) -> None:
    out = _plan(
        tmp_path,
        f"models: [{{path: {DATA / 'mlp_f32.tflite'}}}]\nthreads: [1]\n"
        "scenarios: [single-stream, offline]\n",
    )
    assert out.splitlines()[0].startswith("plan: 2 cells (2 measured), about ")
    assert "  single-stream: 1 cell, " in out and "  offline: 1 cell, " in out
    assert "preparation" not in out  # an artifact is measured as given


def test_a_run_states_its_plan_first_and_learns_its_costs(tmp_path: Path) -> None:
    text = f"models: [{{path: {DATA / 'mlp_f32.tflite'}}}]\nthreads: [1]\n"
    suite = _write(tmp_path, text)
    proc = run_cli("run", str(suite), "--out", str(tmp_path / "run"), "--no-progress")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[0].startswith("plan: 1 cell (1 measured), about "), proc.stderr
    records = [json.loads(ln) for ln in (tmp_path / "run" / "records.jsonl").open()]
    assert [r["status"] for r in records] == ["ok"]
    # The finished run's cell is now part of this machine's costs.
    after = _plan(tmp_path, text)
    assert "costs measured on this machine (" in after, after
