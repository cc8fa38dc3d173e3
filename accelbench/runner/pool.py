"""Cell workers that serve several cells in turn: one process for the cells of one environment.

Starting a worker (Python, numpy, the interpreter package, LoadGen, the sandbox) costs about a
second, as much as a quick LoadGen measurement. Cells whose worker would be set up identically
(`worker_key`: the same model, profile, execution, threads, runtime, sandbox and trust) share
one worker, which runs them one after another (``worker.py --serve``). Each cell keeps what a
worker of its own gave it: its own timeout, its own log and result file, its own peak memory.
A worker that crashes, is killed (out of memory) or hangs fails only the cell in flight, with the
same reason as before, and the next cell gets a new worker; so does the cell after one that
failed in Python, as that worker's state may be damaged. Only the driver writes records.

The cells of a group share one sandbox: it reads every cell's model and cell file and writes
every cell's folder. They are one model's artifacts on one profile, so no cell can reach what
another model's cells hold.
"""

from __future__ import annotations

import itertools
import json
import select
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelbench.benchmarks.scenarios import scenario_info
from accelbench.processes import spawn_group, stop_group
from accelbench.runner.sandbox import Sandbox, exit_status
from accelbench.runner.suite import Cell

WORKER_MODULE = "accelbench.runner.worker"
_MESSAGE_BYTES = 1 << 16
# How long a worker that closed its end of the channel may take to exit before it is killed.
_EXIT_GRACE_S = 30.0
_worker_ids = itertools.count(1)


def worker_key(cell: Cell) -> tuple[Any, ...] | None:
    """What a cell's worker is set up with; cells with equal keys can share a worker. None for
    a cell that gets a worker of its own: most module scenarios (training, input pipeline,
    serving, ...) change their process's global state (Keras, servers, data caches)."""
    if scenario_info(cell.scenario).own_worker:
        return None
    return (
        cell.model,
        cell.profile,
        json.dumps(cell.profile_data, sort_keys=True),
        cell.execution,
        cell.threads,
        cell.runtime,
        cell.sandbox,
        cell.trust_model,
    )


def group_by_worker(cells: Sequence[Cell]) -> list[list[Cell]]:
    """The cells in groups that share a worker, each group where its first cell was and its
    cells in their order (a cell without a key is a group of its own)."""
    groups: dict[Any, list[Cell]] = {}
    for index, cell in enumerate(cells):
        key = worker_key(cell)
        groups.setdefault(key if key is not None else ("alone", index), []).append(cell)
    return list(groups.values())


@dataclass(frozen=True)
class CellFiles:
    """A cell's files: what it runs (cell_file), where its worker writes (work_dir, the
    result_file in it) and its log."""

    cell_file: Path
    result_file: Path
    work_dir: Path
    log_file: Path


@dataclass(frozen=True)
class Outcome:
    """How a cell's worker ended it: its exit status as the one-cell worker would have exited
    (None: killed by the sweep), whether it timed out, the cell's wall time (the first cell of a
    worker includes the worker's start) and which worker ran it."""

    code: int | None
    timed_out: bool
    wall_s: float
    worker: dict[str, int]


class CellWorkers:
    """The worker for a group of cells: started for the first cell, kept for the next, replaced
    after a cell it did not end cleanly. Use as a context manager: the worker is stopped on exit.

    ``read`` and ``write`` are every path the group's cells read and write: the sandbox is set
    up once, with all of them.
    """

    def __init__(
        self,
        box: Sandbox,
        read: Sequence[str],
        write: Sequence[Path],
        label: Path,
        *,
        network: bool = False,
    ) -> None:
        self._box, self._read, self._write, self._label = box, list(read), list(write), label
        self._network = network
        self._proc: subprocess.Popen | None = None
        self._channel: socket.socket | None = None
        self._id = 0
        self._served = 0
        self._started = 0.0

    def __enter__(self) -> CellWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, files: CellFiles, timeout_s: float) -> Outcome:
        """Run one cell on the group's worker (a new one when there is none, or it died idle)."""
        if self._proc is not None and self._proc.poll() is not None:
            self.close()
        fresh = self._proc is None
        if fresh:
            self._start(files.log_file)
        started = self._started if fresh else time.time()
        worker = {"id": self._id, "earlier_cells": self._served}
        self._served += 1
        request = {
            "cell": str(files.cell_file),
            "result": str(files.result_file),
            "log_dir": str(files.work_dir),
        }
        try:
            with open(files.log_file, "ab" if fresh else "wb") as log:
                socket.send_fds(self._channel, [json.dumps(request).encode()], [log.fileno()])
        except OSError:  # the worker died before it could take the cell: its death is the reason
            code = self._ended()
            self.close()
            return Outcome(code, False, time.time() - started, worker)
        except BaseException:
            self.close()
            raise
        try:
            code, timed_out = self._wait(started + timeout_s)
        except BaseException:  # Ctrl-C: the cell in flight is stopped, no record for it
            self.close()
            raise
        wall_s = time.time() - started
        if timed_out or code != 0:
            # Killed, crashed, or failed in Python: the next cell gets a worker of its own.
            code = self._ended() if code is None else code
            self.close()
        return Outcome(code, timed_out, wall_s, worker)

    def close(self) -> None:
        """Kill the worker (if any) and its process group: between cells it holds nothing
        unwritten (a result is written before its answer), and in a cell, that cell is lost."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        if self._proc is not None:
            stop_group(self._proc)
            self._proc = None

    def _start(self, first_log: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [
            sys.executable,
            "-m",
            WORKER_MODULE,
            "--serve",
            str(theirs.fileno()),
            str(self._label),
        ]
        command, env = self._box.command(
            argv, read=self._read, write=self._write, network=self._network
        )
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        self._started = time.time()
        try:
            with open(first_log, "wb") as log:
                # Ctrl-C reaches the sweep only; the sweep stops the worker.
                self._proc = spawn_group(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    pass_fds=(theirs.fileno(),),
                )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()  # the worker's end: once it dies, the sweep reads end-of-file
        self._channel = ours
        self._id = next(_worker_ids)
        self._served = 0

    def _wait(self, deadline: float) -> tuple[int | None, bool]:
        """The answer's exit status, or None when the worker died first; and whether the cell
        timed out (the worker is then killed)."""
        assert self._proc is not None and self._channel is not None
        while True:
            remaining = deadline - time.time()
            if remaining <= 0:
                stop_group(self._proc)  # its exit status stays readable for the record
                return None, True
            ready, _, _ = select.select([self._channel], [], [], min(remaining, 1.0))
            if not ready:
                if self._proc.poll() is not None:
                    return None, False
                continue
            try:
                answer = self._channel.recv(_MESSAGE_BYTES)
            except OSError:
                answer = b""
            if not answer:  # end of file: the worker is gone
                return None, False
            try:
                return int(json.loads(answer)["code"]), False
            except (ValueError, KeyError, TypeError):
                return 1, False  # not an answer this code writes: the worker is not trusted on

    def _ended(self) -> int | None:
        """The worker's exit status as a one-cell worker's (a signal as -N), once it exited."""
        if self._proc is None:
            return None
        try:
            code = self._proc.wait(timeout=_EXIT_GRACE_S)
        except subprocess.TimeoutExpired:
            code = stop_group(self._proc)
        return exit_status(code, self._box)
