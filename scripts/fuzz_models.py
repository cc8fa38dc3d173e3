"""Benchmark damaged .tflite files: no traceback may reach the terminal and no run may hang.

Each mutant of a real model (the test models, plus any given with --models) gets one byte-level
mutation: flipped bytes, a damaged header (the root offset or the 'TFL3' identifier), a
truncation or a zeroed run. `accelbench bench` runs on it as a user would (quick preset, host,
one thread, single-stream, --timeout 30), in a child process with a wall-clock limit. A
traceback in the command's stdout or stderr counts against the target; one in a cell's worker
log is counted apart, as information, since a failed cell keeps its worker's output there.

python scripts/fuzz_models.py --count 1000 [--seed 0] [--workers 2] [--models a.tflite ...]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST_MODELS = REPO / "tests" / "data"
MUTATIONS = ("byte-flip", "header", "identifier", "truncate", "zero-run")
# Byte flips land mostly in weights and make runnable models: the slow, deep path. The rest end
# early in validation or loading, which is where the format's edge cases are.
WEIGHTS = (4, 1, 1, 2, 2)
BENCH_FLAGS = ("--preset", "quick", "--profile", "host", "--threads", "1")
BENCH_FLAGS += ("--scenario", "single-stream", "--timeout", "30", "--no-progress")
# The bench of a valid mutant takes ~4 s; a run still going after this is stuck.
HANG_AFTER_S = 180.0


@dataclass(frozen=True)
class Outcome:
    """One mutant's run: exit status (None: killed as a hang) and the tracebacks it showed."""

    source: str
    mutation: str
    seed: int  # mutate(source bytes, mutation, random.Random(seed)) makes the mutant again
    detail: str
    exit_status: int | None
    terminal_traceback: bool
    worker_log_tracebacks: int
    seconds: float
    worker_error: str = ""  # the last line of the first worker log that holds a traceback
    tail: str = ""


@dataclass
class FuzzReport:
    """Counts over all mutants; the targets are no terminal tracebacks and no hangs."""

    outcomes: list[Outcome] = field(default_factory=list)
    wall_s: float = 0.0

    @property
    def exit_statuses(self) -> Counter:
        return Counter("hang" if o.exit_status is None else o.exit_status for o in self.outcomes)

    @property
    def terminal_tracebacks(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.terminal_traceback]

    @property
    def hangs(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.exit_status is None]

    @property
    def worker_log_tracebacks(self) -> int:
        return sum(o.worker_log_tracebacks for o in self.outcomes)

    def summary(self) -> str:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(self.exit_statuses.items(), key=str))
        by_mutation = Counter(o.mutation for o in self.outcomes)
        lines = [
            f"mutants: {len(self.outcomes)} in {self.wall_s:.0f} s "
            f"({', '.join(f'{m} {by_mutation[m]}' for m in MUTATIONS if by_mutation[m])})",
            f"exit statuses: {statuses}",
            f"tracebacks on the terminal: {len(self.terminal_tracebacks)}",
            f"hangs (no exit within {HANG_AFTER_S:.0f} s): {len(self.hangs)}",
            f"tracebacks in worker logs (information): {self.worker_log_tracebacks}",
        ]
        for o in self.outcomes:
            if o.worker_error:
                lines.append(f"  worker: {o.source} {o.mutation} seed {o.seed}: {o.worker_error}")
        for o in self.terminal_tracebacks + self.hangs:
            lines.append(
                f"  {o.source} {o.mutation} seed {o.seed} ({o.detail}): exit {o.exit_status}\n"
                f"{o.tail}"
            )
        return "\n".join(lines)


def mutate(data: bytes, mutation: str, rng: random.Random) -> tuple[bytes, str]:
    """The mutant of data and a description that reproduces it."""
    buf = bytearray(data)
    if mutation == "byte-flip":
        spots = sorted(rng.randrange(len(buf)) for _ in range(rng.randint(1, 8)))
        for spot in spots:
            buf[spot] ^= rng.randint(1, 255)
        return bytes(buf), f"xor at {spots}"
    if mutation == "header":  # the root table offset and the identifier: the first 8 bytes
        spot = rng.randrange(8)
        buf[spot] ^= rng.randint(1, 255)
        return bytes(buf), f"xor at {spot}"
    if mutation == "identifier":
        new = bytes(rng.randrange(256) for _ in range(4))
        buf[4:8] = new if new != b"TFL3" else b"TFL4"
        return bytes(buf), f"identifier {bytes(buf[4:8])!r}"
    if mutation == "truncate":
        size = rng.randrange(len(buf))
        return bytes(buf[:size]), f"first {size} of {len(buf)} bytes"
    if mutation == "zero-run":
        length = rng.randint(1, 256)
        start = rng.randrange(len(buf))
        buf[start : start + length] = bytes(len(buf[start : start + length]))
        return bytes(buf), f"zeros at {start}..{start + length}"
    raise ValueError(f"unknown mutation {mutation!r}; use one of {', '.join(MUTATIONS)}")


