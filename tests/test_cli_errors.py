"""Bad input is one line and exit 2, a closed pipe is quiet, anything else is exit 3 and a log."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import DATA, run_cli

from accelbench import cli

QUIET_TF = {"TF_CPP_MIN_LOG_LEVEL": "2"}
# TensorFlow's and XLA's native logging writes these as the libraries load, whatever
# TF_CPP_MIN_LOG_LEVEL says: they are not accelbench's output.
NATIVE_LOG = re.compile(r"^(WARNING: All log messages before absl|[IWE]\d{4} \d\d:\d\d:)")


def _one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    assert proc.returncode == 2, output
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not NATIVE_LOG.match(ln)]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("accelbench: error: "), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("errors") / "run"
    proc = run_cli(
        "bench", str(DATA / "mlp_f32.tflite"), "--threads", "1", "--out", str(out), "--no-progress"
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return out


def _binary_suite(tmp: Path) -> list[str]:
    suite = tmp / "suite.yaml"
    suite.write_bytes(b"\xff\xfe\x00\x81models: [\x9c]\n")
    return ["run", str(suite)]


def _garbage_savedmodel(tmp: Path) -> list[str]:
    model = tmp / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(bytes(range(256)) * 4)
    return ["serve", str(model), "--port", "0"]


def _savedmodel_damaged(damage: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        model = tmp / "model"
        shutil.copytree(DATA / "mlp_savedmodel", model)
        damage(model / "variables")
        return ["serve", str(model), "--port", "0"]

    return make


def _truncate_variables(variables: Path) -> None:
    data = next(variables.glob("variables.data-*"))
    data.write_bytes(data.read_bytes()[:100])


def _multi_output_keras(tmp: Path) -> list[str]:
    # A child process builds it: Keras stays out of the test process.
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from accelbench.keras_compat import legacy_keras
        keras = legacy_keras()
        x = keras.Input((4,))
        hidden = keras.layers.Dense(8, activation="relu")(x)
        first = keras.layers.Dense(3, activation="softmax", name="first")(hidden)
        second = keras.layers.Dense(2, activation="softmax", name="second")(hidden)
        keras.Model(x, [first, second]).save(sys.argv[1] + "/two_outputs.keras")
        xs, ys = np.zeros((16, 4), "float32"), np.zeros(16, "int64")
        np.savez(sys.argv[1] + "/data.npz", x_train=xs, y_train=ys, x_test=xs, y_test=ys)
        """
    )
    env = {**os.environ, **QUIET_TF}
    subprocess.run([sys.executable, "-c", code, str(tmp)], check=True, env=env, timeout=300)
    return [
        "train",
        str(tmp / "two_outputs.keras"),
        "--data",
        str(tmp / "data.npz"),
        "--target",
        "0.5",
    ]


def _out_is_file(tmp: Path) -> list[str]:
    (tmp / "taken").write_text("a file\n")
    return ["bench", str(DATA / "mlp_f32.tflite"), "--out", str(tmp / "taken")]


def _out_under_file(tmp: Path) -> list[str]:
    (tmp / "taken").write_text("a file\n")
    return ["bench", str(DATA / "mlp_f32.tflite"), "--out", str(tmp / "taken" / "run")]


def _bench(*flags: str) -> Callable[[Path], list[str]]:
    return lambda tmp: ["bench", str(DATA / "mlp_f32.tflite"), *flags, "--out", str(tmp / "o")]


