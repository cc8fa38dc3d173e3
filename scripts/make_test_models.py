"""Writes the small test models in tests/data (run once; the outputs are committed).

Each model covers one shape of .tflite a user meets: float, full-integer int8, uint8 I/O, several
inputs and outputs, no signature, a dynamic batch dimension, integer token ids.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "tests/data")


def convert(model: tf.keras.Model, name: str, *, quant: str | None = None, rep=None) -> Path:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant in ("int8", "uint8io", "int8io"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = rep
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        io_type = tf.uint8 if quant == "uint8io" else tf.int8
        converter.inference_input_type = io_type
        converter.inference_output_type = io_type
    path = OUT / f"{name}.tflite"
    path.write_bytes(converter.convert())
    return path


def rep_for(shape: tuple[int, ...]):
    rng = np.random.default_rng(0)

    def gen():
        for _ in range(32):
            yield [rng.uniform(-1, 1, size=(1, *shape)).astype(np.float32)]

    return gen


def mlp(batch: int | None = 1) -> tf.keras.Model:
    tf.keras.utils.set_random_seed(0)
    inp = tf.keras.Input(shape=(64,), batch_size=batch, name="features")
    x = tf.keras.layers.Dense(32, activation="relu")(inp)
    out = tf.keras.layers.Dense(10, activation="softmax", name="probs")(x)
    return tf.keras.Model(inp, out)


def cnn() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(1)
    inp = tf.keras.Input(shape=(16, 16, 3), batch_size=1, name="image")
    x = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = tf.keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = tf.keras.layers.Conv2D(16, 1, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    out = tf.keras.layers.Dense(10, activation="softmax", name="probs")(x)
    return tf.keras.Model(inp, out)


def multi_io() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(2)
    img = tf.keras.Input(shape=(8, 8, 1), batch_size=1, name="image")
    vec = tf.keras.Input(shape=(4,), batch_size=1, name="vector")
    x = tf.keras.layers.Flatten()(tf.keras.layers.Conv2D(4, 3, activation="relu")(img))
    x = tf.keras.layers.Concatenate()([x, vec])
    cls = tf.keras.layers.Dense(3, activation="softmax", name="classes")(x)
    reg = tf.keras.layers.Dense(2, name="box")(x)
    return tf.keras.Model([img, vec], [cls, reg])


def embed() -> tf.keras.Model:
    tf.keras.utils.set_random_seed(3)
    ids = tf.keras.Input(shape=(16,), batch_size=1, dtype="int32", name="token_ids")
    x = tf.keras.layers.Embedding(100, 8)(ids)
    x = tf.keras.layers.GlobalAveragePooling1D()(x)
    out = tf.keras.layers.Dense(2, activation="softmax", name="probs")(x)
    return tf.keras.Model(ids, out)


def conv_stack(layers: int, size: int = 16, channels: int = 16) -> tf.keras.Model:
    """`layers` identical 3x3 convolutions (same shape, same cost) on a size x size x channels
    input: two stacks differ in work by their layer counts, by construction (accelbench ab)."""
    tf.keras.utils.set_random_seed(4)
    inp = tf.keras.Input(shape=(size, size, channels), batch_size=1, name="image")
    x = inp
    for _ in range(layers):
        x = tf.keras.layers.Conv2D(channels, 3, padding="same", activation="relu")(x)
    return tf.keras.Model(inp, x)


def write_conv_stack(path: Path, layers: int, size: int = 16, channels: int = 16) -> Path:
    """A conv_stack converted to .tflite at path."""
    converter = tf.lite.TFLiteConverter.from_keras_model(conv_stack(layers, size, channels))
    path.write_bytes(converter.convert())
    return path


def strip_signatures(src: Path, dst: Path) -> None:
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(src))
    model.signatureDefs = []
    flatbuffer_utils.write_model(model, str(dst))


def jax_export(path: Path) -> None:
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(0)
    w1 = jax.random.normal(key, (64, 32)) * 0.1
    w2 = jax.random.normal(jax.random.PRNGKey(1), (32, 10)) * 0.1

    def mlp_fn(x):
        return jax.nn.softmax(jnp.maximum(x @ w1, 0) @ w2)

    exported = jax.export.export(jax.jit(mlp_fn))(jax.ShapeDtypeStruct((1, 64), jnp.float32))
    path.write_bytes(exported.serialize())


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    m = mlp()
    convert(m, "mlp_f32")
    convert(m, "mlp_uint8io", quant="uint8io", rep=rep_for((64,)))
    tf.saved_model.save(m, str(OUT / "mlp_savedmodel"))
    m.save(OUT / "mlp.keras")
    c = cnn()
    convert(c, "cnn_f32")
    convert(c, "cnn_int8", quant="int8io", rep=rep_for((16, 16, 3)))
    convert(multi_io(), "multi_io_f32")
    convert(mlp(batch=None), "dynamic_batch_f32")
    convert(embed(), "embed_int32")
    strip_signatures(OUT / "mlp_f32.tflite", OUT / "no_signature.tflite")
    jax_export(OUT / "mlp.jaxexport")
    write_conv_stack(OUT / "conv2_f32.tflite", 2)
    write_conv_stack(OUT / "conv6_f32.tflite", 6)
    # Behind an HTTP endpoint, whose request costs about a millisecond, twenty-two more layers
    # are a difference that paired timing of endpoints shows clearly.
    write_conv_stack(OUT / "conv24_f32.tflite", 24)
    for p in sorted(OUT.iterdir()):
        print(p.name, p.stat().st_size if p.is_file() else "dir")


if __name__ == "__main__":
    main()
