"""Server-side dynamic batching with TensorFlow Serving's parameters, on the server's event loop.

Requests join an open batch; the batch closes when it is full, or, once ``batch_timeout_micros``
has passed since its first request, as soon as a batch thread is free (so batches keep growing
while every thread is busy, as in TF Serving's shared batch scheduler). Closed batches wait in a
queue for one of ``num_batch_threads`` threads; when the queue and the open batch together
already hold ``max_enqueued_batches`` batches, a new request is refused at once (QueueFull).
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from accelbench.errors import UsageError

# One request's inputs (one array per model input, dimension 0 = its instances).
Arrays = list[np.ndarray]
# Runs several requests as one batch on a worker thread: a future (of the event loop) of each
# request's outputs.
ExecuteBatch = Callable[[list[Arrays]], "asyncio.Future[list[Arrays]]"]


def default_batch_threads() -> int:
    """TF Serving's default for num_batch_threads: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class BatchingConfig:
    """TF Serving's batching parameters (names as in its batching_parameters file)."""

    max_batch_size: int
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = field(default_factory=default_batch_threads)

    def __post_init__(self) -> None:
        limits = {
            "max_batch_size": 1,
            "batch_timeout_micros": 0,
            "max_enqueued_batches": 1,
            "num_batch_threads": 1,
        }
        for name, least in limits.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise UsageError(
                    f"batching parameter {name} must be an integer >= {least}, got {value!r}"
                )

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class QueueFull(Exception):
    """The batch queue already holds max_enqueued_batches batches: refuse, do not wait."""


class BatchTooLarge(ValueError):
    """One request has more instances than max_batch_size."""


@dataclass
class _Task:
    arrays: Arrays
    rows: int
    future: asyncio.Future


@dataclass
class _Batch:
    tasks: list[_Task] = field(default_factory=list)
    rows: int = 0
    timed_out: bool = False  # set by its timer: asyncio may fire a timer a hair before its time


class BatchScheduler:
    """Queues requests into batches and runs each batch through ``execute`` on a free thread.

    Every method runs on the event loop that created the scheduler; only ``execute`` (and the
    model) run on worker threads, so no lock is needed here.
    """

    def __init__(self, config: BatchingConfig, execute: ExecuteBatch) -> None:
        self.config = config
        self._execute = execute
        self._loop = asyncio.get_running_loop()
        self._open: _Batch | None = None
        self._queued: deque[_Batch] = deque()
        self._running = 0
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def queued_batches(self) -> int:
        """Batches waiting for a thread, the open one included."""
        return len(self._queued) + (self._open is not None)

    @property
    def running_batches(self) -> int:
        return self._running

    async def submit(self, arrays: Arrays, rows: int) -> Arrays:
        """Run one request's inputs (rows instances) in a batch; returns its outputs."""
        if self._closed:
            raise RuntimeError("the batch scheduler is shut down")
        limit = self.config.max_batch_size
        if rows > limit:
            raise BatchTooLarge(
                f"the request has {rows} instances, more than max_batch_size={limit}; "
                f"send at most {limit} instances per request"
            )
        if self._open is not None and self._open.rows + rows > limit:
            self._queue_open()
        if self._open is None:
            if len(self._queued) >= self.config.max_enqueued_batches:
                raise QueueFull(
                    f"server overloaded: {len(self._queued)} batches are already queued "
                    f"(max_enqueued_batches={self.config.max_enqueued_batches}); retry later"
                )
            self._open = _Batch()
            delay = self.config.batch_timeout_micros / 1e6
            self._timer = self._loop.call_later(delay, self._time_out, self._open)
        task = _Task(arrays, rows, self._loop.create_future())
        self._open.tasks.append(task)
        self._open.rows += rows
        if self._open.rows == limit:
            self._queue_open()
        return await task.future

    def _queue_open(self) -> None:
        assert self._open is not None
        self._queued.append(self._open)
        self._open = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._dispatch()

    def _time_out(self, batch: _Batch) -> None:
        batch.timed_out = True
        self._timer = None
        self._dispatch()

    def _dispatch(self) -> None:
        """Start queued batches, then the open one if its timeout passed, on free threads."""
        while self._running < self.config.num_batch_threads:
            if self._queued:
                batch = self._queued.popleft()
            elif self._open is not None and self._open.timed_out:
                batch, self._open = self._open, None
            else:
                return
            self._start(batch)

    def _start(self, batch: _Batch) -> None:
        self._running += 1
        try:
            future = self._execute([t.arrays for t in batch.tasks])
        except BaseException as err:  # the model is closed: fail this batch, keep going
            self._running -= 1
            _fail(batch.tasks, err)
            return
        future.add_done_callback(lambda done: self._finished(batch, done))

    def _finished(self, batch: _Batch, done: asyncio.Future) -> None:
        self._running -= 1
        err = done.exception() if not done.cancelled() else asyncio.CancelledError()
        if err is not None:
            _fail(batch.tasks, err)
        else:
            for task, outputs in zip(batch.tasks, done.result(), strict=True):
                if not task.future.done():  # the client may have gone away
                    task.future.set_result(outputs)
        if not self._closed:
            self._dispatch()

    def close(self) -> None:
        """Refuse new requests and fail the ones still waiting (the server is stopping)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        waiting = list(self._queued) + ([self._open] if self._open else [])
        self._queued.clear()
        self._open = None
        for batch in waiting:
            _fail(batch.tasks, RuntimeError("the server is shutting down"))


def _fail(tasks: list[_Task], err: BaseException) -> None:
    for task in tasks:
        if not task.future.done():
            task.future.set_exception(err)
