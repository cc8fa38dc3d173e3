"""The Ray transport: cells as Ray tasks on a cluster's nodes, many at once; the driver writes
records.

A cell of a ``transport: ray`` profile runs on the node that serves the profile: that node
advertises the custom resource ``accelbench:<profile>`` (one unit: one cell of the profile at a
time, so that two measurements never share the device). With ``--spread`` (``$ACCELBENCH_SPREAD``),
the sweep's ``local`` and ``emulated`` LoadGen and paired cells run too, each on any node with
as many free CPUs as the cell has threads (see `spreadable`). ``accelbench agent start`` starts a
node; ``--cluster HOST:PORT`` (or ``$ACCELBENCH_CLUSTER``) makes the sweep a Ray driver.

The driver submits every cell that can start now, collects each as it finishes (``ray.wait``)
and submits the next; a cell's timeout counts from its submission, which is its start, since
the driver never submits more than the cluster has room for. Each task carries the files its
cell names (the artifact, its inputs, a paired cell's sides) by content, runs the same worker
as a local cell on the node, and returns the cell's result. Ray is imported only here, and
only when a cell goes to the cluster.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CLUSTER_ENV = "ACCELBENCH_CLUSTER"
SPREAD_ENV = "ACCELBENCH_SPREAD"
RESOURCE_PREFIX = "accelbench:"
# How often the driver looks at its cells' deadlines while none finishes.
_POLL_S = 0.5
# Time the node keeps back from a cell's timeout: it stops the worker and answers "timed out"
# before the driver's deadline, which then cancels the task only when the node does not answer.
NODE_TIMEOUT_MARGIN_S = 5.0


def resource_name(profile: str) -> str:
    """The custom resource a node serving ``profile`` advertises."""
    return f"{RESOURCE_PREFIX}{profile}"


def is_ray_cell(profile_data: dict[str, Any], execution: str) -> bool:
    remote = profile_data.get("remote") or {}
    return execution == "remote" and remote.get("transport") == "ray"


def spread_requested() -> bool:
    """Whether this sweep sends its spreadable cells to the cluster (``--spread``)."""
    return bool(os.environ.get(SPREAD_ENV)) and bool(os.environ.get(CLUSTER_ENV))


def spreadable(cell: Any) -> bool:
    """Whether ``--spread`` may send ``cell`` to a node: a ``local`` or ``emulated`` cell of a
    LoadGen scenario or a paired cell (its worker needs only the files the cell names, and
    measures the node's CPU), not on an attached GPU/TPU (the driver's). Training, input-pipeline
    and serving cells stay on the driver: they read data sets and folders of the driver, and a
    serving cell starts its server and load on one machine's loopback."""
    from accelbench.benchmarks.scenarios import scenario_info
    from accelbench.runner.suite import PAIRED_SCENARIO

    if cell.execution not in ("local", "emulated") or cell.on_accelerator:
        return False
    return cell.scenario == PAIRED_SCENARIO or scenario_info(cell.scenario).kind == "loadgen"


def cluster_cells(cells: Sequence[Any]) -> list[Any]:
    """The cells of ``cells`` that go to the cluster: every cell of a ray profile; with
    ``--spread``, every spreadable cell that some node has the CPUs for (others stay here)."""
    chosen = [c for c in cells if is_ray_cell(c.profile_data, c.execution)]
    candidates = [c for c in cells if spreadable(c)] if spread_requested() else []
    if not candidates:
        return chosen
    unreachable = cluster_unreachable(os.environ[CLUSTER_ENV])
    if unreachable:
        print(
            f"accelbench: {len(candidates)} cell(s) stay on this machine: {unreachable}",
            file=sys.stderr,
        )
        return chosen
    largest = max(_node_cpus().values(), default=0)
    fits = [c for c in candidates if c.threads <= largest]
    if len(fits) < len(candidates):
        print(
            f"accelbench: {len(candidates) - len(fits)} cell(s) stay on this machine: no node of "
            f"the Ray cluster offers more than {largest:g} CPUs, and --spread sends a cell of N "
            "threads to a node with N free CPUs",
            file=sys.stderr,
        )
    taken = {id(c) for c in (*chosen, *fits)}
    return [c for c in cells if id(c) in taken]


