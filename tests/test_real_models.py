"""Real production .tflite models that nobody here wrote (MediaPipe's), run by `accelbench run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO, run_cli, unavailable

CUSTOM_OP_MODEL = "face_landmark_with_attention.tflite"


@pytest.fixture(scope="module")
def real_models() -> Path:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from fetch_real_models import fetch

        try:
            return fetch()
        except subprocess.CalledProcessError as exc:
            last = (exc.stderr or "").strip().splitlines()[-1:] or ["no output"]
            unavailable(f"pip could not download the MediaPipe wheel: {last[0]}")
    finally:
        sys.path.remove(str(REPO / "scripts"))


def test_every_real_model_benchmarks(real_models: Path, tmp_path: Path) -> None:
    models = sorted(p for p in real_models.glob("*.tflite") if p.name != CUSTOM_OP_MODEL)
    assert len(models) >= 10
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        yaml.safe_dump(
            {
                "name": "mediapipe",
                "models": [{"path": str(p)} for p in models],
                "profiles": ["host", "coral-edgetpu"],
                "threads": [2],
                "scenarios": ["single-stream"],
                "preset": "quick",
            }
        )
    )
    out = tmp_path / "run"
    proc = run_cli("run", str(suite), "--out", str(out), "--no-progress", timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 2 * len(models)
    for r in records:
        if r["profile"] == "host":
            assert r["status"] == "ok", (r["model"], r["error"])
            assert r["metrics"]["latency_p50_ms"]["value"] > 0
            assert r["graph"]["flops"] > 1e6, r["model"]  # real conv nets: millions of FLOPs
        else:
            # Float models: the Edge TPU refuses them, with the reason, and no figure is invented.
            assert r["status"] == "skipped" and "int8" in r["error"], r["error"]
            assert "latency_p50_ms" not in r["metrics"]


def test_custom_op_model_is_refused_with_the_op_named(real_models: Path, tmp_path: Path) -> None:
    proc = run_cli("bench", str(real_models / CUSTOM_OP_MODEL), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "custom op Landmarks2TransformMatrix" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
