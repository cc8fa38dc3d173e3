"""A user's own model (.keras, .h5, SavedModel), loaded safely for `optimize`, and its data
(read by `accelbench.models.data`) checked against it before a run starts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from accelbench.errors import UsageError, first_line

MODEL_FORMATS = "a .keras or .h5 file or a SavedModel directory"


def load_user_model(path: str | Path) -> Any:
    """Load a user's Keras model with tf_keras (Keras 2), which tensorflow-model-optimization needs.

    ``.keras`` files load in safe mode (no arbitrary code, so no Lambda layers). A ``.keras``
    file that only Keras 3 can read is loaded with Keras 3, also in safe mode: the post-training
    optimizations work on it, and the training ones say why they cannot (see ``supports``).
    A model with a Lambda layer, in any format, is refused before anything is deserialized,
    since loading it runs the bytecode stored in the file.
    """
    from accelbench.keras_compat import legacy_keras
    from accelbench.runtimes.model_inspect import refuse_unsafe

    path = Path(path)
    if not path.exists():
        raise UsageError(f"model '{path}' does not exist; give {MODEL_FORMATS}")
    refuse_unsafe(path)
    keras = legacy_keras()
    if path.is_dir():
        if not (path / "saved_model.pb").is_file():
            raise UsageError(f"directory '{path}' has no saved_model.pb; give {MODEL_FORMATS}")
        if not (path / "keras_metadata.pb").is_file():
            raise UsageError(
                f"SavedModel '{path}' was not saved from a Keras 2 model (no keras_metadata.pb); "
                "save it with tf_keras model.save(directory) or as a .keras file"
            )
        return _load(lambda: keras.models.load_model(path), path)
    suffix = path.suffix.lower()
    if suffix == ".keras":
        try:
            return keras.models.load_model(path, safe_mode=True)
        except Exception as keras2_error:  # any failure: try Keras 3 next
            return _load_keras3(path, keras2_error)
    if suffix in (".h5", ".hdf5"):
        return _load(lambda: keras.models.load_model(path), path)
    raise UsageError(f"model '{path}' is not {MODEL_FORMATS}; re-save it in one of those")


def _load(load: Any, path: Path) -> Any:
    try:
        return load()
    except Exception as err:  # every loader failure is the user's file
        message = f"cannot load model '{path}' ({first_line(err)}); {_HOW_TO_SAVE}"
        raise UsageError(message) from None


_HOW_TO_SAVE = (
    "save it with tf_keras from Sequential or functional layers, registering any custom layers"
)


def _load_keras3(path: Path, keras2_error: Exception) -> Any:
    """Keras 3 reads its own .keras files; only the post-training optimizations apply to them."""
    try:
        import keras as keras3
    except ImportError:
        raise UsageError(
            f"cannot load model '{path}' with tf_keras ({first_line(keras2_error)}); {_HOW_TO_SAVE}"
        ) from None
    try:
        return keras3.saving.load_model(path, safe_mode=True)
    except Exception:  # report the Keras 2 reason: that is the loader we need
        raise UsageError(
            f"cannot load model '{path}' ({first_line(keras2_error)}); {_HOW_TO_SAVE}"
        ) from None


def check_user_data(
    model: Path, data: Path, label: str | None, *, trust: bool, training: bool
) -> None:
    """Read ``data`` for the user's ``model`` now, so that a problem is one UsageError before
    anything is written. A trusted model is not loaded here, outside the sandbox: its data's
    layout is checked alone (a .npz read, any other path's existence), and its worker says what
    does not fit."""
    from accelbench.models.data import load_npz_data, load_user_data

    if not data.exists():
        raise UsageError(
            f"data {data} does not exist; give a .npz, .csv, .parquet, .tfrecord or an image "
            "folder (one sub-folder per class)"
        )
    if trust:
        if data.suffix.lower() == ".npz" and data.is_file():
            load_npz_data(data)
        return
    keras_model = load_user_model(model)
    n_in, n_out = len(keras_model.inputs), len(keras_model.outputs)
    if training and (n_in, n_out) != (1, 1):
        raise UsageError(
            f"{model.name} has {n_in} input(s) and {n_out} output(s); the training benchmark "
            "trains a classifier with one input and one output of class scores"
        )
    if n_in != 1:
        if data.suffix.lower() != ".npz":
            raise UsageError(
                f"{model.name} has {n_in} inputs; data other than .npz is shaped to one input, "
                "so give a .npz"
            )
        return
    expected = tuple(keras_model.input_shape[1:])
    classes = keras_model.output_shape[-1] if n_out == 1 else None
    user_data = load_user_data(
        data,
        expected,
        num_classes=classes if isinstance(classes, int) else None,
        label=label or "label",
    )
    x_train, y_train = user_data.x_train, user_data.y_train
    if not training:
        return
    if tuple(x_train.shape[1:]) != expected:
        raise UsageError(
            f"{data}: samples have shape {tuple(x_train.shape[1:])} but {model.name} takes "
            f"{expected}; give data that matches the model's input"
        )
    classes = keras_model.output_shape[-1]
    if not isinstance(classes, int):
        raise UsageError(
            f"{model.name} outputs shape {keras_model.output_shape}, with no fixed class count "
            "in its last dimension; give the output layer a fixed number of units"
        )
    if y_train.max() >= classes or y_train.min() < 0:
        raise UsageError(
            f"{data}: labels run from {y_train.min()} to {y_train.max()} but {model.name} has "
            f"{classes} outputs; use class ids 0..{classes - 1}"
        )
