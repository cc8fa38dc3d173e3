"""Loaders for users' own data: NumPy, CSV, Parquet, TFRecord, image and audio folders -> Dataset.

``load_dataset(path, spec)`` picks the loader from the path and checks the result against the
model: feature count or shape, number of classes, label range. Any problem (missing or empty
file, unknown format, a schema that does not fit the model) is a UsageError naming the file and
the mismatch. A reference spec's ``load_data(path)`` calls it; ``load_user_data(path,
input_shape)`` reads the same layouts for a user's own Keras model (``optimize``, ``train`` and
suite entries with ``data:``), and says in ``settings`` how the data was split and scaled.

Layouts
-------
Features are float32 and are used as they are (no scaling), except 8-bit images (uint8 arrays,
image files), which are scaled to [0, 1] like the built-in data. Labels are integer class ids
``0 .. num_classes-1`` in the spec's class order. For ``ad_autoencoder`` labels are 0 (normal) /
1 (anomaly), and anomalies found in a training split are left out of it, because an anomaly
detector learns from normal data only. Where a file holds no train/test split, a deterministic
stratified 80/20 split (seeded by ``seed``) is made.

``.npz`` (NumPy)
    Keys ``x_train, y_train, x_test, y_test``, or ``x, y`` (split 80/20). ``x`` is
    ``(n, *input_shape)`` or ``(n, prod(input_shape))`` (reshaped). For ``kws_dscnn``, ``x`` may
    instead be raw 16 kHz audio ``(n, samples)`` (padded or cut to 1 s), and for
    ``ad_autoencoder`` ``(n, samples)`` with at least 3072 samples; the model's front end turns
    it into features.
``.csv`` / ``.parquet``
    One row per sample: a ``label`` column (another name with ``label=``; integer ids, or names
    from the spec's class names, or for a user's model any names, numbered in sorted order),
    an optional ``split`` column (``train`` / ``test``), and ``prod(input_shape)`` numeric feature
    columns in the model's input order (row-major for images).
``.tfrecord`` / ``.tfrecords``
    ``tf.train.Example`` records with ``features`` (float_list, ``prod(input_shape)`` values,
    row-major), ``label`` (int64_list, one value) and optionally ``split`` (bytes_list,
    ``train`` or ``test``). `save_tfrecord` writes this layout. The label key may be named with
    ``label=``; when ``label`` is absent and one int64 key is the only other field, it is the
    label. Without a ``features`` key, every other numeric key is a feature (keys in sorted order,
    each key's values in order).
Image folder (image models)
    ``root/<class>/*.png|jpg|jpeg|bmp|gif`` (split 80/20), or ``root/train/<class>/...`` and
    ``root/test/<class>/...``, the layout ``keras.utils.image_dataset_from_directory`` reads.
    Every class folder holds at least one image, and there are at least two classes. Folder
    names are the class names: the spec's own names map to its class order, other names are
    sorted; their number must equal the model's classes.
    Images are decoded to the model's channels (grey or RGB), resized (bilinear) to its input
    height and width, and scaled to [0, 1], by `read_image_files` (in tf.data, with the image
    decoder the input-pipeline benchmark's image formats use).
Audio folder (``kws_dscnn``, ``ad_autoencoder``)
    ``root/<class>/*.wav`` or ``root/train/<class>/``, ``root/test/<class>/``: 16 kHz, mono,
    16-bit PCM WAV (no resampling is done; convert other rates first, e.g. ``sox in.wav -r 16000
    -c 1 -b 16 out.wav``). Keyword clips are padded or cut to 1 s and turned into MFCCs;
    anomaly-detection clips (classes ``normal`` and ``anomaly``) need at least 3072 samples and
    give their 5 centre log-mel frames.
"""

from __future__ import annotations

import os
import wave
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError, first_line
from accelbench.models.spec import Dataset, ModelSpec
from accelbench.models.training import check_dataset

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords")
SUPPORTED = ".npz, .csv, .parquet, .tfrecord, an image folder or a folder of .wav files"
TEST_FRACTION = 0.2


