"""The system under test LoadGen drives: the SUT and QSL around a runtime, the batching of its
calls, and one LoadGen test run with them. The SUT never reads a clock; LoadGen times every
sample."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import mlperf_loadgen as lg
import numpy as np

from accelbench.benchmarks.loadgen.logs import LOG_PREFIX
from accelbench.benchmarks.presets import BATCHED_SCENARIOS
from accelbench.errors import UsageError

# LoadGen keeps global state (its logger, the issue thread): one test at a time per process.
_LOADGEN_LOCK = threading.Lock()


class SupportsRun(Protocol):
    """The part of accelbench.runtimes.base.Runtime a scenario uses: run(), and optionally
    max_batch_size (the model's fixed batch dimension; None or absent: a dynamic batch, one
    sample per call unless a batch_size is asked for) and set_batch_size(n)."""

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]: ...


class SupportsSubmit(Protocol):
    """An asynchronous system under test (a remote endpoint): requests go out without waiting.

    prepare(samples) is called before each LoadGen test with the QSL (the runtime may pre-encode
    each sample once); submit(requests, done) takes (sample index, token) pairs, returns at once,
    and calls done(token) exactly once per pair, from any thread, when that sample's answer (or
    its error) is in. Such a runtime counts its own errors; LoadGen only sees completions.
    """

    def prepare(self, samples: list[list[np.ndarray]]) -> None: ...

    def submit(self, requests: list[tuple[int, int]], done: Callable[[int], None]) -> None: ...


@dataclass(frozen=True)
class Batching:
    """How the SUT groups samples into runtime calls: at most ``size`` samples per call, each
    call padded up to the smallest of ``shapes`` (batch sizes) that holds them.

    ``fixed``: the model's batch dimension is fixed, so ``shapes`` is just that size.
    """

    size: int
    fixed: bool
    shapes: tuple[int, ...]

    @classmethod
    def of(cls, size: int, fixed: bool) -> Batching:
        """A fixed batch: that size only. A dynamic one: the powers of two below ``size``, and
        ``size``. A runtime may pay for every new batch shape (JAX compiles each one, ~1 s on a
        GPU; LiteRT reallocates its tensors), and unpadded calls would meet many shapes: one
        per partial batch. Padding to at most twice the samples bounds them to log2(size) + 1
        shapes, all compiled before the measurement (`warm_up`); padded rows are counted."""
        if fixed or size == 1:
            return cls(size, fixed, (size,))
        powers = tuple(1 << i for i in range(size.bit_length()) if 1 << i < size)
        return cls(size, fixed, (*powers, size))

    def rows_for(self, samples: int) -> int:
        """The batch size a call of ``samples`` samples is padded to."""
        return next(shape for shape in self.shapes if shape >= samples)


def sut_batching(runtime: SupportsRun, scenario: str, batch_size: int | None = None) -> Batching:
    """The batching a scenario runs ``runtime`` with, ``batch_size`` samples per call asked for.

    A fixed batch dimension B is always B rows per call (padded), and refuses another
    batch_size. A dynamic batch takes one sample per call unless ``batch_size`` is given (offline
    and server only): then up to that many queued samples per call, padded to a power of two
    (see `Batching.of`), after ``runtime.set_batch_size(batch_size)`` where the runtime has it.
    UsageError, naming the fix, for an impossible batch size.
    """
    value = getattr(runtime, "max_batch_size", None)
    if value is not None and (not isinstance(value, int | np.integer) or value < 1):
        raise ValueError(
            f"runtime.max_batch_size must be a positive integer or None, not {value!r}"
        )
    fixed = None if value is None else int(value)
    if batch_size is None:
        return Batching.of(fixed or 1, fixed is not None)
    if scenario not in BATCHED_SCENARIOS:
        raise UsageError(
            f"batch_size applies to the offline and server scenarios, not {scenario} (one sample "
            "per query, as MLPerf defines it); drop it"
        )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch_size must be a positive integer, not {batch_size!r}")
    if is_async(runtime):
        raise UsageError(
            "batch_size applies to a runtime in this process; a remote endpoint batches on its "
            "server (accelbench serve --max-batch-size); drop it"
        )
    if fixed is not None and batch_size != fixed:
        raise UsageError(
            f"the model's batch dimension is fixed to {fixed}, so batch size {batch_size} is "
            f"impossible; use batch size {fixed} (or none), or a model with a dynamic batch "
            "dimension"
        )
    set_batch_size = getattr(runtime, "set_batch_size", None)
    if callable(set_batch_size):
        try:
            set_batch_size(batch_size)
        except ValueError as err:
            raise UsageError(str(err)) from err
    return Batching.of(batch_size, fixed is not None)


def check_batch_size(model: Path, batch_size: int) -> None:
    """Refuse, before any folder is written, a batch size that the model's fixed batch
    dimension rules out. A .tflite or .jaxexport is opened here to read it."""
    from accelbench.runtimes.validate import opened_here

    with opened_here(model) as runtime:
        if runtime is not None:
            sut_batching(runtime, "offline", batch_size)


def run_test(
    runtime: SupportsRun,
    samples: list[list[np.ndarray]],
    settings: lg.TestSettings,
    log_dir: Path,
    trace: bool,
    batching: Batching,
    threaded: bool,
) -> dict[str, Any]:
    """One LoadGen test, SUT and QSL constructed and destroyed around it, one at a time per
    process; returns the SUT's counts (padded_rows, runtime_calls, samples_per_call)."""
    with _LOADGEN_LOCK:
        log_dir.mkdir(parents=True, exist_ok=True)
        output = lg.LogOutputSettings()
        output.outdir = str(log_dir)
        output.prefix = LOG_PREFIX
        output.copy_summary_to_stdout = False
        output.copy_detail_to_stdout = False
        output.prefix_with_datetime = False
        log_settings = lg.LogSettings()
        log_settings.log_output = output
        log_settings.enable_trace = trace

        system: _SystemUnderTest | _AsyncSystemUnderTest
        if is_async(runtime):
            system = _AsyncSystemUnderTest(runtime, samples)  # type: ignore[arg-type]
        else:
            system = _SystemUnderTest(runtime, samples, batching, threaded)
        sut = lg.ConstructSUT(system.issue_queries, system.flush_queries)
        # The samples are already in memory, so loading and unloading them is a no-op.
        qsl = lg.ConstructQSL(len(samples), len(samples), _no_op, _no_op)
        try:
            # LoadGen applies an audit.config found in the working directory (compliance tests);
            # name one that cannot exist so a stray file never changes the settings.
            lg.StartTestWithLogSettings(
                sut, qsl, settings, log_settings, str(log_dir / "no-audit.config")
            )
        finally:
            system.close()
            lg.DestroyQSL(qsl)
            lg.DestroySUT(sut)
        if system.error is not None:
            raise system.error
        return system.counts()


