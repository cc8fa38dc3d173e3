"""Datasets on disk in each input format, and the tf.data reader (read, decode, transform) of each.

`write_format` writes examples ``x`` (float32, ``(n, *shape)``) and labels ``y`` (int64) as
several shards of one format; `reader_for` returns a `FormatReader` whose three stages a
pipeline composes (`accelbench.benchmarks.input_pipeline` builds the pipelines):

- ``read(shard)``: a shard's path -> a dataset of raw records (bytes off storage);
- ``decode(raw)``: one raw record (or, when ``batch_decode``, a batch of them) -> flat features
  (float32, or uint8 pixels for images) and the label;
- ``transform(features, label)``: -> the model's float32 input shape (images scaled to [0, 1]);
  it works on one example or on a batch.

How each format is read, and why (everything runs in the tf.data graph unless said otherwise):

``csv``       ``label,f0,f1,...`` rows; ``TextLineDataset`` then ``tf.io.decode_csv``.
``jsonl``     ``{"label": 3, "features": [...]}`` per line (written by ``json.dumps``); parsed
              in the graph with an RE2 regex and ``decode_csv``, which reads exactly this fixed
              layout. A general JSON parser would be Python (``tf.py_function``) under the GIL,
              which no parallel setting could speed up.
``tfrecord``  ``tf.train.Example`` with ``features`` (float list) and ``label`` (int64), the
              layout `accelbench.models.data.save_tfrecord` writes and the loaders read;
              ``TFRecordDataset`` then ``tf.io.parse_single_example`` / ``parse_example``.
``parquet``   columns ``label`` (int64) and ``features`` (fixed-size list of float32), row groups
              of `PARQUET_ROW_GROUP` rows. tf.data has no Parquet reader (tensorflow-io is not a
              dependency), so each shard is read by ``from_generator`` over pyarrow row groups:
              reading and decoding happen in Python, under the GIL, one row group at a time.
``numpy``     a structured ``.npy`` per shard (``features`` float32 ``(F,)`` + ``label`` int64 per
              record, loadable with ``numpy.load``); read natively as fixed-length records after
              the .npy header (``FixedLengthRecordDataset``), decoded with ``tf.io.decode_raw``.
``png``       one file per example, ``shard_K/<index>_<label>.png``, 8-bit (pixels =
              round(x * 255)); ``read_file`` then ``tf.io.decode_png``, label from the file name.
``jpeg``      the same with ``decode_jpeg`` (quality `JPEG_QUALITY`; JPEG is lossy, so pixels
              differ slightly from the PNG ones).

Image formats apply only to image data, ``(H, W, 1 or 3)`` with values in [0, 1]; for other data
`skip_reason` says why they are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

FORMATS = ("csv", "jsonl", "tfrecord", "parquet", "numpy", "png", "jpeg")
IMAGE_FORMATS = ("png", "jpeg")
PARQUET_ROW_GROUP = 256
JPEG_QUALITY = 95
_JSON_LINE = r'^\{"label": (-?[0-9]+), "features": \[(.*)\]\}$'


@dataclass
class WrittenFormat:
    """One format's dataset on disk: its shard paths, total bytes and example count."""

    format: str
    shards: list[str]
    bytes: int
    examples: int
    feature_shape: tuple[int, ...]


@dataclass
class FormatReader:
    """The stages of one format's tf.data reader; see the module docstring."""

    written: WrittenFormat
    read: Callable[[Any], Any]
    decode: Callable[..., tuple[Any, Any]]
    transform: Callable[[Any, Any], tuple[Any, Any]]
    batch_decode: bool  # decode also works on a batch of raw records (vectorizable)
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def skip_reason(fmt: str, feature_shape: tuple[int, ...], x: np.ndarray) -> str | None:
    """Why ``fmt`` does not apply to this data, or None when it does."""
    if fmt not in IMAGE_FORMATS:
        return None
    if len(feature_shape) != 3 or feature_shape[-1] not in (1, 3):
        return (
            f"{fmt} holds images (height, width, 1 or 3 channels); these examples have shape "
            f"{tuple(feature_shape)}"
        )
    if x.size and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        return f"{fmt} holds 8-bit pixels; these examples have values outside [0, 1]"
    return None