def load_dataset(
    path: str | os.PathLike, spec: ModelSpec, *, seed: int = 0, label: str = "label"
) -> Dataset:
    """Read the user's data at ``path`` for ``spec``'s model; see the module docstring."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UsageError(f"{p}: no such file or folder; give the path to {SUPPORTED}")
    suffix = p.suffix.lower()
    if p.is_dir():
        if suffix in (".npz", *TABLE_SUFFIXES, *TFRECORD_SUFFIXES):
            raise UsageError(
                f"{p}: is a folder, but its name says a {suffix} file; give the file itself"
            )
        return _load_folder(p, spec, seed)
    if p.stat().st_size == 0:
        raise UsageError(f"{p}: the file is empty; give a file with data in it")
    if suffix == ".npz":
        return _load_npz(p, spec, seed)
    if suffix in TABLE_SUFFIXES:
        return _load_table(p, spec, seed, label)
    if suffix in TFRECORD_SUFFIXES:
        return _load_tfrecord(p, spec, seed, label)
    if suffix in IMAGE_SUFFIXES:
        raise UsageError(
            f"{p}: is one image file; give the folder that holds one sub-folder of images per "
            f"class ({p.parent.parent}/<class>/{p.name})"
        )
    raise UsageError(f"{p}: unsupported data format '{suffix or p.name}'; give {SUPPORTED}")


USER_MODEL = "the model"
_ANY_CLASS_COUNT = 1 << 30  # a user's model whose output gives no class count: any label fits


@dataclass
class UserData:
    """A user's data for their own model, and how it was read (the records' settings)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]  # one per class id: folder names, string labels, or the ids
    settings: dict[str, str] = field(default_factory=dict)


NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def load_npz_data(
    path: str | Path, *, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test) from a .npz with those keys, or with x and y.

    With only ``x`` and ``y``, a seeded random ``test_fraction`` (20%) of the rows becomes the
    test set. Pickled (object) arrays are refused.
    """
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"data file '{path}' does not exist; give a .npz made with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile) as err:
        raise UsageError(
            f"'{path}' is not a readable .npz of plain arrays ({first_line(err)}); "
            "save numeric arrays with numpy.savez"
        ) from None
    if all(key in arrays for key in NPZ_KEYS):
        x_train, y_train, x_test, y_test = (arrays[key] for key in NPZ_KEYS)
    elif "x" in arrays and "y" in arrays:
        x, y = arrays["x"], arrays["y"]
        _check_pair(path, "x", x, "y", y)
        if len(x) < 2:
            raise UsageError(f"'{path}' has {len(x)} sample in x; a train/test split needs two")
        order = np.random.default_rng(seed).permutation(len(x))
        test_count = min(len(x) - 1, max(1, round(len(x) * test_fraction)))
        test, train = order[:test_count], order[test_count:]
        x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
    else:
        raise UsageError(
            f"'{path}' must hold arrays {', '.join(NPZ_KEYS)} (or x and y, split "
            f"{round((1 - test_fraction) * 100)}/{round(test_fraction * 100)}); "
            f"it holds {', '.join(sorted(arrays)) or 'nothing'}"
        )
    _check_pair(path, "x_train", x_train, "y_train", y_train)
    _check_pair(path, "x_test", x_test, "y_test", y_test)
    if x_train.shape[1:] != x_test.shape[1:]:
        raise UsageError(
            f"'{path}': x_train samples have shape {list(x_train.shape[1:])} but x_test samples "
            f"{list(x_test.shape[1:])}; both must match the model input"
        )
    return x_train, y_train, x_test, y_test


def _check_pair(path: Path, x_name: str, x: np.ndarray, y_name: str, y: np.ndarray) -> None:
    if x.ndim == 0 or y.ndim == 0 or len(x) == 0:
        raise UsageError(f"'{path}': {x_name} and {y_name} must be non-empty arrays of samples")
    if len(x) != len(y):
        raise UsageError(
            f"'{path}': {x_name} has {len(x)} samples but {y_name} has {len(y)}; "
            "they must have one label per sample"
        )


def load_user_data(
    path: str | os.PathLike,
    input_shape: Sequence[int | None],
    *,
    num_classes: int | None = None,
    label: str = "label",
    seed: int = 0,
) -> UserData:
    """Read data at ``path`` for a user's model taking ``input_shape`` (one sample, no batch).

    The layouts are the module docstring's; a .npz is read as `load_npz_data` reads it (arrays
    as they are). ``num_classes`` (the model's output units), when given, bounds the labels and
    is the number of class folders an image folder must have. ``class_names`` names every class
    id: an image folder's sub-folder names, a table's labels where they are strings (numbered
    in sorted order), the id itself for labels given as ids. ``settings`` says the format, the
    train/test split (``data_split``) and the scaling (``data_scaling``).
    """
    p = Path(path).expanduser()
    if p.is_file() and p.suffix.lower() == ".npz":
        x_train, y_train, x_test, y_test = load_npz_data(p, seed=seed)
        names = _every_class_name((), y_train, y_test, num_classes)
        return UserData(x_train, y_train, x_test, y_test, names, describe_user_data(p, seed=seed))
    shape = tuple(input_shape)
    if any(d is None for d in shape):
        raise UsageError(
            f"the model's input shape {shape} has a free dimension; data other than .npz is "
            "shaped to the model's input, so give the model a fixed input shape or use a .npz"
        )
    spec = _user_spec(tuple(int(d) for d in shape), num_classes)  # type: ignore[arg-type]
    data = load_dataset(p, spec, seed=seed, label=label)
    settings = describe_user_data(p, label=label, seed=seed)
    if p.is_dir():
        settings["data_resize"] = f"bilinear to {shape[0]}x{shape[1]}"
    names = _every_class_name(data.class_names, data.y_train, data.y_test, num_classes)
    return UserData(data.x_train, data.y_train, data.x_test, data.y_test, names, settings)


def _every_class_name(
    found: Sequence[str], y_train: np.ndarray, y_test: np.ndarray, num_classes: int | None
) -> tuple[str, ...]:
    """A name for every class id the labels or the model's outputs reach: the data's own names
    (class folders, labels given as strings) where it has them, else the id itself."""
    n = max(int(max(np.max(y_train), np.max(y_test))) + 1, num_classes or 0, len(found))
    return (*found, *(str(i) for i in range(len(found), n)))


def describe_user_data(
    path: str | os.PathLike, *, label: str = "label", seed: int = 0
) -> dict[str, str]:
    """How `load_user_data` reads ``path`` (format, split, scaling, label), without reading it
    all: the settings a record states. A path it cannot read gets what its name says."""
    p = Path(path).expanduser()
    stratified = f"stratified 80/20 train/test, seed {seed}"
    if p.is_dir():
        given = {"train", "test"} <= {d.name for d in _class_dirs(p)}
        return {
            "data_format": "image folder",
            "data_split": "the folder's train/ and test/" if given else stratified,
            "data_scaling": "pixels / 255, to [0, 1]",
        }
    suffix = p.suffix.lower()
    if suffix == ".npz":
        try:
            with np.load(p, allow_pickle=False) as archive:
                given = "x_train" in archive.files
        except Exception:  # noqa: BLE001 - described, not read: the loader names the problem
            given = False
        split = "the file's x_train/x_test" if given else f"random 80/20 train/test, seed {seed}"
        return {"data_format": "npz", "data_split": split, "data_scaling": "none (as stored)"}
    try:
        if suffix == ".csv":
            import pandas as pd

            has_split = "split" in pd.read_csv(p, nrows=0).columns
        elif suffix in TABLE_SUFFIXES:
            import pyarrow.parquet as pq

            has_split = "split" in pq.read_schema(p).names
        else:
            import tensorflow as tf

            first = next(iter(tf.data.TFRecordDataset(str(p)).take(1)), None)
            has_split = (
                first is not None
                and "split" in tf.train.Example.FromString(first.numpy()).features.feature
            )
    except Exception:  # noqa: BLE001 - described, not read: the loader names the problem
        has_split = False
    return {
        "data_format": suffix.lstrip(".").replace("tfrecords", "tfrecord"),
        "data_split": "the data's split column" if has_split else stratified,
        "data_scaling": "none (as stored)",
        "data_label": label,
    }


def _user_spec(input_shape: tuple[int, ...], num_classes: int | None) -> ModelSpec:
    def unused(*_: Any, **__: Any) -> Any:
        raise NotImplementedError("a user's model is built and fed by its owner")

    image = len(input_shape) == 3 and input_shape[-1] in (1, 3)
    return ModelSpec(
        name=USER_MODEL,
        task="classification",
        description="a user's model",
        metric="accuracy",
        target=0.0,
        input_shape=input_shape,
        num_classes=num_classes or _ANY_CLASS_COUNT,
        class_names=(),
        data_source="user data",
        epochs=0,
        batch_size=0,
        learning_rate=0.0,
        build=unused,
        load_data=unused,
        modality="image" if image else "tabular",
    )


def stratified_split(
    y: np.ndarray, seed: int = 0, test_fraction: float = TEST_FRACTION
) -> tuple[np.ndarray, np.ndarray]:
    """Train and test indices: ``test_fraction`` of each class (at least one if it has two)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        n_test = int(round(len(members) * test_fraction))
        if len(members) >= 2:
            n_test = min(max(n_test, 1), len(members) - 1)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def save_tfrecord(
    path: str | os.PathLike, x: np.ndarray, y: np.ndarray, split: Sequence[str] | None = None
) -> None:
    """Write ``x`` (flattened row-major), ``y`` and an optional split per sample as TFRecord."""
    import tensorflow as tf

    x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for i in range(len(x)):
            feature = {
                "features": tf.train.Feature(float_list=tf.train.FloatList(value=x[i])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(y[i])])),
            }
            if split is not None:
                value = [split[i].encode()]
                feature["split"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=value))
            example = tf.train.Example(features=tf.train.Features(feature=feature))
            writer.write(example.SerializeToString())