@dataclass
class ClusterJob:
    """A cell bound for the cluster, and where its result and its node's worker output go."""

    cell: Any
    result_file: Path
    log_file: Path
    started: float = 0.0
    wall_s: float = 0.0
    timed_out: bool = False
    code: int = 0
    # What the task asks the cluster for, and the pool of room it counts against.
    needs: dict[str, float] = field(default_factory=dict)
    pool: str = ""


def run_on_cluster(
    jobs: Sequence[ClusterJob], on_start: Callable[[Any], None] | None = None
) -> Iterator[ClusterJob]:
    """Run every job's cell on the cluster, as many at once as it has room for; yield each job
    as its cell ends, with its result in ``result_file`` (its node's worker output in
    ``log_file``), its exit status as a worker's, whether it timed out, and its wall time.

    Stopping the iteration (Ctrl-C in the caller or here) leaves the cells still in flight
    without a result; their tasks end with this driver (see the ``finally`` below)."""
    for job in jobs:
        job.log_file.write_text(f"cell {job.cell.cell_id} on the Ray cluster\n", encoding="utf-8")
    address = os.environ.get(CLUSTER_ENV)
    if not address:
        for job in jobs:
            yield _finish(job, "skipped", _no_cluster(job.cell.profile))
        return
    unreachable = cluster_unreachable(address)
    if unreachable:
        for job in jobs:
            yield _finish(job, "failed", unreachable)
        return
    import ray
    from ray.exceptions import RayError

    _connect(address)
    room = {
        k: v
        for k, v in ray.cluster_resources().items()
        if k == "CPU" or k.startswith(RESOURCE_PREFIX)
    }
    pending: list[ClusterJob] = []
    for job in jobs:
        cell = job.cell
        if is_ray_cell(cell.profile_data, cell.execution):
            job.pool = resource_name(cell.profile)
            job.needs = {job.pool: 1}
            if room.get(job.pool, 0) <= 0:
                reason = (
                    f"no node of the Ray cluster at {address} serves {cell.profile}; start one "
                    f"there with 'accelbench agent start --profile {cell.profile}.yaml "
                    f"--address {address}'"
                )
                yield _finish(job, "skipped", reason)
                continue
        else:
            job.pool, job.needs = "CPU", {"CPU": float(cell.threads)}
        pending.append(job)
    shipped: dict[str, Any] = {}  # a file's content in Ray's object store, put once per sweep
    in_flight: dict[Any, ClusterJob] = {}
    used: dict[str, float] = {}
    try:
        while pending or in_flight:
            for job in list(pending):
                amount = job.needs[job.pool]
                if used.get(job.pool, 0) + amount > room.get(job.pool, 0) and in_flight:
                    continue
                pending.remove(job)
                used[job.pool] = used.get(job.pool, 0) + amount
                if on_start:
                    on_start(job.cell)
                in_flight[_submit(job, shipped)] = job
            now = time.time()
            wait_s = min(j.started + j.cell.timeout_s for j in in_flight.values()) - now
            ready, _ = ray.wait(
                list(in_flight), num_returns=1, timeout=max(0.0, min(wait_s, _POLL_S))
            )
            for ref in ready:
                job = in_flight.pop(ref)
                used[job.pool] -= job.needs[job.pool]
                try:
                    result = ray.get(ref)
                except RayError as err:
                    yield _finish(job, "failed", _node_failure(job.cell, err))
                    continue
                job.wall_s = time.time() - job.started
                with open(job.log_file, "a", encoding="utf-8") as log:
                    log.write(result.pop("worker_output", ""))
                job.result_file.write_text(json.dumps(result), encoding="utf-8")
                job.code = 1 if result.get("status") == "failed" else 0
                yield job
            now = time.time()
            for ref, job in list(in_flight.items()):
                if now >= job.started + job.cell.timeout_s:
                    ray.cancel(ref, force=True)
                    del in_flight[ref]
                    used[job.pool] -= job.needs[job.pool]
                    job.timed_out = True
                    yield _finish(job, "failed", f"timed out after {job.cell.timeout_s:g} s")
    finally:
        # Ctrl-C, or the caller stopped: the cells in flight get no record. Their tasks are not
        # cancelled here: Ray 2.60's driver aborts when a cancelled task's reply crosses the
        # cancellation ("Tried to complete task that was not pending"), which Ctrl-C makes
        # likely. They end with this driver: Ray kills the workers of a job whose driver exits,
        # and a cell's worker dies with the Ray worker that started it.
        in_flight.clear()


