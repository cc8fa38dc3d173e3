"""spawn_group starts a child in a session of its own; stop_group ends the child's whole group
(SIGTERM and a grace where asked, then SIGKILL) and reaps it, also when it is gone already."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from accelbench.processes import spawn_group, stop_group

# A child that starts a grandchild (in its group), prints the grandchild's pid, and sleeps.
PARENT = (
    "import signal, subprocess, sys, time\n"
    "if sys.argv[1] == 'ignore-term':\n"
    "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def _start(term: str) -> tuple[subprocess.Popen, int]:
    proc = spawn_group([sys.executable, "-c", PARENT, term], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


def _ended(pid: int, within_s: float = 5.0) -> bool:
    """The process has exited (gone, or a zombie its new parent has not reaped yet)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rpartition(")")[2].split()[0] == "Z":
            return True
        time.sleep(0.05)
    return False


def test_a_child_that_ignores_sigterm_is_killed_with_its_group_after_the_grace() -> None:
    proc, grandchild = _start("ignore-term")
    assert os.getsid(proc.pid) == proc.pid  # a session, and so a group, of its own
    started = time.monotonic()
    code = stop_group(proc, grace_s=0.5)
    assert time.monotonic() - started >= 0.5
    assert code == -signal.SIGKILL
    assert proc.returncode == code  # reaped
    assert _ended(grandchild)


def test_a_child_that_stops_on_sigterm_gets_no_longer_than_it_needs() -> None:
    proc, grandchild = _start("default")
    started = time.monotonic()
    assert stop_group(proc, grace_s=30) == -signal.SIGTERM
    assert time.monotonic() - started < 10
    assert _ended(grandchild)


def test_without_a_grace_the_group_is_killed_at_once() -> None:
    proc, grandchild = _start("default")
    assert stop_group(proc) == -signal.SIGKILL
    assert _ended(grandchild)


def test_a_child_that_exited_keeps_its_status_and_stopping_twice_is_harmless() -> None:
    proc = spawn_group([sys.executable, "-c", "raise SystemExit(3)"])
    while proc.poll() is None:
        time.sleep(0.01)
    assert stop_group(proc, grace_s=5) == 3
    assert stop_group(proc) == 3  # the group is gone: ProcessLookupError is not an error here
