"""Hardware profiles: built-ins, user YAML, one-line errors, host detection and emulation limits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from accelbench.errors import UsageError
from accelbench.hardware_profiles import (
    builtin_names,
    detect_host,
    environment_fingerprint,
    execution_mode,
    host_fingerprint_id,
    list_profiles,
    load_profile,
    validate_profile_file,
)
from accelbench.hardware_profiles.host import ATTACHED_ENV

REPO = Path(__file__).resolve().parents[1]
BUILTINS = {
    "x86-server",
    "rpi4",
    "rpi5",
    "jetson-orin-nano",
    "coral-edgetpu",
    "nvidia-t4",
    "nvidia-l4",
    "nvidia-a100",
    "nvidia-h100",
    "tpu-v5e",
}


def _user_profile(tmp_path: Path, **changes) -> Path:
    """A valid user profile (a renamed T4) with ``changes`` applied; a None value drops a field."""
    data = yaml.safe_load(
        (REPO / "accelbench/hardware_profiles/builtin/nvidia-t4.yaml").read_text()
    )
    data["name"] = "my-gpu"
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path = tmp_path / "my.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_every_builtin_validates_and_cites_a_source_for_each_figure():
    assert set(builtin_names()) == BUILTINS
    for name in BUILTINS:
        profile = load_profile(name)
        assert profile.name == name
        assert profile.sources, name
        assert profile.unsourced_figures() == [], name
        assert profile.peak_compute, name
        assert profile.memory_bandwidth_gbps, name


def test_builtins_run_as_the_design_says(monkeypatch):
    monkeypatch.setenv(ATTACHED_ENV, "none")  # an attached GPU/TPU would run its profile locally
    assert load_profile("coral-edgetpu").supported_precisions == ["int8"]
    assert load_profile("coral-edgetpu").delegate == "libedgetpu.so.1"
    assert load_profile("coral-edgetpu").peak_compute == {"int8": 4.0}
    for name in ("rpi4", "rpi5"):
        assert execution_mode(load_profile(name)) == "emulated"
    for name in ("nvidia-t4", "nvidia-l4", "nvidia-a100", "nvidia-h100", "tpu-v5e"):
        assert execution_mode(load_profile(name)) == "projected"
    # JAX names a v5e "TPU v5 lite": the alias still finds its profile.
    monkeypatch.setenv(ATTACHED_ENV, "TPU v5 lite")
    assert execution_mode(load_profile("tpu-v5e")) == "local"
    assert load_profile("rpi4").emulation.threads == 4
    assert load_profile("rpi4").emulation.memory_mb == 4096


def test_list_profiles_puts_the_host_first_then_every_builtin():
    names = [profile.name for profile in list_profiles()]
    assert names[0] == "host"
    assert set(names[1:]) == BUILTINS


def test_load_profile_accepts_a_path_to_a_user_yaml(tmp_path):
    path = _user_profile(tmp_path, sources=[])  # sources are optional for user profiles
    profile = load_profile(str(path))
    assert profile.name == "my-gpu"
    assert profile.peak_compute["int8"] == 130
    assert validate_profile_file(path) == profile


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"kind": "gpux"}, r"field 'kind' is 'gpux'; use one of cpu, gpu, tpu"),
        ({"cores": "four"}, r"field 'cores' is 'four'; use a positive integer"),
        ({"memory_gb": -1}, r"field 'memory_gb' is -1; use a positive number"),
        ({"colour": "red"}, r"field 'colour' is not a known field; use only name, kind"),
        ({"kind": None}, r"field 'kind' is missing; add it"),
        ({"peak_compute": {"fp64": 3}}, r"field 'peak_compute' has key 'fp64'; use one of fp32"),
        ({"supported_precisions": ["fp32", "fp8"]}, r"'supported_precisions\[1\]' is 'fp8'"),
        ({"emulation": {"threads": 2, "ram": 1}}, r"field 'emulation.ram' is not a known field"),
        ({"name": "host"}, r"field 'name' is 'host', which is reserved"),
    ],
)
def test_a_bad_field_is_one_line_naming_the_file_the_field_and_the_fix(tmp_path, changes, expected):
    path = _user_profile(tmp_path, **changes)
    with pytest.raises(UsageError) as caught:
        load_profile(str(path))
    message = str(caught.value)
    assert message.startswith(f"profile {path}: ")
    assert re.search(expected, message), message
    assert "\n" not in message


def test_an_unknown_name_lists_the_known_ones_and_mentions_paths():
    with pytest.raises(UsageError, match=r"unknown hardware profile 'nvidia-t5'") as caught:
        load_profile("nvidia-t5")
    message = str(caught.value)
    assert "host" in message and "nvidia-t4" in message and "coral-edgetpu" in message
    assert "path to a profile YAML file" in message


def test_a_missing_file_and_bad_yaml_are_usage_errors_naming_the_file(tmp_path):
    with pytest.raises(UsageError, match=r"profile file '.*nope\.yaml' does not exist"):
        load_profile(str(tmp_path / "nope.yaml"))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\nkind: [gpu\n")
    with pytest.raises(UsageError, match=r"profile .*broken\.yaml is not valid YAML .*line 3"):
        load_profile(str(broken))
    listed = tmp_path / "listed.yaml"
    listed.write_text("- name\n- kind\n")
    with pytest.raises(UsageError, match=r"listed\.yaml holds a list, not a mapping"):
        validate_profile_file(listed)


def test_detect_host_describes_this_machine_and_runs_locally(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELBENCH_CACHE_DIR", str(tmp_path))  # no calibration cached
    host = load_profile("host")
    assert host.cores == len(os.sched_getaffinity(0))
    assert host.memory_gb > 0
    assert execution_mode(host) == "local"
    assert host.peak_compute == {}  # unknown until calibrated
    assert host.model == detect_host().model


def test_environment_fingerprint_records_hardware_and_versions_without_importing():
    import numpy

    env = environment_fingerprint()
    for key in ("cpu_model", "cpu_flags", "logical_cores", "physical_cores", "memory_total_gb"):
        assert env[key], key
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))
    assert env["packages"]["numpy"] == numpy.__version__
    assert "tensorflow" in env["packages"] and "mlcommons-loadgen" in env["packages"]
    assert isinstance(env["gpus"], list)
    assert re.fullmatch(r"[0-9a-f]{12}", host_fingerprint_id())
    assert env["host_fingerprint_id"] == host_fingerprint_id()
    json.dumps(env)  # goes into every record as is


def test_the_profiles_module_imports_no_framework():
    code = (
        "import sys; from accelbench.hardware_profiles import load_profile; load_profile('rpi4');"
        "print([m for m in ('numpy', 'tensorflow', 'jax', 'ai_edge_litert') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def _emulate_in_child(profile: str, threads: int | None, then: str = "") -> dict:
    """Apply emulation in a fresh process, as a worker does, and report what it sees after."""
    code = f"""