# Each: the arguments (made in a fresh folder) and words the one error line must contain.
BAD_INPUTS: dict[str, tuple[Callable[[Path], list[str]], tuple[str, ...]]] = {
    "calibrate zero seconds": (lambda t: ["profiles", "calibrate", "--seconds", "0"], ("seconds",)),
    "calibrate negative": (lambda t: ["profiles", "calibrate", "--seconds", "-2"], ("seconds",)),
    "calibrate nan": (lambda t: ["profiles", "calibrate", "--seconds", "nan"], ("seconds",)),
    "bench out is a file": (_out_is_file, ("taken", "is a file")),
    "bench out under a file": (_out_under_file, ("taken", "is a file")),
    "bench timeout nan": (_bench("--timeout", "nan"), ("timeout",)),
    "bench missing model": (lambda t: ["bench", str(t / "nope.tflite")], ("does not exist",)),
    "run binary suite": (_binary_suite, ("suite.yaml", "UTF-8")),
    "serve garbage saved_model.pb": (_garbage_savedmodel, ("saved_model.pb",)),
    "serve savedmodel without variables": (
        _savedmodel_damaged(shutil.rmtree),
        ("model", "does not load as a SavedModel"),
    ),
    "serve savedmodel truncated variables": (
        _savedmodel_damaged(_truncate_variables),
        ("model", "does not load as a SavedModel"),
    ),
    "train multi-output keras": (_multi_output_keras, ("two_outputs.keras", "2 output")),
    "compare missing folder": (lambda t: ["compare", str(t / "a"), str(t / "b")], ("a",)),
    "recommend non-run folder": (
        lambda t: ["recommend", str(t), "--max-latency-ms", "5"],
        ("records.jsonl",),
    ),
    "history empty folder": (lambda t: ["history", str(t)], ("run folders",)),
    "load bad url": (lambda t: ["load", "ftp://x", "--model", "m"], ("ftp://x",)),
    "results show a file": (lambda t: ["results", "show", str(DATA / "mlp_f32.tflite")], ()),
    "validate binary profile": (
        lambda t: ["profiles", "validate", str(DATA / "mlp_f32.tflite")],
        ("mlp_f32.tflite",),
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, case: str) -> None:
    make_args, needles = BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    args = make_args(work)
    before = sorted(p.relative_to(work) for p in work.rglob("*"))
    proc = run_cli(*args, cwd=work, env=QUIET_TF, timeout=300)
    _one_line_error(proc, *needles)
    assert sorted(p.relative_to(work) for p in work.rglob("*")) == before  # nothing written


def _unwritable_folder(tmp: Path) -> Path:
    """A folder this process cannot create anything in, even as root where one exists."""
    if os.geteuid() != 0:
        folder = tmp / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    try:  # sysfs refuses new entries to root as well
        tempfile.TemporaryDirectory(dir="/sys").cleanup()
    except OSError:
        return Path("/sys")
    pytest.skip("running as root with no read-only folder to write into")


def test_out_in_unwritable_folder(tmp_path: Path) -> None:
    folder = _unwritable_folder(tmp_path)
    out = folder / "run"
    proc = run_cli("bench", str(DATA / "mlp_f32.tflite"), "--threads", "1", "--out", str(out))
    _one_line_error(proc, str(folder), "not writable")
    assert not out.exists()


def test_compare_bad_fail_on_prints_nothing(bench_run: Path) -> None:
    proc = run_cli("compare", str(bench_run), str(bench_run), "--fail-on", "bogus")
    _one_line_error(proc, "bogus", "regressed")
    assert proc.stdout == ""


def test_resume_refuses_a_model_or_suite(bench_run: Path, tmp_path: Path) -> None:
    before = (bench_run / "records.jsonl").read_text()
    proc = run_cli("bench", "--resume", str(bench_run), str(DATA / "cnn_f32.tflite"))
    _one_line_error(proc, "--resume", "cnn_f32.tflite")
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"models:\n  - path: {DATA / 'cnn_f32.tflite'}\n")
    proc = run_cli("run", "--resume", str(bench_run), str(suite))
    _one_line_error(proc, "--resume", "suite.yaml")
    assert (bench_run / "records.jsonl").read_text() == before


def test_recommend_nan_budget(bench_run: Path) -> None:
    proc = run_cli("recommend", str(bench_run), "--max-latency-ms", "nan")
    _one_line_error(proc, "--max-latency-ms")


@pytest.mark.parametrize(
    "args",
    [
        ("profiles", "show", "rpi4"),
        ("profiles", "list"),
        ("models", "list"),
        ("results", "show", "RUN"),
        ("compare", "RUN", "RUN"),
    ],
)
def test_closed_stdout_pipe_is_quiet(args: tuple[str, ...], bench_run: Path) -> None:
    # The reader is gone before the first write, as with `accelbench ... | head -0`.
    read_end, write_end = os.pipe()
    os.close(read_end)
    args = tuple(str(bench_run) if a == "RUN" else a for a in args)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "accelbench.cli", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
        )
    finally:
        os.close(write_end)
    assert proc.stderr == ""
    assert proc.returncode == cli.base.EXIT_CLOSED_PIPE == 141


def _boom(*args: object, **kwargs: object) -> None:
    raise RuntimeError("boom\nsecond line of the message")


def _log_named_in(stderr: str) -> Path:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("accelbench: internal error: RuntimeError: boom;"), lines[0]
    assert "Traceback" not in stderr
    match = re.search(r"the traceback is in (\S+\.log)", lines[0])
    assert match, lines[0]
    return Path(match.group(1))


def test_unexpected_exception_is_exit_3_with_a_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import accelbench.hardware_profiles as hp

    monkeypatch.setenv("ACCELBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(hp, "list_profiles", _boom)
    assert cli.main(["profiles", "list"]) == cli.base.EXIT_INTERNAL == 3
    log = _log_named_in(capsys.readouterr().err)
    assert log.parent == tmp_path / "cache" / "logs"
    text = log.read_text()
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: boom" in text and "list_profiles" in text


def test_unexpected_exception_on_a_terminal_and_an_unwritable_cache(tmp_path: Path) -> None:
    (tmp_path / "cache").write_text("a file where the cache folder should be\n")
    code = (
        "import sys, accelbench.hardware_profiles as hp, accelbench.cli as cli\n"
        "def boom(*a, **k):\n    raise RuntimeError('boom')\n"
        "hp.load_profile = boom\n"
        "sys.exit(cli.main(['profiles', 'show', 'rpi4']))\n"
    )
    env = {**os.environ, "ACCELBENCH_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 3, proc.stderr
    log = _log_named_in(proc.stderr)  # the cache is a file: the log goes to the temp folder
    try:
        assert log.is_file() and "RuntimeError: boom" in log.read_text()
    finally:
        log.unlink(missing_ok=True)


def test_broken_pipe_that_is_not_stdout_is_internal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import accelbench.hardware_profiles as hp

    def socket_closed(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setenv("ACCELBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(hp, "list_profiles", socket_closed)
    assert cli.main(["profiles", "list"]) == 3
    assert "internal error: BrokenPipeError" in capsys.readouterr().err


def test_help_lists_the_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "3 internal error" in text and "2 bad input" in text