def write_format(
    fmt: str, x: np.ndarray, y: np.ndarray, folder: str | Path, shards: int = 4
) -> WrittenFormat:
    """Write examples ``x`` and labels ``y`` in ``fmt`` as ``shards`` files (image folders)."""
    import numpy as np

    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    out = Path(folder) / fmt
    out.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, len(x), max(1, min(shards, len(x))) + 1).astype(int)
    paths = []
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        paths.append(_WRITERS[fmt](out, k, x[lo:hi], y[lo:hi], int(lo)))
    files = [p for s in paths for p in (Path(s).rglob("*") if Path(s).is_dir() else [Path(s)])]
    size = sum(f.stat().st_size for f in files if f.is_file())
    return WrittenFormat(fmt, [str(p) for p in paths], size, len(x), tuple(x.shape[1:]))


def _write_csv(out: Path, k: int, x: np.ndarray, y: np.ndarray, _start: int) -> Path:
    path = out / f"shard_{k}.csv"
    flat = x.reshape(len(x), -1)
    header = ",".join(["label", *(f"f{i}" for i in range(flat.shape[1]))])
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(header + "\n")
        for label, row in zip(y, flat, strict=True):
            # %.9g prints a float32 with enough digits to read back the same value.
            fh.write(f"{int(label)}," + ",".join(f"{v:.9g}" for v in row.tolist()) + "\n")
    return path


def _write_jsonl(out: Path, k: int, x: np.ndarray, y: np.ndarray, _start: int) -> Path:
    path = out / f"shard_{k}.jsonl"
    flat = x.reshape(len(x), -1)
    with open(path, "w", encoding="utf-8") as fh:
        for label, row in zip(y, flat, strict=True):
            # float32 -> float64 repr is exact, so parsing it as float32 returns the same value.
            fh.write(json.dumps({"label": int(label), "features": row.tolist()}) + "\n")
    return path


def _write_tfrecord(out: Path, k: int, x: np.ndarray, y: np.ndarray, _start: int) -> Path:
    from accelbench.models.data import save_tfrecord

    path = out / f"shard_{k}.tfrecord"
    save_tfrecord(path, x, y)
    return path


def _write_parquet(out: Path, k: int, x: np.ndarray, y: np.ndarray, _start: int) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = out / f"shard_{k}.parquet"
    flat = x.reshape(len(x), -1)
    features = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])
    table = pa.table({"label": pa.array(y), "features": features})
    pq.write_table(table, path, row_group_size=PARQUET_ROW_GROUP)
    return path


def _record_dtype(n_features: int) -> np.dtype:
    import numpy as np

    return np.dtype([("features", "<f4", (n_features,)), ("label", "<i8")])


def _write_numpy(out: Path, k: int, x: np.ndarray, y: np.ndarray, _start: int) -> Path:
    import numpy as np

    path = out / f"shard_{k}.npy"
    flat = x.reshape(len(x), -1)
    records = np.empty(len(x), dtype=_record_dtype(flat.shape[1]))
    records["features"] = flat
    records["label"] = y
    np.save(path, records)
    return path


def _image_writer(fmt: str) -> Callable[..., Path]:

    def write(out: Path, k: int, x: np.ndarray, y: np.ndarray, start: int) -> Path:
        import tensorflow as tf

        folder = out / f"shard_{k}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = to_pixels(x)
        for i, (image, label) in enumerate(zip(pixels, y, strict=True)):
            if fmt == "png":
                data = tf.io.encode_png(image)
            else:
                data = tf.io.encode_jpeg(image, quality=JPEG_QUALITY)
            name = f"{start + i:07d}_{int(label)}.{fmt}"
            (folder / name).write_bytes(data.numpy())
        return folder

    return write


def to_pixels(x: np.ndarray) -> np.ndarray:
    """Images in [0, 1] as the 8-bit pixels the image formats store."""
    import numpy as np

    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


_WRITERS: dict[str, Callable[..., Path]] = {
    "csv": _write_csv,
    "jsonl": _write_jsonl,
    "tfrecord": _write_tfrecord,
    "parquet": _write_parquet,
    "numpy": _write_numpy,
    "png": _image_writer("png"),
    "jpeg": _image_writer("jpeg"),
}