def bench_command(model: Path, out: Path) -> list[str]:
    """`accelbench bench` of one model, as a user runs it."""
    cli = [sys.executable, "-m", "accelbench.cli"]
    return [*cli, "bench", str(model), *BENCH_FLAGS, "--out", str(out)]


def run_command(
    command: list[str], cwd: Path, out: Path, hang_after_s: float = HANG_AFTER_S
) -> tuple[int | None, str, list[str]]:
    """(exit status, None for a hang; stdout and stderr; the cell logs under the run folder out)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    # A new session: a hang is killed with all its children (the worker, the validation child).
    proc = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=hang_after_s)
        status: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        status = None
    logs = [p.read_text(errors="replace") for p in out.glob("cells/*.log")] if out.is_dir() else []
    return status, output, logs


def _one(source: Path, data: bytes, mutation: str, seed: int, root: Path) -> Outcome:
    rng = random.Random(seed)
    mutant, detail = mutate(data, mutation, rng)
    work = root / f"m{seed}"
    work.mkdir()
    path = work / source.name
    path.write_bytes(mutant)
    started = time.perf_counter()
    try:
        status, output, logs = run_command(bench_command(path, work / "run"), work, work / "run")
    finally:
        seconds = time.perf_counter() - started
    shutil.rmtree(work, ignore_errors=True)  # one mutant's files at a time per worker
    return Outcome(
        source=source.name,
        mutation=mutation,
        seed=seed,
        detail=detail,
        exit_status=status,
        terminal_traceback="Traceback" in output,
        worker_log_tracebacks=sum(log.count("Traceback") for log in logs),
        worker_error=next((log.strip().splitlines()[-1] for log in logs if "Traceback" in log), ""),
        seconds=seconds,
        tail="\n".join(output.strip().splitlines()[-20:]),
    )


def fuzz(
    count: int,
    seed: int = 0,
    models: list[Path] | None = None,
    workers: int = 2,
    progress: bool = False,
) -> FuzzReport:
    """Mutate and benchmark `count` mutants of the test models and `models`; the report."""
    sources = sorted(TEST_MODELS.glob("*.tflite")) + [Path(m) for m in models or []]
    contents = {s: s.read_bytes() for s in sources}
    rng = random.Random(seed)
    plan = [
        (rng.choice(sources), rng.choices(MUTATIONS, WEIGHTS)[0], rng.randrange(2**32))
        for _ in range(count)
    ]
    report = FuzzReport()
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="accelbench-fuzz-") as tmp,
        ThreadPoolExecutor(max_workers=workers) as pool,
    ):
        futures = [
            pool.submit(_one, source, contents[source], mutation, mutant_seed, Path(tmp))
            for source, mutation, mutant_seed in plan
        ]
        for done, future in enumerate(futures, start=1):
            outcome = future.result()
            report.outcomes.append(outcome)
            if progress and (done % 25 == 0 or outcome.terminal_traceback):
                flag = " TRACEBACK" if outcome.terminal_traceback else ""
                print(
                    f"[{done}/{count}] {time.perf_counter() - started:.0f} s, "
                    f"exits {dict(report.exit_statuses)}{flag}",
                    flush=True,
                )
    report.wall_s = time.perf_counter() - started
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100, help="mutants to run (default 100)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    ap.add_argument("--workers", type=int, default=2, help="mutants run at once (default 2)")
    ap.add_argument("--models", nargs="*", default=[], help="more .tflite files to mutate")
    args = ap.parse_args(argv)
    report = fuzz(args.count, args.seed, [Path(m) for m in args.models], args.workers, True)
    print(report.summary())
    return 1 if report.terminal_tracebacks or report.hangs else 0


if __name__ == "__main__":
    sys.exit(main())
