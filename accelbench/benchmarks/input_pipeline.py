"""The input-pipeline scenario: tf.data throughput per format and pipeline, and input-bound checks.

A cell writes a model's data (the reference dataset, or the user's) in each format of
`accelbench.benchmarks.input_formats`, then reads it through each pipeline of `PIPELINES`:

``naive``             sequential: ``flat_map`` over the shards, ``map`` decode, ``map`` transform,
                      ``batch``; tf.data's automatic rewrites (map parallelization, injected
                      prefetch, parallel batch) are turned off so it really is sequential.
``parallel``          the maps with ``num_parallel_calls=AUTOTUNE`` (order kept).
``interleave``        the shards read by a parallel ``interleave`` (order kept).
``cache``             ``cache()`` in memory after the transform: epochs after the first read
                      no storage and decode nothing.
``prefetch``          ``prefetch(AUTOTUNE)`` at the end (production overlaps consumption).
``vectorized``        ``batch`` before the maps: decode (where the format's decoder takes a
                      batch) and transform run once per batch instead of once per example.
``nondeterministic``  ``parallel`` with ``deterministic=False`` (on its own, a sequential
                      pipeline has no order to give up).
``best``              all of the above that apply, combined.

Every configuration is measured the same way: one warm-up epoch (excluded: tracing, autotuning,
filling the cache), then whole epochs until `min_seconds` have passed, consumed inside the
graph (``Dataset.reduce``) so the Python loop's cost is not counted. ``examples_per_s`` counts
examples delivered; ``mb_per_s`` is the format's bytes on disk per epoch over the epoch's time
(for ``cache`` and ``best`` that is storage-equivalent throughput: their measured epochs come
from memory, and ``settings.reads_storage`` says so). Files are freshly written, so "storage"
is the OS page cache, not a cold disk.

Where the time goes is measured on the naive pipeline truncated after each stage (read,
decode, map, batch): the difference between consecutive truncations is that stage's time per
example (``settings.stage_ms_per_example``).

Input-bound detection compares the model's training-step throughput on batches already in
memory (a reference model's Keras model, `measure_train_step`) with each configuration's
throughput: training is input-bound when the naive pipeline delivers fewer examples per second
than the step consumes (`input_bound_verdict`). The two are measured apart; when they run
together they share the cores, so a pipeline only just faster than the step may still hold it
back.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

from accelbench.benchmarks.input_formats import FORMATS
from accelbench.errors import UsageError, failure_reason

PIPELINES = (
    "naive",
    "parallel",
    "interleave",
    "cache",
    "prefetch",
    "vectorized",
    "nondeterministic",
    "best",
)
# What each pipeline turns on; ``best`` is all of them.
PIPELINE_FEATURES = {
    "naive": frozenset(),
    "parallel": frozenset({"parallel"}),
    "interleave": frozenset({"interleave"}),
    "cache": frozenset({"cache"}),
    "prefetch": frozenset({"prefetch"}),
    "vectorized": frozenset({"vectorized"}),
    "nondeterministic": frozenset({"parallel", "nondeterministic"}),
    "best": frozenset(
        {"parallel", "interleave", "cache", "prefetch", "vectorized", "nondeterministic"}
    ),
}
STAGES = ("read", "decode", "map", "batch")
# A default run (digits_cnn, every format and pipeline) takes about a minute on 2 cores.
DEFAULT_EXAMPLES = 1024
DEFAULT_SHARDS = 4
DEFAULT_MIN_SECONDS = 0.2
DEFAULTS: dict[str, Any] = {
    "formats": list(FORMATS),
    "pipelines": list(PIPELINES),
    "batch_size": None,  # the reference model's own batch size (32 otherwise)
    "examples": DEFAULT_EXAMPLES,
    "shards": DEFAULT_SHARDS,
    "min_seconds": DEFAULT_MIN_SECONDS,
    "check_training": None,  # on for reference models, which have a training step
}
FALLBACK_BATCH_SIZE = 32


def check_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The suite's ``input_pipeline:`` options with defaults filled; UsageError on a bad one."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise UsageError(
            f"unknown input_pipeline option {unknown[0]!r}; the options are {', '.join(DEFAULTS)}"
        )
    out = {**DEFAULTS, **options}
    out["formats"] = _names(out["formats"], FORMATS, "formats")
    pipelines = _names(out["pipelines"], PIPELINES, "pipelines")
    # Speed-ups are against the naive pipeline, so it is always measured.
    out["pipelines"] = pipelines if "naive" in pipelines else ["naive", *pipelines]
    for key in ("examples", "shards"):
        out[key] = _positive_int(out[key], key)
    if out["batch_size"] is not None:
        out["batch_size"] = _positive_int(out["batch_size"], "batch_size")
    seconds = out["min_seconds"]
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds <= 0:
        raise UsageError(f"min_seconds must be a positive number of seconds, got {seconds!r}")
    out["min_seconds"] = float(seconds)
    if out["check_training"] not in (None, True, False):
        raise UsageError(f"check_training must be true or false, got {out['check_training']!r}")
    return out


def _names(value: Any, allowed: tuple[str, ...], key: str) -> list[str]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise UsageError(f"{key} must be a list of names from {', '.join(allowed)}")
    names = [str(i).strip() for i in items]
    bad = [n for n in names if n not in allowed]
    if bad:
        raise UsageError(f"unknown {key[:-1]} {bad[0]!r}; use {', '.join(allowed)}")
    return list(dict.fromkeys(names))


def _positive_int(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{key} must be a positive integer, got {value!r}")
    return value


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def load_examples(model: str, data: str | None, seed: int = 0) -> dict[str, Any]:
    """The training examples a pipeline reads: ``x``, ``y``, ``input_shape``, ``spec``, ``source``.

    A reference model's own data or the user's (any layout `accelbench.models.data` reads,
    checked against the model); a model that is not a reference model needs a .npz ``data``.
    The loaders' UsageError (naming the file and the mismatch) passes through.
    """
    import numpy as np

    from accelbench.models import get_spec
    from accelbench.models.spec import ModelSpec

    spec: ModelSpec | None
    try:
        spec = get_spec(model)
    except UsageError:
        spec = None
    if spec is not None:
        dataset = spec.load_data(data, seed=seed)
        source = dataset.source
        x, y = dataset.x_train, dataset.y_train
        return {
            "x": x,
            "y": y,
            "input_shape": tuple(spec.input_shape),
            "spec": spec,
            "source": source,
            "batch_size": spec.batch_size,
        }
    if not data:
        raise UsageError(
            f"{model} is not a reference model; give its data (.npz) or use a reference model"
        )
    from accelbench.models.data import load_npz_data

    x, y, _, _ = load_npz_data(data)
    if x.dtype.kind not in "fiub" or y.dtype.kind not in "iub":
        raise UsageError(f"{data}: features must be numbers and labels integer class ids")
    x = np.asarray(x, dtype=np.float32)
    return {
        "x": x,
        "y": np.asarray(y, dtype=np.int64),
        "input_shape": tuple(x.shape[1:]),
        "spec": None,
        "source": f"user data: {data}",
        "batch_size": FALLBACK_BATCH_SIZE,
    }


def take_examples(x: np.ndarray, y: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` examples, cycling through the data when it holds fewer."""
    import numpy as np

    index = np.arange(n) % len(x)
    return x[index], y[index]


