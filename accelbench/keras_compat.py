"""Keras 2 for tensorflow-model-optimization: one place that selects tf_keras before TF loads."""

from __future__ import annotations

import os
from typing import Any


def legacy_keras() -> Any:
    """Return the `tf_keras` module (Keras 2), with TF_USE_LEGACY_KERAS=1 set before TF is imported.

    tensorflow-model-optimization works only with Keras 2. Setting the variable after tensorflow
    has been imported does not switch tf.keras, so this must run before any tensorflow import in
    the process; a worker process calls it first.
    """
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tf_keras

    return tf_keras
