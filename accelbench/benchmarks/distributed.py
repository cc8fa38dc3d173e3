"""Timed training runs of one configuration: on one device, under a tf.distribute strategy
(MirroredStrategy across logical CPU devices, MultiWorkerMirroredStrategy across worker processes
on localhost), or with JAX data parallelism across host devices.

Each run trains one seed until the model's quality target or the epoch budget, and returns the
same per-run dict (`run_summary`) whatever the framework: ``quality``, ``target``,
``reached_target``, ``time_to_target_s`` (training seconds from the first step, compilation
included, to the end of the first epoch at the target; the per-epoch test scoring is off the
clock), ``compile_s`` (the first step, where tracing and XLA compilation happen),
``step_time_s`` (median of the later steps), ``examples_per_s`` (global batch / step time),
``steps``, ``devices``, ``epochs_run``, ``wall_s``, and ``compute_dtype`` and ``jit_compile`` as
the framework reports them.

Worker processes (MultiWorker and JAX) are started as ``python -m
accelbench.benchmarks.distributed ROLE JOB.json RESULT.json``, each in its own session and set to
die with their parent; whatever happens, they are killed (process group, SIGKILL) before
`run_multiworker` or `run_jax` returns, and a worker that dies or hangs fails the configuration
with the worker's index and exit status or signal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError
from accelbench.processes import spawn_group, stop_group

# The first steps trace the step function (and compile it under XLA): timed apart, as compile_s.
WARMUP_STEPS = 1
# Test hook, like ACCELBENCH_WORKER_FAULT: KIND:INDEX makes distributed worker INDEX misbehave
# after its first training steps. KIND is kill (SIGKILL itself), hang or raise.
FAULT_ENV = "ACCELBENCH_DISTRIBUTED_FAULT"
FAULT_AFTER_STEPS = 3
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


@dataclass
class TrainJob:
    """What to train, how, and for how long: everything a worker process needs, JSON-able."""

    model: str  # a reference model name, or the name of a user's model
    model_path: str = ""  # a user's Keras file; "" for a reference model
    data: str | None = None  # the user's data file; None for the reference model's own
    data_label: str | None = None  # the label column or key of the user's data file
    data_seed: int = 0
    seeds: list[int] = field(default_factory=lambda: [0])
    epochs: int = 10
    batch_size: int = 32  # the global batch, whatever the number of devices
    precision: str = "fp32"
    xla: bool = False
    target: float | None = None  # None: the reference model's own quality target

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DistributedFailure(RuntimeError):
    """A worker process of a distributed run died, failed or hung; the message says which."""


# ---------------------------------------------------------------------------------------------
# TensorFlow, in this process
# ---------------------------------------------------------------------------------------------


def split_logical_cpus(count: int) -> int:
    """Make ``count`` logical CPU devices for MirroredStrategy; returns how many there are.

    Must run before TensorFlow initializes its devices (before any TF op in the process);
    afterwards the existing configuration stands, and its device count is returned.
    """
    from accelbench.keras_compat import legacy_keras

    legacy_keras()
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    if count > 1:
        with contextlib.suppress(RuntimeError):  # devices already initialized: keep them
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
            )
    return len(tf.config.list_logical_devices("CPU"))


def train_local(job: TrainJob, strategy: str = "none", devices: int = 1) -> list[dict[str, Any]]:
    """Train every seed of ``job`` in this process: no strategy, or MirroredStrategy on
    ``devices`` logical CPUs (made by `split_logical_cpus` before TensorFlow started)."""
    from accelbench.keras_compat import legacy_keras

    legacy_keras()
    import tensorflow as tf

    if strategy == "mirrored":
        available = split_logical_cpus(devices)
        if available < devices:
            raise UsageError(
                f"MirroredStrategy needs {devices} logical CPU devices but TensorFlow was "
                f"started with {available}; split them before any TensorFlow op"
            )
        names = [d.name for d in tf.config.list_logical_devices("CPU")[:devices]]
        dist = tf.distribute.MirroredStrategy(names)
    elif strategy == "none":
        dist = tf.distribute.get_strategy()
    else:
        raise UsageError(f"train_local runs strategy none or mirrored, not {strategy!r}")
    problem = _Problem(job)
    return [_train_tf(problem, job, seed, dist, devices) for seed in job.seeds]


class _Problem:
    """A model to build per seed, its data, and how its quality is scored."""

    def __init__(self, job: TrainJob) -> None:
        import numpy as np

        self.job = job
        self.spec = None
        self.keras_notes: dict[str, Any] | None = None  # which Keras read a user's file; bridge
        if not job.model_path:
            from accelbench.models import get_spec

            self.spec = get_spec(job.model)
            data = self.spec.load_data(job.data, seed=job.data_seed)
            self.x_train, self.y_train, self.x_test, self.y_test = (
                data.x_train,
                data.y_train,
                data.x_test,
                data.y_test,
            )
            self.targets = data.x_train if self.spec.is_autoencoder else data.y_train
            self.target = self.spec.target if job.target is None else job.target
            self.metric = self.spec.metric
        else:
            from accelbench.keras_compat import legacy_keras
            from accelbench.models.data import load_user_data
            from accelbench.optimizers.user_models import load_user_model

            legacy_keras()  # the saved model is read as build() will read it
            # Image folders and tables are shaped to the model's input.
            saved = load_user_model(job.model_path)
            classes = saved.output_shape[-1]
            data = load_user_data(
                job.data or "",
                saved.input_shape[1:],
                num_classes=classes if isinstance(classes, int) else None,
                label=job.data_label or "label",
                seed=job.data_seed,
            )
            self.x_train, self.y_train, self.x_test, self.y_test = (
                np.asarray(a) for a in (data.x_train, data.y_train, data.x_test, data.y_test)
            )
            self.targets = self.y_train
            if job.target is None:
                raise UsageError("a user's model has no quality target; give one (--target 0.9)")
            self.target = job.target
            self.metric = "accuracy"

    def build(self, seed: int) -> Any:
        """A fresh, compiled model for ``seed`` under the global precision policy."""
        from accelbench.keras_compat import legacy_keras

        keras = legacy_keras()
        if self.spec is not None:
            return self.spec.build(seed)
        from accelbench.optimizers.user_models import load_user_model

        saved = load_user_model(self.job.model_path)
        from accelbench.optimizers.keras_bridge import bridged, is_keras3_model, keras_source

        self.keras_notes = {"keras_source": keras_source(saved)}
        if is_keras3_model(saved):
            # Training runs in tf_keras, like every configuration here (mixed precision, the
            # clone below): a Keras 3 file trains as its verified tf_keras rebuild.
            rebuilt = bridged(saved, self.x_train)
            saved, self.keras_notes = rebuilt.model, rebuilt.notes()
        if not hasattr(saved, "optimizer") or saved.optimizer is None or not saved.loss:
            raise UsageError(
                f"{self.job.model_path} was saved without an optimizer and loss; compile the "
                "model before saving it so it can be trained"
            )
        keras.utils.set_random_seed(seed)
        policy = keras.mixed_precision.global_policy().name

        def clone_layer(layer: Any) -> Any:
            # Saved layers carry their own dtype; the configuration's policy replaces it.
            return layer.__class__.from_config({**layer.get_config(), "dtype": policy})

        # Fresh weights from the layers' initializers: a training run starts from scratch.
        model = keras.models.clone_model(saved, clone_function=clone_layer)
        optimizer = saved.optimizer.__class__.from_config(saved.optimizer.get_config())
        model.compile(optimizer=optimizer, loss=saved.loss)
        return model

    def quality(self, model: Any) -> float:
        import numpy as np

        scores = np.asarray(model(self.x_test, training=False), dtype=np.float32)
        if self.spec is not None:
            from accelbench.models import quality_from_scores

            return quality_from_scores(self.spec, scores, self.y_test, self.x_test)
        return float(np.mean(np.argmax(scores.reshape(len(scores), -1), axis=1) == self.y_test))


def _set_policy(precision: str) -> None:
    from accelbench.keras_compat import legacy_keras

    keras = legacy_keras()
    keras.mixed_precision.set_global_policy("float32" if precision == "fp32" else precision)


def _train_tf(
    problem: _Problem,
    job: TrainJob,
    seed: int,
    dist: Any,
    devices: int,
    fault: tuple[str, int] | None = None,
) -> dict[str, Any]:
    """One seed: build under the strategy, fit epoch by epoch until the target, time each step."""
    from accelbench.keras_compat import legacy_keras

    keras = legacy_keras()
    import tensorflow as tf

    if len(problem.x_train) < job.batch_size:
        raise UsageError(
            f"{len(problem.x_train)} training samples are fewer than one batch of "
            f"{job.batch_size}; give a smaller --batch-size"
        )
    _set_policy(job.precision)
    try:
        with dist.scope():
            model = problem.build(seed)
            # Recompiled with the configuration's XLA choice; the spec's metrics are dropped
            # (quality is scored on the test set at each epoch end, off the clock).
            model.compile(optimizer=model.optimizer, loss=model.loss, jit_compile=job.xla)
        keras.utils.set_random_seed(seed)
        dataset = tf.data.Dataset.from_tensor_slices((problem.x_train, problem.targets))
        dataset = dataset.shuffle(len(problem.x_train), seed=seed, reshuffle_each_iteration=True)
        # Whole global batches only: a last, smaller batch would retrace (and recompile).
        dataset = dataset.batch(job.batch_size, drop_remainder=True).prefetch(2)
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        dataset = dataset.with_options(options)
        clock = _Clock(problem, fault)
        started = time.perf_counter()
        model.fit(dataset, epochs=job.epochs, verbose=0, callbacks=[clock.callback(keras)])
        wall_s = time.perf_counter() - started
    finally:
        _set_policy("fp32")
    run = clock.result(job, seed, devices, wall_s)
    # What the model actually ran with, as TensorFlow reports it, not as asked.
    run["compute_dtype"] = model.layers[-1].compute_dtype
    run["jit_compile"] = bool(model.jit_compile)
    if problem.keras_notes:
        run["keras"] = problem.keras_notes
    return run


class _Clock:
    """Step and epoch timing, per-epoch quality, and the stop at the quality target."""

    def __init__(self, problem: _Problem, fault: tuple[str, int] | None) -> None:
        self.problem = problem
        self.fault = fault
        self.steps: list[float] = []
        self.quality: list[float] = []
        self.train_s = 0.0
        self.to_target: float | None = None
        self._step_start = self._epoch_start = 0.0

    def callback(self, keras: Any) -> Any:
        clock = self

        class _Timing(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
                clock._epoch_start = time.perf_counter()

            def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
                clock._step_start = time.perf_counter()

            def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
                clock.steps.append(time.perf_counter() - clock._step_start)
                if clock.fault and len(clock.steps) == FAULT_AFTER_STEPS:
                    _misbehave(clock.fault[0])

            def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
                clock.train_s += time.perf_counter() - clock._epoch_start
                quality = clock.problem.quality(self.model)  # off the clock
                clock.quality.append(quality)
                if clock.to_target is None and quality >= clock.problem.target:
                    clock.to_target = clock.train_s
                    # Every worker scores the same synchronized weights on the same test set,
                    # so all of them stop after the same epoch.
                    self.model.stop_training = True

        return _Timing()

    def result(self, job: TrainJob, seed: int, devices: int, wall_s: float) -> dict[str, Any]:
        return run_summary(
            seed=seed,
            step_times_s=self.steps,
            batch_size=job.batch_size,
            quality=self.quality[-1] if self.quality else None,
            target=self.problem.target,
            time_to_target_s=self.to_target,
            devices=devices,
            epochs_run=len(self.quality),
            wall_s=wall_s,
            history=self.quality,
        )


def run_summary(
    *,
    seed: int,
    step_times_s: list[float],
    batch_size: int,
    quality: float | None,
    target: float,
    time_to_target_s: float | None,
    devices: int,
    epochs_run: int,
    wall_s: float,
    history: list[float] | None = None,
    compile_s: float | None = None,
) -> dict[str, Any]:
    """One run's figures from its step times: the first WARMUP_STEPS are compile time, the
    median of the rest is the step time, and examples/s is the global batch over it."""
    import numpy as np

    if compile_s is None:
        compile_s = float(sum(step_times_s[:WARMUP_STEPS])) if step_times_s else None
        steady = step_times_s[WARMUP_STEPS:] or step_times_s
    else:
        steady = step_times_s
    step_s = float(np.median(steady)) if steady else None
    return {
        "seed": seed,
        "quality": quality,
        "target": target,
        "reached_target": time_to_target_s is not None,
        "time_to_target_s": time_to_target_s,
        "compile_s": compile_s,
        "step_time_s": step_s,
        "steps": len(step_times_s),
        "examples_per_s": batch_size / step_s if step_s else None,
        "devices": devices,
        "epochs_run": epochs_run,
        "wall_s": wall_s,
        "quality_history": list(history or []),
    }


def error_reason(exc: BaseException) -> str:
    """One line saying why a run failed; for a TensorFlow graph error, its informative line
    (the first is 'Graph execution error:', the rest a stack) rather than its first."""
    from accelbench.errors import failure_reason

    if not hasattr(exc, "op"):  # not a tf.errors.OpError
        return failure_reason(exc)
    noise = ("Graph execution error", "Detected at node", "Stack trace", "File ", "[[", "tf2xla")
    for line in str(getattr(exc, "message", exc)).splitlines():
        text = line.strip()
        if text and not line.startswith(" ") and not text.startswith(noise):
            return f"{type(exc).__name__}: {text[:300]}"
    return failure_reason(exc)


def _misbehave(kind: str) -> None:
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "raise":
        raise RuntimeError("injected distributed fault")


# ---------------------------------------------------------------------------------------------
# Worker processes: MultiWorkerMirroredStrategy and JAX
# ---------------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """Ports free on the loopback interface now (held open together, so all differ)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def run_multiworker(
    job: TrainJob, workers: int = 2, timeout_s: float = 600.0, log_dir: Path | None = None
) -> dict[str, Any]:
    """Train ``job`` with MultiWorkerMirroredStrategy across ``workers`` processes on localhost.

    Each process gets its own TF_CONFIG (a cluster of free loopback ports, its own index) and the
    same global batch; ring all-reduce over gRPC. Returns the chief's (worker 0's) result:
    ``{"runs": [...], "workers": N}``. Raises DistributedFailure naming the worker that died,
    failed or hung. Each worker's output goes to ``log_dir/worker-I.log`` when given.
    """
    ports = free_ports(workers)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    envs = []
    for index in range(workers):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        envs.append({"TF_CONFIG": json.dumps(tf_config), "ACCELBENCH_WORKER_INDEX": str(index)})
    results = _run_workers("multiworker", job.to_dict(), envs, timeout_s, log_dir)
    return {**results[0], "workers": workers}