# ---------------------------------------------------------------------------------------------
# Pipelines and measurement
# ---------------------------------------------------------------------------------------------


def build_pipeline(
    reader: Any,
    pipeline: str,
    batch_size: int,
    threads: int | None = None,
    *,
    features: frozenset[str] | None = None,
) -> Any:
    """The tf.data pipeline ``pipeline`` (one of `PIPELINES`) over a `FormatReader`.

    ``features`` overrides what the pipeline turns on (a subset of ``PIPELINE_FEATURES["best"]``),
    for configurations outside the named ones, such as ``best`` without the cache.
    """
    import tensorflow as tf

    if pipeline not in PIPELINE_FEATURES and features is None:
        raise UsageError(f"unknown pipeline {pipeline!r}; use {', '.join(PIPELINES)}")
    on = frozenset(features) if features is not None else PIPELINE_FEATURES[pipeline]
    deterministic = "nondeterministic" not in on
    parallel = tf.data.AUTOTUNE if "parallel" in on else None
    read, decode, transform = _stage_functions(reader)
    files = tf.data.Dataset.from_tensor_slices(reader.written.shards)
    if "interleave" in on:
        ds = files.interleave(
            read,
            cycle_length=len(reader.written.shards),
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=deterministic,
        )
    else:
        ds = files.flat_map(read)
    if "vectorized" in on:
        if reader.batch_decode:
            ds = ds.batch(batch_size).map(decode, num_parallel_calls=parallel)
        else:
            ds = ds.map(decode, num_parallel_calls=parallel).batch(batch_size)
        ds = ds.map(transform, num_parallel_calls=parallel)
    else:
        ds = ds.map(decode, num_parallel_calls=parallel)
        ds = ds.map(transform, num_parallel_calls=parallel).batch(batch_size)
    if "cache" in on:
        ds = ds.cache()
    if "prefetch" in on:
        ds = ds.prefetch(tf.data.AUTOTUNE)
    return ds.with_options(_options(on, deterministic, threads))