def _no_op(_sample_indices: list[int]) -> None:
    return None


def is_async(runtime: object) -> bool:
    """Whether ``runtime`` is an asynchronous system under test (SupportsSubmit)."""
    return callable(getattr(runtime, "submit", None))


class _AsyncSystemUnderTest:
    """Hands LoadGen's samples to an asynchronous runtime (SupportsSubmit) and returns at once.

    Each sample completes when the runtime calls back with its token (LoadGen's query id), from
    the runtime's own thread; the response carries no output bytes, which performance mode never
    reads.
    """

    def __init__(self, runtime: SupportsSubmit, samples: list[list[np.ndarray]]) -> None:
        self._runtime = runtime
        runtime.prepare(samples)
        self.error: BaseException | None = None

    def counts(self) -> dict[str, Any]:
        # The runtime sends its requests itself: there are no calls here to count.
        return {"padded_rows": 0, "runtime_calls": None, "samples_per_call": None}

    def issue_queries(self, query_samples: list[Any]) -> None:
        self._runtime.submit([(s.index, s.id) for s in query_samples], self._complete)

    def flush_queries(self) -> None:
        return None

    def close(self) -> None:
        return None

    @staticmethod
    def _complete(query_id: int) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(query_id, 0, 0)])


class _SystemUnderTest:
    """Feeds LoadGen's samples to the runtime and hands each sample's output bytes back.

    Single-stream and multi-stream run inline in LoadGen's issue call (LoadGen waits for each
    query anyway); server and offline go through one worker thread so the issue call returns at
    once. The worker takes up to ``batching.size`` queued samples per runtime call, stacked on
    axis 0, padded to the batching's next shape (`Batching.rows_for`: a fixed batch dimension
    exactly, a dynamic one the next power of two) with copies of its last sample, whose outputs
    are dropped (counted in padded_rows). A runtime error is kept, the remaining samples complete
    empty so LoadGen can finish, and the error is raised after the test.
    """

    def __init__(
        self,
        runtime: SupportsRun,
        samples: list[list[np.ndarray]],
        batching: Batching,
        threaded: bool,
    ) -> None:
        self._runtime = runtime
        self._samples = samples
        self._batching = batching
        # Every input of every sample, stacked once: a batch is then one gather per input
        # rather than a concatenation of many small arrays per call.
        self._stacked = _stack_samples(samples) if batching.size > 1 else None
        self.padded_rows = 0
        self.runtime_calls = 0
        self.samples_run = 0
        self.error: BaseException | None = None
        self._queue: queue.SimpleQueue[Any] | None = None
        self._worker: threading.Thread | None = None
        if threaded:
            self._queue = queue.SimpleQueue()
            self._worker = threading.Thread(target=self._serve, name="accelbench-sut", daemon=True)
            self._worker.start()

    def counts(self) -> dict[str, Any]:
        calls = self.runtime_calls
        return {
            "padded_rows": self.padded_rows,
            "runtime_calls": calls,
            "samples_per_call": self.samples_run / calls if calls else None,
        }

    def issue_queries(self, query_samples: list[Any]) -> None:
        if self._queue is None:
            for start in range(0, len(query_samples), self._batching.size):
                self._complete(query_samples[start : start + self._batching.size])
            return
        # In slices of at most one batch: Offline issues every sample in one query, and one
        # queue operation per sample would cost more than a fast accelerator's inference.
        for start in range(0, len(query_samples), self._batching.size):
            self._queue.put(query_samples[start : start + self._batching.size])

    def flush_queries(self) -> None:
        # Nothing is held back waiting for a fuller batch, so there is nothing to flush.
        return None

    def close(self) -> None:
        if self._worker is not None and self._queue is not None:
            self._queue.put(None)
            self._worker.join()

    def _serve(self) -> None:
        """Run what is queued, up to one batch per call, until close() queues None."""
        assert self._queue is not None
        pending: list[Any] = []
        while True:
            if not pending:
                first = self._queue.get()
                if first is None:
                    return
                pending = list(first)
            while len(pending) < self._batching.size:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop once what is pending has run
                    break
                pending.extend(more)
            batch, pending = pending[: self._batching.size], pending[self._batching.size :]
            self._complete(batch)

    def _complete(self, batch: list[Any]) -> None:
        pointers: list[tuple[int, int]] = []
        keep_alive: Any = None
        if self.error is None:
            try:
                pointers, keep_alive = self._infer(batch)
            except Exception as exc:  # raised again after the test, when LoadGen has finished
                self.error = exc
        if self.error is None:
            responses = [
                lg.QuerySampleResponse(sample.id, address, nbytes)
                for sample, (address, nbytes) in zip(batch, pointers, strict=True)
            ]
        else:
            responses = [lg.QuerySampleResponse(sample.id, 0, 0) for sample in batch]
        # The outputs (`keep_alive`) stay referenced until LoadGen has read the responses.
        lg.QuerySamplesComplete(responses)
        del keep_alive

    def _infer(self, batch: list[Any]) -> tuple[list[tuple[int, int]], Any]:
        indices = [sample.index for sample in batch]
        rows = self._batching.rows_for(len(indices))
        if rows > len(indices):
            self.padded_rows += rows - len(indices)
            indices += [indices[-1]] * (rows - len(indices))
        inputs = _batch_inputs(self._samples, self._stacked, indices)
        outputs = [np.asarray(output) for output in self._runtime.run(inputs)]
        self.runtime_calls += 1
        self.samples_run += len(batch)
        return _response_pointers(outputs, len(indices), keep=len(batch))