def cluster_unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """Why the Ray head at ``address`` (HOST:PORT) takes no connection, or None when it does.

    Checked before ``ray.init``, which would retry an address that refuses for minutes and then
    end the process."""
    import socket

    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return None
    except (OSError, ValueError) as err:
        why = getattr(err, "strerror", None) or str(err) or type(err).__name__
        return (
            f"the Ray cluster at {address} cannot be reached ({why}); start its head there with "
            f"'accelbench agent start --head --port {port or 6379}', or give the address it "
            "printed"
        )


def _connect(address: str) -> None:
    import ray

    if not ray.is_initialized():
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)


def _node_cpus() -> dict[str, float]:
    """Each live node's CPUs, by node id (connecting to the cluster first)."""
    import ray

    _connect(os.environ[CLUSTER_ENV])
    return {
        n["NodeID"]: n.get("Resources", {}).get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")
    }


def _submit(job: ClusterJob, shipped: dict[str, Any]) -> Any:
    """The task of ``job``'s cell, submitted; its start time set."""
    import ray

    cell = job.cell.to_dict()
    originals = _named_files(cell)
    for path in map(os.path.abspath, originals):
        if path not in shipped:
            shipped[path] = ray.put(_read_tree(Path(path)))
    spread = not is_ray_cell(job.cell.profile_data, job.cell.execution)
    options: dict[str, Any] = {"max_retries": 0, "retry_exceptions": False}
    if spread:
        options["num_cpus"] = job.needs["CPU"]
    else:
        options.update(resources=job.needs, num_cpus=0)
    task = ray.remote(_measure_on_node).options(**options)
    job.started = time.time()
    contents = (shipped[os.path.abspath(p)] for p in originals)
    return task.remote(cell, spread, originals, *contents)


def _finish(job: ClusterJob, status: str, reason: str) -> ClusterJob:
    """``job`` ended without a result from its node: ``status`` and ``reason`` are its result."""
    if job.started:
        job.wall_s = time.time() - job.started
    job.result_file.write_text(json.dumps({"status": status, "error": reason}), encoding="utf-8")
    job.code = 1 if status == "failed" else 0
    return job


def _node_failure(cell: Any, err: BaseException) -> str:
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    if is_ray_cell(cell.profile_data, cell.execution):
        return f"the Ray node serving {cell.profile} failed: {type(err).__name__}: {first}"
    return f"the Ray node running this --spread cell failed: {type(err).__name__}: {first}"


def _no_cluster(profile: str) -> str:
    return (
        f"{profile} is served by a Ray cluster, and no cluster is named; give --cluster "
        f"HOST:PORT (or set {CLUSTER_ENV})"
    )


def _named_files(cell: dict[str, Any]) -> list[str]:
    """The files and folders a cell names that its worker reads: its artifact, its inputs, a
    paired or A/B cell's other artifacts."""
    settings = cell.get("settings") or {}
    paths = [cell.get("model_path"), cell.get("inputs_path")]
    paths.append((settings.get("ab") or {}).get("new_path"))
    paths += [side.get("path") for side in settings.get("paired_sides") or []]
    return sorted({p for p in paths if p and Path(p).exists()})


def _read_tree(path: Path) -> bytes | dict[str, bytes]:
    """A file's bytes, or a folder's files (a SavedModel) by their path inside it."""
    if path.is_file():
        return path.read_bytes()
    return {
        str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()
    }


def _write_tree(target: Path, content: bytes | dict[str, bytes]) -> None:
    if isinstance(content, bytes):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        return
    for name, data in content.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        (target / name).write_bytes(data)


def _replace_paths(value: Any, paths: dict[str, str]) -> Any:
    """``value`` with every string that names a shipped file replaced by its copy's path."""
    if isinstance(value, dict):
        return {k: _replace_paths(v, paths) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_paths(v, paths) for v in value]
    if isinstance(value, str):
        return paths.get(value, value)
    return value


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _dying_with_parent(command: list[str]) -> list[str]:
    """``command`` made to die with the Ray worker that starts it (a cancelled task's process is
    killed, and its measurement must not go on beside the next cell's): util-linux's setpriv,
    where the node has it (bubblewrap's --die-with-parent does the same for a sandboxed one)."""
    import shutil

    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--", *command] if setpriv else command