def _stage_functions(reader: Any) -> tuple[Any, Any, Any]:
    """The reader's stages, exempt from AutoGraph: they have no Python control flow on tensors,
    and converting them would cost more than the short measurements themselves."""
    import tensorflow as tf

    plain = tf.autograph.experimental.do_not_convert
    return plain(reader.read), plain(reader.decode), plain(reader.transform)


def _options(on: frozenset[str], deterministic: bool, threads: int | None) -> Any:
    import tensorflow as tf

    options = tf.data.Options()
    options.deterministic = deterministic
    # tf.data would otherwise parallelize maps and inject a prefetch on its own, and a pipeline
    # must get only what its name says.
    options.experimental_optimization.map_parallelization = "parallel" in on
    options.experimental_optimization.inject_prefetch = "prefetch" in on
    options.experimental_optimization.parallel_batch = "parallel" in on
    if threads:
        options.threading.private_threadpool_size = int(threads)
    return options


def stage_pipelines(reader: Any, batch_size: int) -> dict[str, Any]:
    """The naive pipeline truncated after each of `STAGES` (its full form ends with ``batch``)."""
    import tensorflow as tf

    options = _options(frozenset(), True, None)
    read_fn, decode_fn, transform_fn = _stage_functions(reader)
    files = tf.data.Dataset.from_tensor_slices(reader.written.shards)
    read = files.flat_map(read_fn)
    decode = read.map(decode_fn)
    transform = decode.map(transform_fn)
    return {
        "read": read.with_options(options),
        "decode": decode.with_options(options),
        "map": transform.with_options(options),
        "batch": transform.batch(batch_size).with_options(options),
    }


def count_examples(ds: Any, batched: bool = True) -> int:
    """Run one epoch of ``ds`` inside the graph and return the number of examples it gave.

    Single examples (``batched=False``) are grouped in C++ before they reach the consumer, so a
    per-example function call of the consumer is not counted as the pipeline's time.
    """
    if not batched:
        ds = ds.batch(COUNT_GROUP)
    return int(_counter(ds))


COUNT_GROUP = 256
_COUNTER: list[Any] = []


def _counter(ds: Any) -> Any:
    """One compiled consumer: a pipeline is traced once, not once per epoch."""
    if not _COUNTER:
        import tensorflow as tf

        @tf.autograph.experimental.do_not_convert
        def add(n: Any, *element: Any) -> Any:
            label = tf.nest.flatten(element)[-1]  # one per example (raw records: the record)
            return n + tf.cast(tf.shape(label)[0], tf.int64)

        @tf.function(autograph=False)
        def count(ds: Any) -> Any:
            return ds.reduce(tf.constant(0, tf.int64), add)

        _COUNTER.append(count)
    return _COUNTER[0](ds).numpy()