def reader_for(written: WrittenFormat, input_shape: tuple[int, ...]) -> FormatReader:
    """The tf.data reader of a written format, producing the model's ``input_shape``."""
    import numpy as np
    import tensorflow as tf

    n_features = int(np.prod(written.feature_shape))
    shape = [int(d) for d in input_shape]

    def reshape(features: Any, label: Any) -> tuple[Any, Any]:
        # One example has rank 1 (flat) or 3 (image); a batch has one more.
        batched = features.shape.rank in (2, 4)
        target = [-1, *shape] if batched else shape
        return tf.reshape(tf.cast(features, tf.float32), target), label

    def scale_pixels(features: Any, label: Any) -> tuple[Any, Any]:
        features, label = reshape(features, label)
        return features / 255.0, label

    fmt = written.format
    if fmt in ("csv", "jsonl"):
        defaults = [tf.constant(0, tf.int64)] + [tf.constant(0.0, tf.float32)] * n_features

        def decode_text(line: Any) -> tuple[Any, Any]:
            if fmt == "jsonl":
                line = tf.strings.regex_replace(line, _JSON_LINE, r"\1,\2")
            columns = tf.io.decode_csv(line, record_defaults=defaults)
            return tf.stack(columns[1:], axis=-1), columns[0]

        skip = 1 if fmt == "csv" else 0
        return FormatReader(
            written,
            read=lambda path: tf.data.TextLineDataset(path).skip(skip),
            decode=decode_text,
            transform=reshape,
            batch_decode=True,
        )
    if fmt == "tfrecord":
        spec = {
            "features": tf.io.FixedLenFeature([n_features], tf.float32),
            "label": tf.io.FixedLenFeature([], tf.int64),
        }

        def decode_example(serialized: Any) -> tuple[Any, Any]:
            if serialized.shape.rank == 0:
                parsed = tf.io.parse_single_example(serialized, spec)
            else:
                parsed = tf.io.parse_example(serialized, spec)
            return parsed["features"], parsed["label"]

        return FormatReader(
            written,
            read=lambda path: tf.data.TFRecordDataset(path),
            decode=decode_example,
            transform=reshape,
            batch_decode=True,
        )
    if fmt == "numpy":
        record_bytes = _record_dtype(n_features).itemsize
        feature_bytes = 4 * n_features
        header = {
            path: int(np.load(path, mmap_mode="r").offset) for path in written.shards
        }  # the .npy header length, which differs with the shape written in it
        header_of = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                list(header), tf.constant(list(header.values()), tf.int64)
            ),
            default_value=-1,
        )

        def read_npy(path: Any) -> Any:
            return tf.data.FixedLengthRecordDataset(
                path, record_bytes, header_bytes=header_of.lookup(path)
            )

        def decode_record(raw: Any) -> tuple[Any, Any]:
            features = tf.io.decode_raw(tf.strings.substr(raw, 0, feature_bytes), tf.float32)
            label = tf.io.decode_raw(tf.strings.substr(raw, feature_bytes, 8), tf.int64)
            return features, tf.squeeze(label, -1)

        return FormatReader(
            written,
            read=read_npy,
            decode=decode_record,
            transform=reshape,
            batch_decode=True,
            extra={"header_table": header_of},  # kept alive with the reader
        )
    if fmt == "parquet":
        signature = (
            tf.TensorSpec([None, n_features], tf.float32),
            tf.TensorSpec([None], tf.int64),
        )
        return FormatReader(
            written,
            read=lambda path: tf.data.Dataset.from_generator(
                _parquet_row_groups, args=(path,), output_signature=signature
            ).unbatch(),
            decode=lambda features, label: (features, label),
            transform=reshape,
            batch_decode=True,
            notes="read and decode are one Python stage (pyarrow row groups, under the GIL)",
        )
    if fmt in IMAGE_FORMATS:
        from accelbench.models.data import decode_pixels

        channels = int(written.feature_shape[-1])

        def read_images(folder: Any) -> Any:
            pattern = tf.strings.join([folder, f"/*.{fmt}"])
            files = tf.data.Dataset.list_files(pattern, shuffle=False)
            return files.map(lambda path: (path, tf.io.read_file(path)))

        def decode_image(path: Any, data: Any) -> tuple[Any, Any]:
            stem = tf.strings.split(tf.strings.split(path, "/")[-1], ".")[0]
            label = tf.strings.to_number(tf.strings.split(stem, "_")[-1], tf.int64)
            return decode_pixels(data, channels, fmt), label

        return FormatReader(
            written,
            read=read_images,
            decode=decode_image,
            transform=scale_pixels,
            batch_decode=False,  # decode_png/decode_jpeg take one image at a time
        )
    raise ValueError(f"unknown format {fmt!r}")


def _parquet_row_groups(path: bytes) -> Any:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path.decode())
    for i in range(parquet.num_row_groups):
        group = parquet.read_row_group(i, columns=["features", "label"])
        features = group.column("features").combine_chunks()
        width = features.type.list_size
        values = features.flatten().to_numpy(zero_copy_only=False)
        yield values.reshape(-1, width), group.column("label").to_numpy()
