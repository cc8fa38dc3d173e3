"""Child processes in a process group of their own: started apart from the terminal, stopped whole.

A child started in a new session (and so a new process group) does not get the terminal's
Ctrl-C: that reaches this process only, which then stops the child itself. Stopping signals the
whole group, so whatever the child started (a sandbox's processes, a server's workers) ends with
it. The worker, the preparation worker, the suite's model server, `accelbench serve`'s sandboxed
server and the distributed training workers are all started and stopped here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any


def spawn_group(
    command: Sequence[str],
    *,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
    env: Mapping[str, str] | None = None,
    pass_fds: Sequence[int] = (),
    preexec_fn: Callable[[], Any] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``command`` as the leader of a new session and process group, reading no input.

    ``stdout``, ``stderr``, ``env``, ``pass_fds`` and ``preexec_fn`` are subprocess.Popen's."""
    return subprocess.Popen(
        command,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        env=env,
        pass_fds=pass_fds,
        preexec_fn=preexec_fn,
        start_new_session=True,
    )


def stop_group(proc: subprocess.Popen, grace_s: float = 0.0) -> int:
    """End the process group ``proc`` leads and reap ``proc``; its exit status (-N for signal N).

    With ``grace_s``, a leader still running is sent SIGTERM first and given that many seconds
    to exit. Then the whole group is sent SIGKILL, whether or not the leader has exited: what it
    started is in its group. A group that is gone already (ProcessLookupError), or that holds
    only exited processes not yet reaped (macOS answers PermissionError for one), is not signalled.
    """
    if grace_s > 0 and proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace_s)
    _signal_group(proc, signal.SIGKILL)
    return proc.wait()


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
