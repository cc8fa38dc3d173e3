"""The training scenario, in the MLPerf Training way: configurations (framework, strategy,
precision, XLA, devices) x seeds, each run to the quality target; step time, examples/s, time to
target with the fastest and slowest runs dropped, failed runs counted, and scaling efficiency.

The runs themselves happen in `accelbench.benchmarks.distributed`; this module validates the
suite's ``training:`` options, plans the configurations, aggregates the seeds and writes one
sub-record per configuration (key ``framework.strategy.precision.xla-on|off[.Ndev]``).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError

STRATEGIES = ("none", "mirrored", "multiworker")
PRECISIONS = ("fp32", "mixed_bfloat16", "mixed_float16")
FRAMEWORKS = ("tensorflow", "jax")
# fmt: skip below: 9 names packed as a paragraph, not one per line.
OPTIONS = (
    "seeds", "epochs", "batch_size", "precisions", "xla", "strategies", "devices", "frameworks",
    "target",
)  # fmt: skip
# Seeds per configuration when the suite does not say: a few for CI, MLPerf Training's 5 else.
DEFAULT_SEEDS = {"quick": 3, "standard": 5, "mlperf": 5}
# The precision names the JAX trainer takes for ours; fp16 has no JAX path here.
JAX_PRECISIONS = {"fp32": "fp32", "mixed_bfloat16": "bfloat16"}
# Time kept back from a cell's timeout for the worker to write its result after a hung run.
TIMEOUT_MARGIN_S = 5.0


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """Validate a suite's ``training:`` mapping and fill its defaults (no framework import)."""
    if not isinstance(options, dict):
        raise UsageError("must be a mapping of training options, for example {seeds: 3}")
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"unknown option {unknown[0]!r}; the options are {', '.join(OPTIONS)}")
    checked: dict[str, Any] = {
        "seeds": _positive(options.get("seeds"), "seeds"),
        "epochs": _positive(options.get("epochs"), "epochs"),
        "batch_size": _positive(options.get("batch_size"), "batch_size"),
        "precisions": _names(options.get("precisions"), "precisions", PRECISIONS, ["fp32"]),
        "strategies": _names(options.get("strategies"), "strategies", STRATEGIES, ["none"]),
        "frameworks": _names(options.get("frameworks"), "frameworks", FRAMEWORKS, ["tensorflow"]),
        "xla": _switches(options.get("xla")),
    }
    distributed = [s for s in checked["strategies"] if s != "none"]
    devices = options.get("devices")
    if devices is None:
        devices = [1, 2] if distributed else [1]
    devices = [devices] if isinstance(devices, int) else devices
    if not isinstance(devices, list) or not devices:
        raise UsageError("devices must be a list of device counts, for example [1, 2]")
    checked["devices"] = sorted({_positive(d, "devices") for d in devices})
    if distributed and max(checked["devices"]) < 2:
        raise UsageError(
            f"strategy {distributed[0]} spreads training over several devices; give devices "
            "of 2 or more, for example [1, 2]"
        )
    target = options.get("target")
    if target is not None and (
        isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target <= 1
    ):
        raise UsageError(f"target must be a quality between 0 and 1, got {target!r}; e.g. 0.9")
    checked["target"] = None if target is None else float(target)
    return checked


