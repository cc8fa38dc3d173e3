"""The training benchmark: MLPerf-style seed aggregation, `accelbench train` and its records,
MirroredStrategy and MultiWorkerMirroredStrategy scaling, mixed precision and XLA, a distributed
worker that dies or hangs, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psutil
import pytest

from accelbench.benchmarks import distributed
from accelbench.benchmarks.training import aggregate_runs, check_options, run_cell
from accelbench.cli import main
from accelbench.errors import UsageError
from accelbench.records import read_records


def _runs(times: list[float | None]) -> list[dict]:
    return [{"seed": i, "time_to_target_s": t} for i, t in enumerate(times)]


def test_aggregate_drops_the_fastest_and_the_slowest_run() -> None:
    agg = aggregate_runs(_runs([5.0, 1.0, 3.0, 4.0, 9.0]))
    assert agg["ok"] and agg["failed_runs"] == 0
    assert agg["time_to_target_s"] == pytest.approx((5.0 + 3.0 + 4.0) / 3)
    assert agg["dropped_seeds"] == [1, 4] and sorted(agg["kept_seeds"]) == [0, 2, 3]


def test_aggregate_counts_a_run_that_never_reaches_the_target_as_failed() -> None:
    # One non-finishing run of five is the slowest, dropped like any slowest run.
    one = aggregate_runs(_runs([5.0, None, 3.0, 4.0, 2.0]))
    assert one["ok"] and one["failed_runs"] == 1 and one["failed_seeds"] == [1]
    assert one["time_to_target_s"] == pytest.approx((3.0 + 4.0 + 5.0) / 3)
    # Two of five, or one of two (nothing is dropped below three runs), fail the configuration.
    two = aggregate_runs(_runs([5.0, None, 3.0, None, 2.0]))
    assert not two["ok"] and two["time_to_target_s"] is None and two["failed_runs"] == 2
    assert "seeds 1, 3" in two["reason"] and "4 of 5 must" in two["reason"]
    pair = aggregate_runs(_runs([1.0, None]))
    assert not pair["ok"] and pair["needed_runs"] == 2
    # Fewer than three runs: all are averaged.
    assert aggregate_runs(_runs([1.0, 3.0]))["time_to_target_s"] == pytest.approx(2.0)


def test_options_fill_defaults_and_name_bad_values() -> None:
    checked = check_options({"strategies": ["mirrored"], "xla": ["off", "on"]})
    assert checked["devices"] == [1, 2] and checked["xla"] == [False, True]
    assert checked["precisions"] == ["fp32"] and checked["frameworks"] == ["tensorflow"]
    assert check_options(checked) == checked  # a resumed run re-checks its stored options
    with pytest.raises(UsageError, match="unknown precision 'fp8'.*mixed_bfloat16"):
        check_options({"precisions": ["fp8"]})
    with pytest.raises(UsageError, match="unknown option 'seed'"):
        check_options({"seed": 3})
    with pytest.raises(UsageError, match="devices of 2 or more"):
        check_options({"strategies": ["multiworker"], "devices": [1]})


@pytest.mark.slow
def test_train_cli_records_seeds_and_mirrored_scaling(tmp_path: Path, capsys) -> None:
    run_dir = tmp_path / "run"
    code = main(
        [
            "train",
            "breast_cancer_mlp",
            "--seeds",
            "3",
            "--epochs",
            "1",
            "--target",
            "0.5",
            "--strategy",
            "none,mirrored",
            "--devices",
            "1,2",
            "--out",
            str(run_dir),
            "--no-progress",
        ]
    )
    assert code == 0
    records = {
        r["cell_id"].split(".training.")[1].split(".", 1)[1]: r
        for r in read_records(run_dir)
        if r["scenario"] == "training" and "framework" in r["settings"]
    }
    assert set(records) == {"tensorflow.none.fp32.xla-off", "tensorflow.mirrored.fp32.xla-off.2dev"}
    for key, r in records.items():
        s, m = r["settings"], r["metrics"]
        assert r["status"] == "ok", r["error"]
        assert (s["framework"], s["precision"], s["xla"]) == ("tensorflow", "fp32", False)
        assert s["strategy"] == key.split(".")[1] and s["devices"] == (1 if "none" in key else 2)
        assert s["inputs"] == "built-in"  # the reference model's own data, not synthetic inputs
        assert len(s["runs"]) == 3 and {run["seed"] for run in s["runs"]} == {0, 1, 2}
        assert all(run["reached_target"] and run["step_time_s"] > 0 for run in s["runs"])
        assert m["failed_runs"]["value"] == 0 and m["runs_reached_target"]["value"] == 3
        assert m["step_time_ms"]["value"] > 0 and m["examples_per_s"]["direction"] == "higher"
        assert m["time_to_target_s"]["direction"] == "lower"
        # The middle run of three, once the fastest and slowest are dropped.
        times = sorted(run["time_to_target_s"] for run in s["runs"])
        assert m["time_to_target_s"]["value"] == pytest.approx(times[1])
    _assert_scaling(
        records["tensorflow.mirrored.fp32.xla-off.2dev"], records["tensorflow.none.fp32.xla-off"]
    )
    out = capsys.readouterr().out
    assert "tensorflow.mirrored.fp32.xla-off.2dev" in out and "3/3" in out


def _assert_scaling(part: dict, base: dict) -> None:
    m, s = part["metrics"], part["settings"]
    one = base["metrics"]["examples_per_s"]["value"]
    ratio = m["examples_per_s"]["value"] / (s["devices"] * one)
    assert m["scaling_efficiency"]["value"] == pytest.approx(ratio)
    assert m["scaling_efficiency"]["direction"] == "higher"
    assert m["baseline_examples_per_s"]["value"] == pytest.approx(one)
    assert s["baseline"] == "tensorflow.none.fp32.xla-off" and "cores" in s["notes"]


def _multiworker_cell() -> dict:
    options = {"seeds": 1, "epochs": 1, "target": 0.5, "strategies": ["multiworker"]}
    return {
        "model": "breast_cancer_mlp",
        "model_path": "",
        "seed": 0,
        "preset": "quick",
        "timeout_s": 300,
        "settings": {"data": None, "training": check_options(options)},
    }


@pytest.mark.slow
def test_multiworker_on_two_processes_trains_and_reports_scaling(tmp_path: Path) -> None:
    parts = {p["key"]: p for p in run_cell(_multiworker_cell(), tmp_path)["records"]}
    multi = parts["tensorflow.multiworker.fp32.xla-off.2dev"]
    assert multi["status"] == "ok", multi["error"]
    (run,) = multi["settings"]["runs"]
    assert run["devices"] == 2 and run["reached_target"] and run["steps"] == 455 // 32
    _assert_scaling(multi, parts["tensorflow.none.fp32.xla-off"])
    assert "worker processes" in multi["settings"]["notes"]
    assert _distributed_children() == []


def test_mixed_bfloat16_with_xla_trains_in_bfloat16_under_jit() -> None:
    job = distributed.TrainJob(
        model="breast_cancer_mlp", seeds=[0], epochs=1, precision="mixed_bfloat16", xla=True
    )
    (run,) = distributed.train_local(job)
    assert run["compute_dtype"] == "bfloat16" and run["jit_compile"] is True
    assert run["steps"] == 455 // 32 and run["step_time_s"] > 0
    # The first step traces and compiles the XLA program: far longer than a steady step.
    assert run["compile_s"] > run["step_time_s"]


def _distributed_children() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "accelbench.benchmarks.distributed" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.slow
def test_a_killed_multiworker_process_fails_the_configuration_and_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(distributed.FAULT_ENV, "kill:1")
    parts = {p["key"]: p for p in run_cell(_multiworker_cell(), tmp_path)["records"]}
    assert parts["tensorflow.none.fp32.xla-off"]["status"] == "ok"
    failed = parts["tensorflow.multiworker.fp32.xla-off.2dev"]
    assert failed["status"] == "failed"
    assert "multiworker worker 1 of 2 died from signal SIGKILL" in failed["error"]
    assert _distributed_children() == []


def test_a_hung_worker_times_out_and_is_killed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(distributed.FAULT_ENV, "hang")
    job = distributed.TrainJob(model="breast_cancer_mlp_jax", seeds=[0], epochs=1)
    with pytest.raises(distributed.DistributedFailure, match="timed out after 1 s.*killed"):
        distributed.run_jax(job, devices=1, timeout_s=1)
    assert _distributed_children() == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "{tmp}/missing.npz"], "no such file"),
        (["--data", "{tmp}/empty.npz"], "the file is empty"),
        (["--data", "{tmp}/table.txt"], "unsupported data format"),
        (["--data", "{tmp}/seven.npz"], "takes (30,)"),
        (["--precision", "fp8"], "unknown precision 'fp8'"),
        (["--strategy", "horovod"], "unknown strategy 'horovod'"),
        (["--xla", "maybe"], "xla takes on/off"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "table.txt").write_text("1,2,3\n")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "seven.npz", x=rng.normal(size=(20, 7)), y=rng.integers(0, 2, 20))
    out = tmp_path / "run"
    argv = ["train", "breast_cancer_mlp", *(a.format(tmp=tmp_path) for a in args)]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("accelbench: error:") and len(err.splitlines()) == 1
    assert message in err
    assert not out.exists()


def test_step_time_leaves_out_the_compile_step() -> None:
    summary = distributed.run_summary(
        seed=0,
        step_times_s=[0.5, 0.01, 0.02, 0.03],
        batch_size=32,
        quality=0.9,
        target=0.8,
        time_to_target_s=0.6,
        devices=1,
        epochs_run=1,
        wall_s=0.7,
    )
    run = json.loads(json.dumps(summary))  # as the worker writes it
    assert run["compile_s"] == 0.5 and run["step_time_s"] == pytest.approx(0.02)
    assert run["examples_per_s"] == pytest.approx(32 / 0.02)


def test_a_model_of_your_own_needs_a_quality_target(tmp_path: Path, capsys) -> None:
    model = tmp_path / "mine.keras"
    model.write_bytes(b"not read: the target is checked first")
    np.savez(tmp_path / "data.npz", x=np.zeros((10, 30)), y=np.zeros(10, dtype=int))
    out = tmp_path / "run"
    argv = ["train", str(model), "--data", str(tmp_path / "data.npz"), "--out", str(out)]
    assert main(argv) == 2
    assert "no quality target" in capsys.readouterr().err and not out.exists()