def _measure_on_node(
    cell: dict[str, Any], spread: bool, originals: list[str], *contents: Any
) -> dict[str, Any]:
    """On the node: the cell's files in a folder of its own, the worker run on them as a local
    cell's, and where it ran: a ray profile's cell, the record's remote part (the node and its
    fingerprint), unsandboxed; a spread cell, its node part and the node's environment, in the
    sandbox the cell asks for where the node has one."""
    import shutil
    import subprocess
    import tempfile

    import ray

    from accelbench.runner.sandbox import Sandbox
    from accelbench.runner.sandbox import choose as choose_sandbox

    started_at = _now()
    folder = Path(tempfile.mkdtemp(prefix="accelbench-ray-cell-"))
    try:
        paths = {}
        for index, (original, content) in enumerate(zip(originals, contents, strict=True)):
            copy = folder / "files" / str(index) / Path(original).name
            _write_tree(copy, content)
            paths[original] = str(copy)
        local = _replace_paths(cell, paths)
        if not spread:
            local["execution"] = "local"
        work = folder / "work"
        work.mkdir()
        cell_file, result_file = folder / "cell.json", work / "result.json"
        cell_file.write_text(json.dumps(local), encoding="utf-8")
        argv = [sys.executable, "-m", "accelbench.runner.worker", cell_file, result_file, work]
        box = choose_sandbox(bool(cell.get("sandbox", True))) if spread else Sandbox("off")
        command, env = box.command(
            list(map(str, argv)), read=[*paths.values(), str(cell_file)], write=[work]
        )
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        clock = time.monotonic()
        timeout_s = float(cell["timeout_s"])
        timed_out = False
        with _cores_of_its_own(int(cell["threads"]) if spread else 0):
            try:
                done = subprocess.run(
                    _dying_with_parent(command),
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=max(timeout_s - NODE_TIMEOUT_MARGIN_S, timeout_s / 2),
                    check=False,
                )
                output = done.stdout + done.stderr
                ended = f"exit status {done.returncode}"
            except subprocess.TimeoutExpired as expired:
                output = _text(expired.stdout) + _text(expired.stderr)
                ended, timed_out = f"timed out after {timeout_s:g} s", True
        node_wall_s = time.monotonic() - clock
        if timed_out:
            result = {"status": "failed", "error": ended}
        elif result_file.is_file():
            try:
                result = json.loads(result_file.read_text(encoding="utf-8", errors="replace"))
            except ValueError:
                result = {
                    "status": "failed",
                    "error": "the worker's result on the node is unreadable",
                }
        else:
            tail = (output.strip().splitlines() or [ended])[-1]
            result = {"status": "failed", "error": f"the worker on the node wrote nothing: {tail}"}
        # The files as the driver names them, not by their copies here, which go with the cell.
        result = _replace_paths(result, {copy: original for original, copy in paths.items()})
        context = ray.get_runtime_context()
        where = {
            "transport": "ray",
            "host": ray.util.get_node_ip_address(),
            "node_id": context.get_node_id(),
            "started_at": started_at,
            "ended_at": _now(),
        }
        if spread:
            import platform

            result["node"] = {**where, "hostname": platform.node()}
            result["environment"] = _environment()
            result["sandbox_fields"] = box.record_fields()
        else:
            from accelbench.hardware_profiles import HardwareProfile
            from accelbench.runner.devices.cell import contradictions
            from accelbench.runner.devices.device_cell import fingerprint

            found = fingerprint()
            profile = HardwareProfile.model_validate(cell["profile_data"])
            result["remote"] = {
                **where,
                "fingerprint": found,
                "timing": "loadgen",
                "folder": str(folder),
                "contradictions": contradictions(profile, found),
            }
        result.setdefault("settings", {})["node_wall_s"] = node_wall_s
        result["worker_output"] = output
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _cores_of_its_own(count: int) -> Iterator[None]:
    """Run what this thread starts inside on ``count`` cores of this machine that no other
    spread cell holds, so that cells measured at once never share a core (Ray counts CPUs but
    pins nothing, and an emulated cell pins itself to the first cores it may use). A core is
    held by a lock on a file of its own under the temporary folder, which every node of this
    machine shares and the kernel releases when its holder ends. Without enough free cores (or
    on a system without affinity), nothing is pinned."""
    import fcntl
    import tempfile

    if count <= 0 or not hasattr(os, "sched_setaffinity"):
        yield
        return
    folder = Path(tempfile.gettempdir()) / "accelbench-cores"
    folder.mkdir(exist_ok=True)
    allowed = sorted(os.sched_getaffinity(0))
    held: list[tuple[int, int]] = []
    try:
        for core in allowed:
            if len(held) == count:
                break
            fd = os.open(folder / str(core), os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            held.append((core, fd))
        if len(held) < count:
            yield
            return
        # This thread's affinity, which the worker it starts inherits; restored after.
        os.sched_setaffinity(0, [core for core, _ in held])
        try:
            yield
        finally:
            os.sched_setaffinity(0, allowed)
    finally:
        for _, fd in held:
            os.close(fd)


def _text(data: bytes | str | None) -> str:
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data or ""


_ENVIRONMENT: dict[str, Any] | None = None


def _environment() -> dict[str, Any]:
    """This node's environment fingerprint, found once per Ray worker process."""
    global _ENVIRONMENT
    if _ENVIRONMENT is None:
        from accelbench.hardware_profiles import environment_fingerprint

        _ENVIRONMENT = environment_fingerprint()
    return _ENVIRONMENT


# -- The nodes `accelbench agent start` started on this machine, so that `agent stop` stops them
# alone (`ray stop` stops every Ray process of the machine, other users' and clusters' included).

AGENT_FILE = "agent-nodes.json"


def _agent_file() -> Path:
    from accelbench.hardware_profiles.calibrate import cache_dir

    return cache_dir() / AGENT_FILE


def start_node(argv: list[str]) -> int:
    """Run ``ray start`` (``argv``) and remember the processes it leaves running (the node's
    daemons: they outlive ``ray start``, which made this process their parent as a Linux child
    subreaper); its exit status."""
    import ctypes
    import subprocess

    import psutil

    try:  # PR_SET_CHILD_SUBREAPER: ray start's orphaned daemons become this process's children
        subreaper = sys.platform.startswith("linux") and ctypes.CDLL(None).prctl(36, 1) == 0
    except (OSError, AttributeError):
        subreaper = False
    code = subprocess.run(argv, check=False).returncode
    if code != 0 or not subreaper:
        return code
    started = [
        {"pid": p.pid, "create_time": p.create_time(), "cmdline": " ".join(p.cmdline())[:200]}
        for p in psutil.Process().children(recursive=True)
        if p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    ]
    path = _agent_file()
    nodes = _read_agent_file(path)
    nodes.append({"started_at": _now(), "argv": argv, "processes": started})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nodes, indent=2), encoding="utf-8")
    return code