# ---------------------------------------------------------------------------------------------
# Shared: from arrays to a checked Dataset
# ---------------------------------------------------------------------------------------------


def _features(x: np.ndarray, spec: ModelSpec, origin: str, *, raw_audio_ok: bool) -> np.ndarray:
    """Cast, scale 8-bit images, reshape flat rows, or run raw audio through the front end."""
    x = np.asarray(x)
    if x.dtype == object or not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise UsageError(f"{origin}: features have dtype {x.dtype}; give numeric arrays")
    if x.ndim == 0 or len(x) == 0:
        raise UsageError(f"{origin}: no samples found; give at least one")
    scale = 1.0 / 255.0 if x.dtype == np.uint8 else 1.0
    expected = tuple(spec.input_shape)
    per_sample = tuple(x.shape[1:])
    if per_sample == expected:
        return x.astype(np.float32) * scale
    if int(np.prod(per_sample)) == int(np.prod(expected)):
        return x.reshape((len(x), *expected)).astype(np.float32) * scale
    if raw_audio_ok and spec.front_end is not None and x.ndim == 2:
        try:
            return spec.front_end(x.astype(np.float32))
        except ValueError as exc:
            raise UsageError(f"{origin}: {exc}; give features {expected} or 16 kHz audio") from None
    raise UsageError(
        f"{origin}: each sample has shape {per_sample} ({int(np.prod(per_sample))} values) but "
        f"{spec.name} takes {expected} ({int(np.prod(expected))} values); give data that matches"
    )


def _label_names(y: np.ndarray, spec: ModelSpec) -> tuple[str, ...] | None:
    """The class names that labels given as strings stand for, in class-id order: the spec's,
    or for a user's model (which names no classes) the labels' own, sorted. None for ids."""
    y = np.asarray(y).reshape(-1)
    if y.dtype.kind not in "OUS":
        return None
    return tuple(spec.class_names) or tuple(sorted({str(v) for v in y}))