def warm_up(runtime: SupportsRun, samples: list[list[np.ndarray]], batching: Batching) -> int:
    """Run each batch shape of a dynamic batching once, before LoadGen measures anything, so
    that a runtime that compiles per shape (JAX) does it here rather than in a timed query, as
    MLPerf allows a SUT to warm up; returns the calls made (none for a fixed or unit batch)."""
    if batching.fixed or batching.size == 1:
        return 0
    stacked = _stack_samples(samples)
    for rows in batching.shapes:
        runtime.run(_batch_inputs(samples, stacked, [i % len(samples) for i in range(rows)]))
    return len(batching.shapes)


def _batch_inputs(
    samples: list[list[np.ndarray]], stacked: list[np.ndarray] | None, indices: list[int]
) -> list[np.ndarray]:
    """The inputs of one call: the samples at ``indices``, stacked on axis 0."""
    if len(indices) == 1:
        return samples[indices[0]]
    if stacked is not None:
        return [inputs[indices] for inputs in stacked]
    rows = [samples[i] for i in indices]
    return [np.concatenate(arrays, axis=0) for arrays in zip(*rows, strict=True)]


def _stack_samples(samples: list[list[np.ndarray]]) -> list[np.ndarray] | None:
    """Each input of all samples as one array (sample i is row i), or None when the samples'
    shapes or dtypes differ or a sample is not one row."""
    try:
        stacked = [np.concatenate(arrays, axis=0) for arrays in zip(*samples, strict=True)]
    except ValueError:
        return None
    return stacked if all(len(a) == len(samples) for a in stacked) else None


def _response_pointers(
    outputs: list[np.ndarray], rows: int, keep: int
) -> tuple[list[tuple[int, int]], Any]:
    """Per kept sample, (address, bytes) of its row of every output as one contiguous buffer
    (LoadGen's response), and what must stay alive until LoadGen has read them."""
    for output in outputs:
        if output.ndim == 0 or output.shape[0] != rows:
            raise ValueError(
                f"the runtime returned an output of shape {list(output.shape)} for a batch of "
                f"{rows}; outputs must keep the batch as their first dimension"
            )
    if len(outputs) == 1:
        # One output: its rows already are the buffers; no copy, no object per sample.
        output = np.ascontiguousarray(outputs[0])
        row_bytes = output.nbytes // rows
        base = output.ctypes.data
        return [(base + i * row_bytes, row_bytes) for i in range(keep)], output
    buffers = [
        np.concatenate(
            [
                np.ascontiguousarray(output[i : i + 1]).reshape(-1).view(np.uint8)
                for output in outputs
            ]
        )
        for i in range(keep)
    ]
    return [(buffer.ctypes.data, buffer.nbytes) for buffer in buffers], buffers