def stop_nodes(grace_s: float = 10.0) -> int:
    """Stop the nodes ``start_node`` started here that still run (their daemons and the Ray
    workers under them), SIGTERM first, SIGKILL after ``grace_s``; how many processes were
    stopped. A recorded pid that now names another process (its start time differs) is left."""
    import psutil

    path = _agent_file()
    targets: dict[int, psutil.Process] = {}
    for node in _read_agent_file(path):
        for entry in node.get("processes", []):
            try:
                proc = psutil.Process(entry["pid"])
                if abs(proc.create_time() - entry["create_time"]) > 0.01:
                    continue
                for p in [proc, *proc.children(recursive=True)]:
                    targets[p.pid] = p
            except (psutil.NoSuchProcess, psutil.AccessDenied, KeyError):
                continue
    for proc in targets.values():
        with _quiet(psutil):
            proc.terminate()
    _, alive = psutil.wait_procs(list(targets.values()), timeout=grace_s)
    for proc in alive:
        with _quiet(psutil):
            proc.kill()
    psutil.wait_procs(alive, timeout=grace_s)
    path.unlink(missing_ok=True)
    return len(targets)


def _quiet(psutil: Any) -> Any:
    import contextlib

    return contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied)


def _read_agent_file(path: Path) -> list[dict[str, Any]]:
    try:
        nodes = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return nodes if isinstance(nodes, list) else []