def _positive(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive integer, got {value!r}; for example 2")
    return value


def _names(value: Any, name: str, allowed: tuple[str, ...], default: list[str]) -> list[str]:
    if value is None:
        return list(default)
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise UsageError(f"{name} must be a list, for example [{allowed[0]}]")
    for item in items:
        if item not in allowed:
            singular = {"strategies": "strategy"}.get(name, name[:-1])
            raise UsageError(f"unknown {singular} {item!r} in {name}; use {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def _switches(value: Any) -> list[bool]:
    """XLA on/off: booleans, or 'on'/'off' (as the command line writes them)."""
    if value is None:
        return [False]
    items = value if isinstance(value, list) else [value]
    words = {"on": True, "off": False, "true": True, "false": False}
    out = []
    for item in items:
        if isinstance(item, bool):
            out.append(item)
        elif isinstance(item, str) and item.lower() in words:
            out.append(words[item.lower()])
        else:
            raise UsageError(f"xla takes on/off (true/false), got {item!r}; for example [off, on]")
    if not out:
        raise UsageError("xla must list at least one of off, on")
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------------
# Aggregation across seeds (MLPerf Training's rule)
# ---------------------------------------------------------------------------------------------


def needed_runs(count: int) -> int:
    """Runs that must reach the target: all of them, except that with 3 or more runs the
    slowest is dropped anyway, so one run that never reached the target is tolerated."""
    return count - 1 if count >= 3 else count


def aggregate_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Time to target across seeds, the MLPerf Training way.

    A run that never reached the target counts as infinitely slow. With 3 or more runs, the
    fastest and the slowest are dropped and the rest averaged; with fewer, all are averaged.
    The configuration fails (``ok`` False, ``reason`` says why) when fewer than `needed_runs`
    reached the target, i.e. when a non-finishing run would be averaged in.
    Each run needs ``seed`` and ``time_to_target_s`` (None when not reached).
    """
    if not runs:
        raise ValueError("no runs to aggregate; train at least one seed")
    reached = [r for r in runs if r.get("time_to_target_s") is not None]
    failed = [r["seed"] for r in runs if r.get("time_to_target_s") is None]
    ordered = sorted(runs, key=lambda r: _time_or_inf(r))
    kept = ordered[1:-1] if len(runs) >= 3 else ordered
    dropped = [r["seed"] for r in ordered if r not in kept]
    needed = needed_runs(len(runs))
    ok = len(reached) >= needed
    result: dict[str, Any] = {
        "ok": ok,
        "time_to_target_s": None,
        "runs": len(runs),
        "runs_reached_target": len(reached),
        "failed_runs": len(failed),
        "needed_runs": needed,
        "failed_seeds": failed,
        "kept_seeds": [r["seed"] for r in kept],
        "dropped_seeds": dropped,
        "reason": None,
    }
    if ok:
        result["time_to_target_s"] = sum(r["time_to_target_s"] for r in kept) / len(kept)
    else:
        result["reason"] = (
            f"{len(failed)} of {len(runs)} runs (seeds {', '.join(map(str, failed))}) never "
            f"reached the quality target; {needed} of {len(runs)} must"
        )
    return result


def _time_or_inf(run: dict[str, Any]) -> float:
    value = run.get("time_to_target_s")
    return float("inf") if value is None else float(value)


# ---------------------------------------------------------------------------------------------
# Planning and running a cell's configurations
# ---------------------------------------------------------------------------------------------


def configurations(options: dict[str, Any]) -> list[dict[str, Any]]:
    """Every configuration of checked options, each 1-device baseline before its N-device runs.

    TensorFlow: precisions x XLA on one device, and each distributed strategy on each device
    count above 1. JAX (always XLA-compiled): precisions on one device and data-parallel on each
    device count above 1.
    """
    plans = []
    multi = [d for d in options["devices"] if d > 1]
    for framework in options["frameworks"]:
        xla_values = options["xla"] if framework == "tensorflow" else [True]
        for precision in options["precisions"]:
            for xla in xla_values:
                base = {"framework": framework, "precision": precision, "xla": xla}
                plans.append({**base, "strategy": "none", "devices": 1})
                strategies = [s for s in options["strategies"] if s != "none"]
                if framework == "jax":
                    strategies = ["data-parallel"] if multi else []
                for strategy in strategies:
                    plans.extend({**base, "strategy": strategy, "devices": n} for n in multi)
    for plan in plans:
        plan["key"] = config_key(plan)
    return plans


def config_key(plan: dict[str, Any]) -> str:
    """'tensorflow.none.fp32.xla-off', with '.2dev' appended for a run on 2 devices."""
    key = f"{plan['framework']}.{plan['strategy']}.{plan['precision']}"
    key += f".xla-{'on' if plan['xla'] else 'off'}"
    return key + (f".{plan['devices']}dev" if plan["devices"] > 1 else "")


def run_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """Run every configuration of a training cell; one sub-record each (see the module doc)."""
    started = time.monotonic()
    options = cell["settings"]["training"]
    plans = configurations(options)
    mirrored = [p["devices"] for p in plans if p["strategy"] == "mirrored"]
    if mirrored:
        from accelbench.benchmarks.distributed import split_logical_cpus

        # Before any TensorFlow op in this worker: logical devices are fixed at TF start.
        split_logical_cpus(max(mirrored))
    seeds_count = options["seeds"] or DEFAULT_SEEDS.get(cell["preset"], 3)
    seeds = [int(cell["seed"]) + i for i in range(seeds_count)]
    deadline = started + float(cell["timeout_s"]) - TIMEOUT_MARGIN_S
    parts: list[dict[str, Any]] = []
    for plan in plans:
        parts.append(_run_configuration(cell, options, plan, seeds, deadline, log_dir))
    _add_scaling(parts)
    _add_precision_notes(parts)
    return {"status": "ok", "error": None, "metrics": {}, "settings": {}, "records": parts}


def _job_for(
    cell: dict[str, Any], options: dict[str, Any], plan: dict[str, Any], seeds: list[int]
) -> Any:
    from accelbench.benchmarks.distributed import TrainJob

    model = _model_name(cell["model"], plan["framework"], bool(cell["model_path"]))
    epochs, batch_size = options["epochs"], options["batch_size"]
    if not cell["model_path"]:
        from accelbench.models import get_spec

        spec = get_spec(model)
        epochs = epochs or spec.epochs
        batch_size = batch_size or spec.batch_size
    return TrainJob(
        model=model,
        model_path=cell["model_path"],
        data=cell["settings"].get("data"),
        data_label=cell["settings"].get("data_label"),
        data_seed=int(cell["seed"]),
        seeds=seeds,
        epochs=epochs or 10,
        batch_size=batch_size or 32,
        precision=plan["precision"],
        xla=plan["xla"],
        target=options["target"],
    )


def _model_name(name: str, framework: str, user_model: bool) -> str:
    """The reference model a framework trains: 'digits_cnn' in TensorFlow, its JAX twin in JAX."""
    from accelbench.models.jax_models import BASES

    if framework == "tensorflow":
        return BASES.get(name, name)
    if user_model:
        raise _Refused("a user's Keras model has no JAX version; train it with tensorflow")
    twins = {base: jax_name for jax_name, base in BASES.items()}
    if name in BASES:
        return name
    if name not in twins:
        raise _Refused(f"{name} has no JAX version; JAX trains {', '.join(sorted(twins))}")
    return twins[name]


class _Refused(Exception):
    """A configuration that cannot run by design: recorded as skipped, with the reason."""


def _run_configuration(
    cell: dict[str, Any],
    options: dict[str, Any],
    plan: dict[str, Any],
    seeds: list[int],
    deadline: float,
    log_dir: Path,
) -> dict[str, Any]:
    from accelbench.benchmarks import distributed

    settings = {k: plan[k] for k in ("framework", "strategy", "precision", "xla", "devices")}
    part: dict[str, Any] = {"key": plan["key"], "status": "ok", "error": None, "metrics": {}}
    part["settings"] = settings
    try:
        job = _job_for(cell, options, plan, seeds)
        settings.update(
            trained_model=job.model,
            global_batch_size=job.batch_size,
            epoch_budget=job.epochs,
            seeds=seeds,
        )
        if job.model_path and job.data:
            from accelbench.models.data import describe_user_data

            label = job.data_label or "label"
            settings.update(describe_user_data(job.data, label=label, seed=job.data_seed))
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise distributed.DistributedFailure("no time left in the cell's timeout")
        runs = _train(distributed, job, plan, remaining, log_dir / plan["key"])
    except _Refused as exc:
        part.update(status="skipped", error=str(exc))
        return part
    except Exception as exc:  # noqa: BLE001 - one configuration failing must not stop the rest
        import traceback

        traceback.print_exc()
        part.update(status="failed", error=distributed.error_reason(exc))
        return part
    _summarize(part, runs, job.batch_size, job.epochs)
    return part


def _train(
    distributed: Any, job: Any, plan: dict[str, Any], remaining_s: float, log_dir: Path
) -> list[dict]:
    if plan["framework"] == "jax":
        if job.precision not in JAX_PRECISIONS:
            raise _Refused(
                f"the JAX trainer has no {job.precision} path; use {', '.join(JAX_PRECISIONS)}"
            )
        jax_job = distributed.TrainJob(
            **{**job.to_dict(), "precision": JAX_PRECISIONS[job.precision]}
        )
        return distributed.run_jax(jax_job, plan["devices"], remaining_s, log_dir)["runs"]
    if plan["strategy"] != "none" and plan["xla"]:
        # Both fail inside TensorFlow on CPU devices (measured here, TF 2.21): a mirrored step
        # reads variables on another logical device, a multi-worker step's all-reduce cannot
        # be compiled. On GPUs and TPUs the same configuration compiles.
        raise _Refused(
            "TensorFlow's XLA cannot compile a distributed training step on CPU devices "
            "(collectives are not implemented for CPU under XLA, and mirrored variables live on "
            "other logical devices); XLA runs here with strategy none, and JAX's data-parallel "
            "step is XLA-compiled"
        )
    if plan["strategy"] == "multiworker":
        return distributed.run_multiworker(job, plan["devices"], remaining_s, log_dir)["runs"]
    return distributed.train_local(job, plan["strategy"], plan["devices"])


def _summarize(
    part: dict[str, Any], runs: list[dict[str, Any]], batch_size: int, epochs: int
) -> None:
    """Configuration metrics from its runs; the per-run figures stay in settings.runs."""
    import numpy as np

    from accelbench.records import metric

    agg = aggregate_runs(runs)
    steps = [r["step_time_s"] for r in runs if r.get("step_time_s")]
    compiles = [r["compile_s"] for r in runs if r.get("compile_s") is not None]
    qualities = [r["quality"] for r in runs if r.get("quality") is not None]
    step_s = float(np.median(steps)) if steps else None
    part["metrics"] = {
        "step_time_ms": metric(step_s * 1e3 if step_s else None, "ms", "lower"),
        "examples_per_s": metric(batch_size / step_s if step_s else None, "examples/s", "higher"),
        "compile_s": metric(float(np.median(compiles)) if compiles else None, "s", "lower"),
        "time_to_target_s": metric(agg["time_to_target_s"], "s", "lower"),
        "failed_runs": metric(agg["failed_runs"], "runs", "lower"),
        "runs_reached_target": metric(agg["runs_reached_target"], "runs", "higher"),
        "final_quality": metric(
            float(np.median(qualities)) if qualities else None, "fraction", "higher"
        ),
    }
    keras = next((r["keras"] for r in runs if r.get("keras")), None)
    if keras:  # a user's file: which Keras read it, and the verified tf_keras rebuild if any
        part["settings"]["keras"] = keras
    part["settings"].update(
        target=runs[0].get("target"),
        runs=[{k: v for k, v in r.items() if k not in ("step_times_s", "keras")} for r in runs],
        aggregation={k: v for k, v in agg.items() if k not in ("ok", "reason")},
    )
    if not agg["ok"]:
        best = max(qualities, default=None)
        best_text = f"best final quality {best:.4f}" if best is not None else "no quality"
        detail = f" (epoch budget {epochs}; {best_text}, target {runs[0].get('target')})"
        part.update(status="failed", error=agg["reason"] + detail)


def _examples_per_s(part: dict[str, Any]) -> float | None:
    return ((part.get("metrics") or {}).get("examples_per_s") or {}).get("value")


def _add_scaling(parts: list[dict[str, Any]]) -> None:
    """scaling_efficiency = examples/s on N devices / (N x examples/s of the 1-device baseline
    of the same framework, precision and XLA), with the measured reasons when it is below 1."""
    from accelbench.records import metric

    baselines = {
        _family(p): p for p in parts if p["settings"]["devices"] == 1 and _examples_per_s(p)
    }
    for part in parts:
        s = part["settings"]
        if s["devices"] == 1:
            continue
        base = baselines.get(_family(part))
        mine = _examples_per_s(part)
        if base is None or not mine:
            continue
        one = _examples_per_s(base)
        efficiency = mine / (s["devices"] * one)
        part["metrics"]["scaling_efficiency"] = metric(efficiency, "fraction", "higher")
        part["metrics"]["baseline_examples_per_s"] = metric(one, "examples/s", "higher")
        s["baseline"] = base["key"]
        s["notes"] = _scaling_note(part, base, efficiency)


def _family(part: dict[str, Any]) -> tuple:
    s = part["settings"]
    return (s["framework"], s["precision"], s["xla"])


def _scaling_note(part: dict[str, Any], base: dict[str, Any], efficiency: float) -> str:
    s = part["settings"]
    cores = len(os.sched_getaffinity(0))
    n = s["devices"]
    where = {
        "mirrored": f"{n} logical CPU devices of one process",
        "multiworker": f"{n} worker processes on localhost (gRPC ring all-reduce)",
        "data-parallel": f"{n} JAX host devices",
    }.get(s["strategy"], f"{n} devices")
    step_1 = base["metrics"]["step_time_ms"]["value"]
    step_n = part["metrics"]["step_time_ms"]["value"]
    text = (
        f"measured on {where} sharing this host's {cores} CPU cores, same global batch "
        f"{s.get('global_batch_size')}: step {step_1:.2f} ms on 1 device vs {step_n:.2f} ms on "
        f"{n}."
    )
    if efficiency < 0.9:
        text += (
            " Below linear because the devices are not extra hardware: the replicas run "
            f"concurrently on the same {cores} cores, so together they have no more compute than "
            "one device had, every step adds a gradient all-reduce and replica synchronization, "
            "and the model is small, so that fixed per-step overhead is a large share of a "
            "step that takes milliseconds. On separate GPUs/TPUs the same code path adds "
            "compute per device."
        )
    return text


def _add_precision_notes(parts: list[dict[str, Any]]) -> None:
    """Say how each precision's step time compares with fp32's, as measured here."""
    fp32 = {
        (
            p["settings"]["framework"],
            p["settings"]["strategy"],
            p["settings"]["xla"],
            p["settings"]["devices"],
        ): p
        for p in parts
        if p["settings"]["precision"] == "fp32" and _examples_per_s(p)
    }
    for part in parts:
        s = part["settings"]
        if s["precision"] == "fp32" or not _examples_per_s(part):
            continue
        ref = fp32.get((s["framework"], s["strategy"], s["xla"], s["devices"]))
        if ref is None:
            continue
        ratio = part["metrics"]["step_time_ms"]["value"] / ref["metrics"]["step_time_ms"]["value"]
        note = f"{s['precision']} step time {ratio:.2f}x fp32's (same strategy and devices)."
        if "float16" in s["precision"] and "bfloat16" not in s["precision"] and ratio > 2:
            note += (
                " TensorFlow's CPU kernels have no native float16 arithmetic: each element is "
                "converted to float32 and back, so this measures that emulation, not what a GPU "
                "with float16 tensor cores would gain."
            )
        previous = s.get("notes")
        s["notes"] = f"{previous} {note}" if previous else note
