"""The machine and software the run was measured on, one table per distinct environment."""

from __future__ import annotations

import json

from accelbench.records import Environment
from accelbench.report.document import Document
from accelbench.report.sections.context import Context

title = "Environment"


def environment_rows(env: Environment) -> list[list[str]]:
    """The fingerprint of the machine and software a run was measured on, one row per fact."""
    packages = env.packages or {}
    installed = ", ".join(f"{k} {v}" for k, v in sorted(packages.items()) if v)
    absent = ", ".join(k for k, v in sorted(packages.items()) if not v)
    cores = (
        f"{env.logical_cores} logical, {env.physical_cores} physical, "
        f"{env.available_cores} available to the run"
    )
    memory = f"{env.memory_total_gb} GB"
    if env.memory_cgroup_limit_gb:
        memory += f" (cgroup limit {env.memory_cgroup_limit_gb} GB)"
    gpus = "; ".join(
        f"{g.get('name')} (driver {g.get('driver')}, {g.get('memory_mib')} MiB)"
        for g in env.gpus or []
    )
    commit = env.git_commit
    if commit and env.git_dirty:
        commit += " (with uncommitted changes)"
    rows = [
        ["CPU", f"{env.cpu_model} ({env.cpu_vendor}, {env.machine})"],
        ["CPU flags", ", ".join(env.cpu_flags or []) or "-"],
        ["cores", cores],
        ["memory", memory],
        ["GPUs", gpus or "none"],
        ["OS", f"{env.os_release or env.os}, kernel {env.kernel}"],
        ["Python", f"{env.python} ({env.python_implementation})"],
        ["packages", installed or "-"],
        ["not installed", absent or "-"],
        ["git commit", commit or "not in a git checkout"],
        ["host fingerprint", str(env.host_fingerprint_id)],
    ]
    return rows


def render(doc: Document, ctx: Context) -> None:
    envs: dict[str, tuple[Environment, int]] = {}
    for r in ctx.records:
        env = r.environment or Environment()
        key = json.dumps(env.to_dict(), sort_keys=True)
        envs[key] = (env, envs.get(key, (env, 0))[1] + 1)
    envs = {k: v for k, v in envs.items() if v[0].to_dict()}
    if not envs:
        return
    doc.heading(2, title)
    if len(envs) > 1:
        doc.para(
            f"This run's records come from {len(envs)} different environments (a run resumed "
            "elsewhere, or software changed between cells): compare figures only within one."
        )
    for env, count in envs.values():
        if len(envs) > 1:
            doc.heading(3, f"{env.host_fingerprint_id}: {count} records")
        doc.table(["", "value"], environment_rows(env))