def measure(
    ds: Any,
    *,
    batched: bool = True,
    min_seconds: float = DEFAULT_MIN_SECONDS,
    warmup: bool = True,
    max_epochs: int = 1000,
) -> dict[str, Any]:
    """Examples per second over whole epochs of ``ds``, after one excluded warm-up epoch.

    ``warmup=False`` skips the warm-up epoch (for a pipeline whose files were just read) but
    still excludes tracing, by consuming one element first.
    """
    if warmup:
        count_examples(ds, batched)
    else:
        count_examples(ds.take(1), batched)  # traces the consumer, which is not to be timed
    examples = epochs = 0
    started = time.perf_counter()
    while True:
        examples += count_examples(ds, batched)
        epochs += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds or epochs >= max_epochs:
            break
    return {
        "examples_per_s": examples / elapsed,
        "examples": examples,
        "epochs": epochs,
        "seconds": elapsed,
        "examples_per_epoch": examples // epochs,
    }


def measure_train_step(
    model: Any,
    x: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    *,
    min_seconds: float = 0.5,
    warmup_steps: int = 3,
) -> dict[str, Any]:
    """A compiled Keras model's training-step throughput on batches already in memory.

    The step is Keras's own compiled train function; its input is a handful of distinct
    batches held in memory and cycled, so no input pipeline cost is counted.
    """
    import tensorflow as tf

    n_batches = max(1, min(8, len(x) // batch_size))
    x, targets = take_examples(x, targets, n_batches * batch_size)
    xb = x.reshape((n_batches, batch_size, *x.shape[1:]))
    tb = targets.reshape((n_batches, batch_size, *targets.shape[1:]))
    iterator = iter(tf.data.Dataset.from_tensor_slices((xb, tb)).cache().repeat())
    step = model.make_train_function()
    for _ in range(warmup_steps):  # the first call traces and compiles
        step(iterator)
    steps = 0
    started = time.perf_counter()
    while True:
        logs = step(iterator)
        steps += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            break
    float(tf.nest.flatten(logs)[0])  # the step has finished, not just been queued
    elapsed = time.perf_counter() - started
    return {
        "examples_per_s": steps * batch_size / elapsed,
        "step_ms": elapsed / steps * 1e3,
        "steps": steps,
        "batch_size": batch_size,
    }


def input_bound_verdict(step_examples_per_s: float, pipelines: dict[str, float]) -> dict[str, Any]:
    """Is training input-bound: does the naive pipeline deliver fewer examples/s than the step?

    ``pipelines`` maps configuration -> examples/s and must hold ``naive``. ``fixed_by`` is the
    slowest configuration that still outpaces the step (the least change that removes the
    bottleneck; ``naive`` when there is none), None when no configuration does.
    """
    if "naive" not in pipelines:
        raise ValueError("input_bound_verdict needs the naive pipeline's throughput")
    naive = pipelines["naive"]
    best = max(pipelines, key=lambda p: pipelines[p])
    enough = {p: v for p, v in pipelines.items() if v > step_examples_per_s}
    return {
        "input_bound": naive < step_examples_per_s,
        "input_bound_factor": step_examples_per_s / naive if naive > 0 else float("inf"),
        "train_step_examples_per_s": step_examples_per_s,
        "naive_pipeline_examples_per_s": naive,
        "best_pipeline": best,
        "best_pipeline_examples_per_s": pipelines[best],
        "fixed_by": min(enough, key=lambda p: enough[p]) if enough else None,
        "input_bound_with_best": pipelines[best] < step_examples_per_s,
    }


# ---------------------------------------------------------------------------------------------
# The cell
# ---------------------------------------------------------------------------------------------


def run_cell(cell: dict[str, Any], log_dir: Path) -> dict[str, Any]:
    """Measure every (format, pipeline) of the cell's options; one sub-record each."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    settings = cell.get("settings") or {}
    options = check_options(settings.get("input_pipeline"))
    threads = int(cell.get("threads") or 0) or None
    if options["check_training"] is not False:
        # Keras 2 builds the reference models' training step; it is chosen before TF loads
        # (some reference data, keyword MFCCs for one, is made with TF).
        from accelbench.keras_compat import legacy_keras

        legacy_keras()
    data = load_examples(cell["model"], settings.get("data"), int(cell.get("seed") or 0))
    check = options["check_training"]
    if check is None:
        check = data["spec"] is not None
    import tensorflow as tf

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    batch_size = options["batch_size"] or data["batch_size"]
    x, y = take_examples(data["x"], data["y"], options["examples"])
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="input-pipeline-", dir=log_dir))
    try:
        records, throughput = _measure_formats(
            x, y, data["input_shape"], options, batch_size, threads, folder
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the written datasets are not results
    if check:
        records.append(_input_bound_record(data, options, batch_size, throughput))
    return {
        "status": "ok",
        "error": None,
        "metrics": {},
        "settings": {
            "examples": options["examples"],
            "batch_size": batch_size,
            "shards": options["shards"],
            "warmup_epochs": 1,
            "data_source": data["source"],
        },
        "runtime": {"runtime": "tf.data", "version": tf.__version__},
        "records": records,
    }


def _measure_formats(
    x: np.ndarray,
    y: np.ndarray,
    input_shape: tuple[int, ...],
    options: dict[str, Any],
    batch_size: int,
    threads: int | None,
    folder: Path,
) -> tuple[list[dict[str, Any]], dict[str, dict[str, float]]]:
    from accelbench.benchmarks.input_formats import reader_for, skip_reason, write_format
    from accelbench.records import metric

    records: list[dict[str, Any]] = []
    throughput: dict[str, dict[str, float]] = {}
    for fmt in options["formats"]:
        reason = skip_reason(fmt, tuple(x.shape[1:]), x)
        if reason:
            records.append(
                {
                    "key": fmt,
                    "status": "skipped",
                    "error": reason,
                    "metrics": {},
                    "settings": {"format": fmt, "pipeline": None},
                }
            )
            continue
        try:
            written = write_format(fmt, x, y, folder, shards=options["shards"])
            reader = reader_for(written, input_shape)
        except Exception as exc:  # noqa: BLE001 - one format failing leaves the others measured
            records.append(
                {
                    "key": fmt,
                    "status": "failed",
                    "error": failure_reason(exc),
                    "metrics": {},
                    "settings": {"format": fmt, "pipeline": None},
                }
            )
            continue
        mb = written.bytes / 1e6
        measured: dict[str, dict[str, Any]] = {}
        format_records = []
        for pipeline in options["pipelines"]:
            record = {
                "key": f"{fmt}.{pipeline}",
                "status": "ok",
                "error": None,
                "metrics": {},
                "settings": {"format": fmt, "pipeline": pipeline},
            }
            try:
                ds = build_pipeline(reader, pipeline, batch_size, threads)
                m = measure(ds, min_seconds=options["min_seconds"])
                if m["examples_per_epoch"] != written.examples:
                    raise RuntimeError(
                        f"read {m['examples_per_epoch']} examples per epoch, wrote "
                        f"{written.examples}"
                    )
            except Exception as exc:  # noqa: BLE001 - recorded as this configuration's failure
                record.update(status="failed", error=failure_reason(exc))
                format_records.append(record)
                continue
            measured[pipeline] = m
            seconds_per_epoch = m["seconds"] / m["epochs"]
            record["metrics"] = {
                "examples_per_s": metric(m["examples_per_s"], "examples/s", "higher"),
                "mb_per_s": metric(mb / seconds_per_epoch, "MB/s", "higher"),
            }
            record["settings"].update(
                epochs=m["epochs"],
                examples_measured=m["examples"],
                bytes_per_epoch=written.bytes,
                reads_storage="cache" not in PIPELINE_FEATURES[pipeline],
                stages=sorted(PIPELINE_FEATURES[pipeline]),
            )
            format_records.append(record)
        speeds = {p: m["examples_per_s"] for p, m in measured.items()}
        throughput[fmt] = speeds
        fastest = max(speeds, key=lambda p: speeds[p]) if speeds else None
        for record in format_records:
            pipeline = record["settings"]["pipeline"]
            record["settings"]["fastest_pipeline"] = fastest
            record["settings"]["fastest"] = pipeline == fastest
            if pipeline in speeds and "naive" in speeds:
                record["metrics"]["speedup_vs_naive"] = metric(
                    speeds[pipeline] / speeds["naive"], "x", "higher"
                )
        if "naive" in measured:
            stages = _stage_times(reader, batch_size, measured["naive"], options["min_seconds"])
            naive_record = next(r for r in format_records if r["settings"]["pipeline"] == "naive")
            naive_record["settings"]["stage_ms_per_example"] = stages
            if reader.notes:
                naive_record["settings"]["stage_notes"] = reader.notes
        records.extend(format_records)
    return records, throughput


def _stage_times(
    reader: Any, batch_size: int, naive: dict[str, Any], min_seconds: float
) -> dict[str, float]:
    """Milliseconds per example spent in each stage of the naive pipeline."""
    cumulative = {}
    pipelines = stage_pipelines(reader, batch_size)
    for stage in STAGES:
        if stage == "batch":
            per_s = naive["examples_per_s"]  # the naive pipeline itself, already measured
        else:
            m = measure(pipelines[stage], batched=False, min_seconds=min_seconds / 2, warmup=False)
            per_s = m["examples_per_s"]
        cumulative[stage] = 1e3 / per_s
    out, before = {}, 0.0
    for stage in STAGES:
        # Noise can make a truncation look slower than a longer one; a stage never costs < 0.
        out[stage] = max(0.0, cumulative[stage] - before)
        before = max(before, cumulative[stage])
    return out


def _input_bound_record(
    data: dict[str, Any],
    options: dict[str, Any],
    batch_size: int,
    throughput: dict[str, dict[str, float]],
) -> dict[str, Any]:
    from accelbench.records import metric

    record: dict[str, Any] = {
        "key": "input_bound",
        "status": "ok",
        "error": None,
        "metrics": {},
        "settings": {"pipeline": "input_bound"},
    }
    spec = data["spec"]
    measured = {f: s for f, s in throughput.items() if "naive" in s}
    if spec is None:
        record.update(
            status="skipped",
            error="input-bound detection needs a reference model's "
            "training step; this model is not one",
        )
        return record
    if not measured:
        record.update(status="skipped", error="no format was measured with the naive pipeline")
        return record
    try:
        model = spec.build(0)
        x = data["x"][: 8 * batch_size]
        targets = x if spec.is_autoencoder else data["y"][: 8 * batch_size]
        step = measure_train_step(model, x, targets, batch_size)
    except Exception as exc:  # noqa: BLE001 - recorded as this check's failure
        record.update(status="failed", error=failure_reason(exc))
        return record
    per_format = {f: input_bound_verdict(step["examples_per_s"], s) for f, s in measured.items()}
    headline = next(f for f in options["formats"] if f in per_format)
    verdict = per_format[headline]
    record["metrics"] = {
        "train_step_examples_per_s": metric(
            verdict["train_step_examples_per_s"], "examples/s", "higher"
        ),
        "naive_pipeline_examples_per_s": metric(
            verdict["naive_pipeline_examples_per_s"], "examples/s", "higher"
        ),
        "best_pipeline_examples_per_s": metric(
            verdict["best_pipeline_examples_per_s"], "examples/s", "higher"
        ),
        "input_bound_factor": metric(verdict["input_bound_factor"], "x", "none"),
        "step_time_ms": metric(step["step_ms"], "ms", "lower"),
    }
    record["settings"].update(
        format=headline,
        input_bound=verdict["input_bound"],
        fixed_by=verdict["fixed_by"],
        best_pipeline=verdict["best_pipeline"],
        input_bound_with_best=verdict["input_bound_with_best"],
        train_step_batch_size=batch_size,
        train_steps_measured=step["steps"],
        per_format=per_format,
    )
    return record
