"""A model named to `accelbench project` as a .tflite graph: a reference model, or a Keras model.

Projection reads a .tflite graph's ops and nothing else, so a model that is not one yet is
converted as for timing (`keras_compat.tflite_for_timing`: fp32 as it is, or full int8 calibrated
on random inputs, which set the graph's scales but not its cost; a SavedModel not saved from Keras,
from its serving signature). A reference model is built with
its initial weights and never trained (latency does not depend on trained weights) and cached
under ``<cache>/projection/reference/<precision>/``; a JAX reference model goes through jax2tf as
`accelbench optimize` converts it. Nothing is measured.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from accelbench.errors import UsageError, first_line
from accelbench.optimizers.user_models import MODEL_FORMATS
from accelbench.optimizers.validation_models import cache_folder

PRECISIONS = ("fp32", "int8")
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


@contextlib.contextmanager
def tflite_of(model: str, precision: str) -> Iterator[tuple[Path, str]]:
    """(the .tflite to project, the model's name as shown) for a .tflite file, a reference
    model's name or a Keras model (.keras, .h5, a SavedModel folder); a UsageError of one line
    for anything else. A Keras model's .tflite lives only while the context is open."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision {precision!r} is not built; use fp32 or int8")
    path = Path(model)
    if path.suffix.lower() == ".tflite":
        if not path.is_file():
            raise UsageError(f"model file '{path}' does not exist; pass a .tflite file")
        yield path, path.name
        return
    if path.exists() and (path.is_dir() or path.suffix.lower() in KERAS_SUFFIXES):
        with tempfile.TemporaryDirectory(prefix="accelbench-project-") as folder:
            # The converters print what they export; stdout is the command's table or JSON.
            with contextlib.redirect_stdout(sys.stderr):
                converted = _keras_tflite(path, precision, Path(folder))
            yield converted, f"{path.name} ({precision})"
        return
    from accelbench.models import list_specs

    names = [spec.name for spec in list_specs()]
    if model in names:
        with contextlib.redirect_stdout(sys.stderr):
            built = reference_tflite(model, precision)
        yield built, f"{model} ({precision}, untrained)"
        return
    what = "file or folder" if path.exists() else "file, folder or reference model"
    raise UsageError(
        f"model '{model}' is no {what} that project reads; pass a .tflite, {MODEL_FORMATS}, "
        f"or a reference model's name ({', '.join(names)})"
    )


def reference_tflite(name: str, precision: str) -> Path:
    """The cached .tflite of reference model ``name`` at ``precision``, built on first use."""
    path = cache_folder() / "reference" / precision / f"{name}.tflite"
    if path.is_file():
        return path
    from accelbench.models.jax_models import is_jax_model

    data = _jax_tflite(name, precision) if is_jax_model(name) else _keras_reference(name, precision)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    partial.replace(path)
    return path


def _keras_reference(name: str, precision: str) -> bytes:
    from accelbench.keras_compat import tflite_for_timing
    from accelbench.models import get_spec

    keras = _keras(name)
    keras.utils.set_random_seed(0)
    return tflite_for_timing(get_spec(name).build(0), precision)


def _jax_tflite(name: str, precision: str) -> bytes:
    import numpy as np

    from accelbench.models import get_spec
    from accelbench.optimizers.jax_tflite import export_tflite

    spec = get_spec(name)
    # Random inputs: int8 calibration ranges set the graph's scales, not its cost.
    rng = np.random.default_rng(0)
    x_train = rng.random((2, *spec.input_shape), dtype=np.float32)
    y_train = np.zeros(2, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="accelbench-project-") as folder:
        artifact = export_tflite(
            name, spec.build(0), precision, folder, x_train=x_train, y_train=y_train
        )
        return Path(artifact.path).read_bytes()


def _keras_tflite(path: Path, precision: str, folder: Path) -> Path:
    from accelbench.keras_compat import saved_model_tflite_for_timing, tflite_for_timing
    from accelbench.optimizers.user_models import load_user_model
    from accelbench.runtimes.model_inspect import refuse_unsafe

    _keras(path.name)
    # A SavedModel not saved from Keras is converted from its serving signature.
    plain = path.is_dir() and not (path / "keras_metadata.pb").is_file()
    if plain:
        refuse_unsafe(path)
    model = None if plain else load_user_model(path)
    try:
        if plain:
            data = saved_model_tflite_for_timing(str(path), precision)
        else:
            data = tflite_for_timing(model, precision)
    except Exception as err:  # every converter failure is the model's
        raise UsageError(
            f"cannot convert '{path}' to a {precision} .tflite ({first_line(err)}); convert it "
            "yourself and pass the .tflite"
        ) from None
    out = folder / f"{path.stem}.tflite"
    out.write_bytes(data)
    return out


def _keras(name: str) -> Any:
    """tf_keras, with TensorFlow loaded; a UsageError naming ``name`` where either is missing."""
    from accelbench.keras_compat import legacy_keras

    try:
        keras = legacy_keras()
        import tensorflow  # noqa: F401
    except ImportError as exc:
        raise UsageError(
            f"converting {name} to .tflite needs TensorFlow and tf_keras ({exc.name} is missing); "
            "install them, or pass a .tflite"
        ) from None
    return keras