def run_jax(
    job: TrainJob, devices: int, timeout_s: float = 600.0, log_dir: Path | None = None
) -> dict[str, Any]:
    """Train ``job`` (a JAX reference model) with data parallelism across ``devices`` host
    devices, in a fresh process (the device count is fixed when JAX starts)."""
    payload = {**job.to_dict(), "devices": devices}
    envs = [{"ACCELBENCH_WORKER_INDEX": "0"}]
    return _run_workers("jax", payload, envs, timeout_s, log_dir)[0]


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the parent dies (Linux), so a killed benchmark
    worker leaves no training process behind even though each is in a session of its own."""
    import ctypes

    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _run_workers(
    role: str,
    payload: dict[str, Any],
    envs: list[dict[str, str]],
    timeout_s: float,
    log_dir: Path | None,
) -> list[dict[str, Any]]:
    """Start one process per env, wait for all; any death, failure or hang fails them all."""
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix=f"accelbench-{role}-") as tmp:
        folder = Path(tmp)
        job_file = folder / "job.json"
        job_file.write_text(json.dumps(payload), encoding="utf-8")
        outs = [folder / f"result-{i}.json" for i in range(len(envs))]
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
        logs = [(log_dir or folder) / f"worker-{i}.log" for i in range(len(envs))]
        try:
            for env_extra, out, log in zip(envs, outs, logs, strict=True):
                env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env_extra}
                # The child imports this package from wherever this process found it.
                env["PYTHONPATH"] = os.pathsep.join(
                    p for p in (_PACKAGE_ROOT, os.environ.get("PYTHONPATH")) if p
                )
                with open(log, "wb") as fh:
                    procs.append(
                        spawn_group(
                            [sys.executable, "-m", __name__, role, str(job_file), str(out)],
                            stdout=fh,
                            stderr=subprocess.STDOUT,
                            env=env,
                            preexec_fn=_die_with_parent,
                        )
                    )
            _wait_all(procs, outs, logs, timeout_s, role)
            results = []
            for index, out in enumerate(outs):
                result = json.loads(out.read_text(encoding="utf-8"))
                if result.get("error"):
                    raise DistributedFailure(f"{role} worker {index} failed: {result['error']}")
                results.append(result)
            return results
        finally:
            # The whole group, even when the worker itself has exited: anything it started goes too.
            for proc in procs:
                stop_group(proc)


def _wait_all(
    procs: list[subprocess.Popen], outs: list[Path], logs: list[Path], timeout_s: float, role: str
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        codes = [p.poll() for p in procs]
        for index, code in enumerate(codes):
            if code not in (None, 0):
                how = _exit_words(code, outs[index], logs[index])
                others = "; the other workers were stopped" if len(procs) > 1 else ""
                raise DistributedFailure(f"{role} worker {index} of {len(procs)} {how}{others}")
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            running = [str(i) for i, code in enumerate(codes) if code is None]
            raise DistributedFailure(
                f"{role} training timed out after {timeout_s:g} s with worker(s) "
                f"{', '.join(running)} still running; they were killed"
            )
        time.sleep(0.05)


def _exit_words(code: int, out: Path, log: Path) -> str:
    if code < 0:
        return f"died from signal {signal.Signals(-code).name}"
    if out.is_file():  # the worker caught its own exception and said why
        with contextlib.suppress(ValueError):
            error = json.loads(out.read_text(encoding="utf-8")).get("error")
            if error:
                return f"exited with status {code}: {error}"
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    last = next((ln for ln in reversed(lines) if ln.strip()), "no output")
    return f"exited with status {code} ({last.strip()[:200]})"


def _fault_for_me() -> tuple[str, int] | None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return None
    kind, _, index = spec.partition(":")
    me = int(os.environ.get("ACCELBENCH_WORKER_INDEX", "0"))
    return (kind, me) if not index or int(index) == me else None


def _multiworker_main(payload: dict[str, Any]) -> dict[str, Any]:
    from accelbench.keras_compat import legacy_keras

    legacy_keras()
    import tensorflow as tf

    # The strategy must exist before any other TF op: it starts this worker's gRPC server.
    job = TrainJob(**payload)
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING
    )
    dist = tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    problem = _Problem(job)
    workers = dist.num_replicas_in_sync
    runs = [_train_tf(problem, job, seed, dist, workers, _fault_for_me()) for seed in job.seeds]
    return {"runs": runs}


def _jax_main(payload: dict[str, Any]) -> dict[str, Any]:
    devices = int(payload.pop("devices"))
    job = TrainJob(**payload)
    fault = _fault_for_me()
    if fault:
        _misbehave(fault[0])
    from accelbench.models import jax_models

    runs = []
    for seed in job.seeds:
        out = jax_models.train(
            job.model,
            seed=seed,
            epochs=job.epochs,
            batch_size=job.batch_size,
            devices=devices,
            precision=job.precision,
            data=job.data,
        )
        history = out.get("history") or {}
        target = out["target"] if job.target is None else job.target
        # The JAX trainer scores every epoch: time to target follows from its history, for
        # the model's target or the one asked for.
        to_target = next(
            (
                t
                for q, t in zip(
                    history.get("quality", []), history.get("elapsed_s", []), strict=False
                )
                if q >= target
            ),
            None,
        )
        run = run_summary(
            seed=seed,
            # JAX compiles ahead of the steps (compile_s); its first step still warms caches.
            step_times_s=list(out.get("step_times_s") or [])[WARMUP_STEPS:],
            batch_size=job.batch_size,
            quality=out.get("quality"),
            target=target,
            time_to_target_s=to_target,
            devices=int(out.get("devices") or devices),
            epochs_run=len(history.get("quality", [])) or job.epochs,
            wall_s=float(out.get("wall_s") or 0.0),
            history=history.get("quality"),
            compile_s=out.get("compile_s"),
        )
        run.update(compute_dtype=out.get("precision"), jit_compile=True)
        runs.append(run)
    return {"runs": runs}


def main(argv: list[str]) -> int:
    role, job_path, result_path = argv[0], Path(argv[1]), Path(argv[2])
    payload = json.loads(job_path.read_text(encoding="utf-8"))
    try:
        result = _multiworker_main(payload) if role == "multiworker" else _jax_main(payload)
        code = 0
    except Exception as exc:  # noqa: BLE001 - the reason goes back to the parent
        traceback.print_exc()
        result, code = {"error": error_reason(exc)}, 1
    from accelbench.records import write_result

    write_result(result_path, result)
    return code


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # The result is written: skip TensorFlow's teardown (and the gRPC server's shutdown, which
    # can wait on the other workers), which only adds seconds to every run.
    os._exit(status)