def _labels(y: np.ndarray, spec: ModelSpec, origin: str) -> np.ndarray:
    y = np.asarray(y).reshape(-1)
    known = _label_names(y, spec)
    if known is not None:
        names = {name: i for i, name in enumerate(known)}
        unknown = sorted({str(v) for v in y} - set(names))
        if unknown:
            raise UsageError(
                f"{origin}: labels {unknown[:5]} are not {spec.name} classes "
                f"{list(known)}; use those names or integer ids"
            )
        return np.array([names[str(v)] for v in y], dtype=np.int64)
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise UsageError(f"{origin}: labels must be whole class ids, found fractional values")
    elif y.dtype.kind not in "iub":
        raise UsageError(f"{origin}: labels have dtype {y.dtype}; give integer class ids")
    return y.astype(np.int64)


def _finish(
    spec: ModelSpec,
    origin: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    if spec.is_autoencoder:
        normal = y_train == 0
        x_train, y_train = x_train[normal], y_train[normal]
    data = Dataset(
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=y_test,
        class_names=tuple(class_names or spec.class_names),
        source=f"user data: {origin}",
    )
    check_dataset(spec, data, origin)
    return data


def _split_and_finish(
    spec: ModelSpec,
    origin: str,
    x: np.ndarray,
    y: np.ndarray,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    if len(x) != len(y):
        raise UsageError(f"{origin}: {len(x)} samples but {len(y)} labels; give one label each")
    if len(x) < 2:
        raise UsageError(f"{origin}: {len(x)} sample(s) cannot be split 80/20; give at least 2")
    train, test = stratified_split(y, seed)
    if spec.is_autoencoder:
        # Anomalies are never trained on, so all of them go to the test split.
        test = np.sort(np.concatenate([test, train[y[train] != 0]]))
        train = train[y[train] == 0]
    return _finish(spec, origin, x[train], y[train], x[test], y[test], class_names)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _load_npz(p: Path, spec: ModelSpec, seed: int) -> Dataset:
    try:
        with np.load(p, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except Exception as exc:  # a truncated or non-zip file: name it, hide the zipfile trace
        raise UsageError(
            f"{p}: not a readable .npz archive ({exc}); save it with numpy.savez"
        ) from None
    keys = set(arrays)
    split_keys = {"x_train", "y_train", "x_test", "y_test"}
    if split_keys <= keys:
        return _finish(
            spec,
            str(p),
            _features(arrays["x_train"], spec, f"{p} x_train", raw_audio_ok=True),
            _labels(arrays["y_train"], spec, f"{p} y_train"),
            _features(arrays["x_test"], spec, f"{p} x_test", raw_audio_ok=True),
            _labels(arrays["y_test"], spec, f"{p} y_test"),
        )
    if {"x", "y"} <= keys:
        x = _features(arrays["x"], spec, f"{p} x", raw_audio_ok=True)
        return _split_and_finish(spec, str(p), x, _labels(arrays["y"], spec, f"{p} y"), seed)
    raise UsageError(
        f"{p}: has keys {sorted(keys)}; expected x_train, y_train, x_test, y_test (or x, y)"
    )


def _load_table(p: Path, spec: ModelSpec, seed: int, label: str = "label") -> Dataset:
    import pandas as pd

    try:
        frame = pd.read_csv(p) if p.suffix.lower() == ".csv" else pd.read_parquet(p)
    except Exception as exc:
        kind = "CSV" if p.suffix.lower() == ".csv" else "Parquet"
        raise UsageError(f"{p}: not a readable {kind} file ({type(exc).__name__}: {exc})") from None
    if frame.empty:
        raise UsageError(f"{p}: the table has no rows; give one row per sample")
    if label not in frame.columns:
        columns = [str(c) for c in frame.columns]
        shown = ", ".join(columns[:12]) + (
            f", ... ({len(columns)} in all)" if len(columns) > 12 else ""
        )
        raise UsageError(
            f"{p}: no '{label}' column (columns: {shown}); add it with class ids, or name your "
            "label column with --label COLUMN"
        )
    split = frame.pop("split").astype(str).str.lower() if "split" in frame.columns else None
    labels = frame.pop(label).to_numpy()
    y = _labels(labels, spec, str(p))
    non_numeric = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise UsageError(
            f"{p}: columns {non_numeric[:5]} are not numeric; features must be numbers"
        )
    x = _features(frame.to_numpy(dtype=np.float32), spec, str(p), raw_audio_ok=False)
    return _with_split_column(spec, str(p), x, y, split, seed, _label_names(labels, spec))


def _with_split_column(
    spec: ModelSpec,
    origin: str,
    x: np.ndarray,
    y: np.ndarray,
    split: Any,
    seed: int,
    class_names: Sequence[str] | None = None,
) -> Dataset:
    if split is None:
        return _split_and_finish(spec, origin, x, y, seed, class_names)
    split = np.asarray(split)
    bad = sorted(set(split) - {"train", "test"})
    if bad:
        raise UsageError(f"{origin}: split values {bad[:5]} are not 'train' or 'test'; fix them")
    train, test = split == "train", split == "test"
    return _finish(spec, origin, x[train], y[train], x[test], y[test], class_names)


def _load_tfrecord(p: Path, spec: ModelSpec, seed: int, label: str = "label") -> Dataset:
    import tensorflow as tf

    records = []
    try:
        for record in tf.data.TFRecordDataset(str(p)):
            records.append(tf.train.Example.FromString(record.numpy()).features.feature)
    except Exception as exc:
        raise UsageError(f"{p}: not a readable TFRecord file ({type(exc).__name__})") from None
    if not records:
        raise UsageError(f"{p}: holds no records; write one tf.train.Example per sample")
    label_key, feature_keys = _tfrecord_keys(p, records[0], label)
    features, labels, splits = [], [], []
    for i, fields in enumerate(records):
        missing = [k for k in (label_key, *feature_keys) if k not in fields]
        if missing:
            raise UsageError(
                f"{p}: record {i} has no {missing[:3]} (it has {sorted(fields)}); give every "
                "record the same keys"
            )
        features.append(np.concatenate([_tfrecord_values(fields[k]) for k in feature_keys]))
        labels.append(list(fields[label_key].int64_list.value)[:1] or [-1])
        if "split" in fields:
            splits.append(fields["split"].bytes_list.value[0].decode().lower())
    sizes = {f.size for f in features}
    if len(sizes) != 1:
        raise UsageError(f"{p}: records hold different feature counts {sorted(sizes)[:5]}")
    if splits and len(splits) != len(features):
        raise UsageError(f"{p}: only some records have a 'split'; give it for all or none")
    x = _features(np.stack(features), spec, str(p), raw_audio_ok=False)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    return _with_split_column(spec, str(p), x, y, splits or None, seed)


def _tfrecord_values(feature: Any) -> np.ndarray:
    kind = feature.WhichOneof("kind")
    if kind == "float_list":
        return np.asarray(feature.float_list.value, dtype=np.float32)
    return np.asarray(feature.int64_list.value, dtype=np.float32)


def _tfrecord_keys(p: Path, first: Any, label: str) -> tuple[str, list[str]]:
    """The label key and the feature keys, from the first record."""
    kinds = {key: first[key].WhichOneof("kind") for key in first}
    label_key = label
    if label not in kinds:
        others = [k for k, kind in kinds.items() if kind == "int64_list" and k != "split"]
        floats = [k for k, kind in kinds.items() if kind == "float_list"]
        if label == "label" and len(others) == 1 and floats:
            label_key = others[0]  # the one integer field beside float features
        else:
            raise UsageError(
                f"{p}: records have no label key '{label}' (keys: {', '.join(sorted(kinds))}); "
                "name the label key with --label KEY"
            )
    if kinds[label_key] != "int64_list":
        raise UsageError(f"{p}: label key '{label_key}' is not an int64 list; store class ids")
    if "features" in kinds and label_key != "features":
        return label_key, ["features"]
    keys = sorted(k for k, kind in kinds.items() if k not in (label_key, "split"))
    bytes_keys = [k for k in keys if kinds[k] not in ("float_list", "int64_list")]
    if bytes_keys or not keys:
        raise UsageError(
            f"{p}: keys {bytes_keys or sorted(kinds)} hold no numeric features; store features "
            "as float lists (encoded images: write them as files in class folders instead)"
        )
    return label_key, keys


# ---------------------------------------------------------------------------------------------
# Folders
# ---------------------------------------------------------------------------------------------


def _class_dirs(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _load_folder(root: Path, spec: ModelSpec, seed: int) -> Dataset:
    if spec.modality == "tabular":
        raise UsageError(
            f"{root}: is a folder, but {spec.name} takes a table; give .npz, .csv, .parquet "
            "or .tfrecord"
        )
    suffixes = (".wav",) if spec.modality == "audio" else IMAGE_SUFFIXES
    kind = "audio (.wav)" if spec.modality == "audio" else "image"
    subdirs = {d.name: d for d in _class_dirs(root)}
    if {"train", "test"} <= set(subdirs):
        train_dirs, test_dirs = _class_dirs(subdirs["train"]), _class_dirs(subdirs["test"])
        _check_no_empty_class(train_dirs + test_dirs, suffixes, kind)
        names = _folder_class_names(root, spec, [d.name for d in train_dirs])
        if sorted(d.name for d in test_dirs) != sorted(names):
            raise UsageError(
                f"{root}: train has classes {sorted(names)} but test has "
                f"{sorted(d.name for d in test_dirs)}; use the same class folders in both"
            )
        x_train, y_train = _read_class_dirs(root, train_dirs, names, suffixes, kind, spec)
        x_test, y_test = _read_class_dirs(root, test_dirs, names, suffixes, kind, spec)
        return _finish(spec, str(root), x_train, y_train, x_test, y_test, names)
    dirs = list(subdirs.values())
    if len(dirs) < 2:
        raise UsageError(
            f"{root}: has {len(dirs)} class folder(s) {[d.name for d in dirs]}; a dataset needs "
            f"one sub-folder of {kind} files per class, at least 2 ({root}/<class>/<file>)"
        )
    _check_no_empty_class(dirs, suffixes, kind)
    names = _folder_class_names(root, spec, [d.name for d in dirs])
    x, y = _read_class_dirs(root, dirs, names, suffixes, kind, spec)
    return _split_and_finish(spec, str(root), x, y, seed, names)


def _class_files(d: Path, suffixes: tuple[str, ...]) -> list[str]:
    with os.scandir(d) as entries:
        return sorted(
            e.path for e in entries if e.is_file() and Path(e.name).suffix.lower() in suffixes
        )


def _check_no_empty_class(dirs: list[Path], suffixes: tuple[str, ...], kind: str) -> None:
    for d in dirs:
        if not _class_files(d, suffixes):
            raise UsageError(
                f"{d}: class folder '{d.name}' has no {kind} files ({', '.join(suffixes)}); "
                "put its samples in it or remove it"
            )


def _folder_class_names(root: Path, spec: ModelSpec, found: list[str]) -> list[str]:
    if len(found) != spec.num_classes and spec.num_classes != _ANY_CLASS_COUNT:
        raise UsageError(
            f"{root}: has {len(found)} class folders {found[:12]} but {spec.name} has "
            f"{spec.num_classes} classes; make one folder per class"
        )
    if set(found) == set(spec.class_names):
        return list(spec.class_names)
    return sorted(found)


def _read_class_dirs(
    root: Path,
    dirs: list[Path],
    names: list[str],
    suffixes: tuple[str, ...],
    kind: str,
    spec: ModelSpec,
) -> tuple[np.ndarray, np.ndarray]:
    files: list[Path] = []
    labels: list[int] = []
    for d in dirs:
        found = _class_files(d, suffixes)
        files.extend(Path(f) for f in found)
        labels.extend([names.index(d.name)] * len(found))
    y = np.asarray(labels, dtype=np.int64)
    if spec.modality == "image":
        return _read_images(files, spec), y
    return _audio_features(root, [_read_wav(f) for f in files], spec), y


def decode_pixels(data: Any, channels: int, fmt: str | None = None) -> Any:
    """Encoded image bytes -> uint8 pixels ``(height, width, channels)``, in the tf.data graph.

    ``fmt`` ``png`` or ``jpeg`` uses that format's own decoder; None takes any of PNG, JPEG, BMP
    and GIF (the first frame), for folders that mix them."""
    import tensorflow as tf

    if fmt == "png":
        return tf.io.decode_png(data, channels=channels)
    if fmt == "jpeg":
        return tf.io.decode_jpeg(data, channels=channels)
    return tf.io.decode_image(data, channels=channels, expand_animations=False)


def read_image_files(
    paths: list[str], input_shape: tuple[int, int, int], batch_size: int = 256
) -> np.ndarray:
    """Image files as float32 ``(n, *input_shape)`` in [0, 1], in the order of ``paths``.

    Each is decoded to the channels of ``input_shape``, resized (bilinear) to its height and
    width, and scaled by 1/255. The files are read with the input-pipeline benchmark's fastest
    setting for one pass: parallel maps (order kept), batched, prefetched (the cache of its
    ``best`` pipeline pays only from a second epoch). An undecodable file raises ValueError
    naming it.
    """
    import tensorflow as tf

    height, width, channels = (int(d) for d in input_shape)

    def load(path: Any) -> Any:
        pixels = decode_pixels(tf.io.read_file(path), channels)
        return tf.image.resize(tf.cast(pixels, tf.float32), (height, width)) / 255.0

    options = tf.data.Options()
    options.deterministic = True
    ds = tf.data.Dataset.from_tensor_slices(tf.constant(paths, tf.string))
    ds = ds.map(tf.autograph.experimental.do_not_convert(load), tf.data.AUTOTUNE)
    ds = ds.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)
    try:
        batches = [batch.numpy() for batch in ds]
    except tf.errors.OpError:
        # tf.data names no file; decode them one by one to find the first that fails.
        for path in paths:
            try:
                load(tf.constant(path))
            except (tf.errors.OpError, ValueError):
                raise ValueError(f"{path}: not a decodable image") from None
        raise
    if not batches:
        return np.zeros((0, height, width, channels), np.float32)
    return np.concatenate(batches).astype(np.float32, copy=False)


def _read_images(files: list[Path], spec: ModelSpec) -> np.ndarray:
    try:
        return read_image_files([str(f) for f in files], tuple(spec.input_shape))
    except ValueError as exc:
        raise UsageError(f"{exc}; give PNG, JPEG, BMP or GIF files (or remove it)") from None


def _read_wav(f: Path) -> np.ndarray:
    from accelbench.models.audio import SAMPLE_RATE_HZ

    try:
        with wave.open(str(f), "rb") as w:
            rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
            frames = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError) as exc:
        raise UsageError(f"{f}: not a readable WAV file ({exc}); give 16-bit PCM WAV") from None
    if rate != SAMPLE_RATE_HZ or channels != 1 or width != 2:
        raise UsageError(
            f"{f}: is {rate} Hz, {channels} channel(s), {8 * width}-bit; accelbench needs 16000 Hz "
            "mono 16-bit PCM (convert with: sox in.wav -r 16000 -c 1 -b 16 out.wav)"
        )
    return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0


def _audio_features(root: Path, clips: list[np.ndarray], spec: ModelSpec) -> np.ndarray:
    assert spec.front_end is not None
    # Clips of one length go through the front end together; each keeps its own centre/padding.
    by_length: dict[int, list[int]] = {}
    for i, clip in enumerate(clips):
        by_length.setdefault(len(clip), []).append(i)
    out: np.ndarray | None = None
    for indices in by_length.values():
        try:
            features = spec.front_end(np.stack([clips[i] for i in indices]))
        except ValueError as exc:
            raise UsageError(f"{root}: {exc}; give longer clips") from None
        if out is None:
            out = np.empty((len(clips), *features.shape[1:]), dtype=np.float32)
        out[indices] = features
    assert out is not None
    return out
