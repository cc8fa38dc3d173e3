"""Fetches real production .tflite models (by Google) from the MediaPipe 0.10.14 wheel on PyPI.

accelbench's own test models are tiny; these are what users actually run (face, hand, pose
detection and landmarks, selfie segmentation). The wheel is downloaded once with pip and only its
.tflite files are kept, under $ACCELBENCH_CACHE_DIR/real-models (default ~/.cache/accelbench).

    python scripts/fetch_real_models.py        # prints the folder holding the models
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "mediapipe==0.10.14"


def models_dir() -> Path:
    root = os.environ.get("ACCELBENCH_CACHE_DIR") or Path.home() / ".cache" / "accelbench"
    return Path(root) / "real-models"


def fetch() -> Path:
    """Return the folder of real .tflite models, downloading the wheel on first use."""
    out = models_dir()
    if out.is_dir() and any(out.glob("*.tflite")):
        return out
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux_2_17_x86_64",
                "-d",
                tmp,
                WHEEL_REQUIREMENT,
            ],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
        (wheel,) = Path(tmp).glob("*.whl")
        staging = out.with_name(out.name + ".partial")
        staging.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                if name.endswith(".tflite"):
                    (staging / Path(name).name).write_bytes(zf.read(name))
        staging.replace(out)
    return out


if __name__ == "__main__":
    print(fetch())