import json, os, resource
from accelbench.hardware_profiles import load_profile
from accelbench.hardware_profiles.emulation import apply_emulation
applied = apply_emulation(load_profile({profile!r}), {threads!r})
seen = {{"affinity": sorted(os.sched_getaffinity(0)), "omp": os.environ["OMP_NUM_THREADS"],
        "rlimit_as": resource.getrlimit(resource.RLIMIT_AS)[0]}}
{then}
print(json.dumps({{"applied": applied, "seen": seen}}))
"""
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_apply_emulation_pins_the_process_to_the_requested_cores():
    result = _emulate_in_child("rpi4", 1)
    assert result["seen"]["affinity"] == result["applied"]["cpu_affinity"]
    assert len(result["seen"]["affinity"]) == 1
    assert result["seen"]["omp"] == "1"
    assert result["applied"]["threads"] == 1
    assert result["applied"]["frameworks_imported_before"] == []


def test_apply_emulation_caps_threads_at_the_cores_available():
    available = len(os.sched_getaffinity(0))
    result = _emulate_in_child("x86-server", None)  # the profile asks for 32
    assert result["applied"]["threads_requested"] == 32
    assert result["applied"]["threads"] == min(32, available)
    assert result["applied"]["threads_capped"] == (available < 32)
    assert len(result["seen"]["affinity"]) == min(32, available)


def test_apply_emulation_caps_memory_so_a_larger_allocation_fails(tmp_path):
    path = _user_profile(tmp_path, kind="edge-cpu", emulation={"threads": 1, "memory_mb": 1024})
    then = """
try:
    block = bytearray(2 * 2**30)
    seen["big_allocation"] = "succeeded"
except MemoryError:
    seen["big_allocation"] = "MemoryError"
"""
    result = _emulate_in_child(str(path), None, then)
    assert result["applied"]["memory_limit_mb"] == 1024
    assert result["seen"]["rlimit_as"] == 1024 * 2**20
    assert result["seen"]["big_allocation"] == "MemoryError"
