"""The Ray transport: a cell of a ``transport: ray`` profile runs as a Ray task on the cluster
node that serves the profile, through the same worker as a local cell; the driver writes records.

A node serves a profile by advertising the custom resource ``accelbench:<profile>`` (one unit:
one cell at a time, so that two measurements never share the node). ``accelbench agent start``
starts such a node; ``--cluster HOST:PORT`` (or ``$ACCELBENCH_CLUSTER``) makes the sweep a Ray
driver. Ray is imported only here, and only when a ray cell runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

CLUSTER_ENV = "ACCELBENCH_CLUSTER"
RESOURCE_PREFIX = "accelbench:"


def resource_name(profile: str) -> str:
    """The custom resource a node serving ``profile`` advertises."""
    return f"{RESOURCE_PREFIX}{profile}"


def is_ray_cell(profile_data: dict[str, Any], execution: str) -> bool:
    remote = profile_data.get("remote") or {}
    return execution == "remote" and remote.get("transport") == "ray"


def run_on_cluster(cell: Any, result_file: Path, log_file: Path) -> tuple[int, bool]:
    """Run ``cell`` on the node that serves its profile; write its result to ``result_file``
    and the node's worker output to ``log_file``; returns (exit status as a worker's, timed
    out)."""
    log_file.write_text(f"cell {cell.cell_id} on the Ray cluster\n", encoding="utf-8")
    address = os.environ.get(CLUSTER_ENV)
    if not address:
        return _write(result_file, "skipped", _no_cluster(cell.profile)), False
    import ray
    from ray.exceptions import GetTimeoutError, RayError

    if not ray.is_initialized():
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    resource = resource_name(cell.profile)
    if ray.cluster_resources().get(resource, 0) <= 0:
        reason = (
            f"no node of the Ray cluster at {address} serves {cell.profile}; start one there with "
            f"'accelbench agent start --profile {cell.profile}.yaml --address {address}'"
        )
        return _write(result_file, "skipped", reason), False
    model = Path(cell.model_path)
    task = ray.remote(_measure_on_node).options(
        resources={resource: 1}, num_cpus=0, max_retries=0, retry_exceptions=False
    )
    ref = task.remote(cell.to_dict(), model.name, model.read_bytes())
    try:
        result = ray.get(ref, timeout=cell.timeout_s)
    except GetTimeoutError:
        ray.cancel(ref, force=True)
        return _write(result_file, "failed", f"timed out after {cell.timeout_s:g} s"), True
    except RayError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        reason = f"the Ray node serving {cell.profile} failed: {type(err).__name__}: {first}"
        return _write(result_file, "failed", reason), False
    with open(log_file, "a", encoding="utf-8") as log:
        log.write(result.pop("worker_output", ""))
    result_file.write_text(json.dumps(result), encoding="utf-8")
    return (1 if result.get("status") == "failed" else 0), False


def _no_cluster(profile: str) -> str:
    return (
        f"{profile} is served by a Ray cluster, and no cluster is named; give --cluster "
        f"HOST:PORT (or set {CLUSTER_ENV})"
    )


def _write(result_file: Path, status: str, reason: str) -> int:
    result_file.write_text(json.dumps({"status": status, "error": reason}), encoding="utf-8")
    return 1 if status == "failed" else 0


def _measure_on_node(cell: dict[str, Any], model_name: str, model_bytes: bytes) -> dict[str, Any]:
    """On the node: the cell's artifact in a folder of its own, the worker run on it as a local
    cell's, and the record's remote part (the node and its fingerprint)."""
    import shutil
    import subprocess
    import sys
    import tempfile

    import ray

    from accelbench.hardware_profiles import HardwareProfile
    from accelbench.runner.devices.cell import contradictions
    from accelbench.runner.devices.device_cell import fingerprint

    folder = Path(tempfile.mkdtemp(prefix="accelbench-ray-cell-"))
    try:
        model = folder / model_name
        model.write_bytes(model_bytes)
        local = {**cell, "model_path": str(model), "execution": "local"}
        cell_file, result_file = folder / "cell.json", folder / "result.json"
        cell_file.write_text(json.dumps(local), encoding="utf-8")
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "accelbench.runner.worker",
                str(cell_file),
                str(result_file),
                str(folder),
            ],
            capture_output=True,
            text=True,
            timeout=cell["timeout_s"],
            check=False,
        )
        if result_file.is_file():
            result = json.loads(result_file.read_text(encoding="utf-8"))
        else:
            tail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
            result = {"status": "failed", "error": f"the worker on the node wrote nothing: {tail}"}
        profile = HardwareProfile.model_validate(cell["profile_data"])
        found = fingerprint()
        context = ray.get_runtime_context()
        result["remote"] = {
            "transport": "ray",
            "host": ray.util.get_node_ip_address(),
            "node_id": context.get_node_id(),
            "fingerprint": found,
            "timing": "loadgen",
            "folder": str(folder),
            "contradictions": contradictions(profile, found),
        }
        result.setdefault("settings", {})["node_wall_s"] = time.monotonic() - started
        result["worker_output"] = done.stdout + done.stderr
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)
