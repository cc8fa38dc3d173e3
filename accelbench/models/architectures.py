"""Keras 2 builders of the reference architectures (MLPerf Tiny v1.x training references and two
small models on scikit-learn data). Each returns a compiled, untrained ``tf_keras.Model``.

The MLPerf Tiny layers, filter counts, kernel sizes, strides and L2(1e-4) kernel regularisers
follow mlcommons/tiny ``benchmark/training/*/keras_model.py`` (ResNet-8 read from
``image_classification/keras_model.py``; DS-CNN, MobileNetV1 and the FC autoencoder written from
the published reference descriptions). Everything is built from plain layers, with no weight
download, and with no Lambda or subclassed layers so tensorflow-model-optimization can wrap it.
One deliberate change: batch-norm momentum 0.9 instead of 0.99 (see `_batch_norm`).
"""

from __future__ import annotations

from typing import Any

from accelbench.keras_compat import legacy_keras

# MLPerf Tiny's weight decay on convolution kernels.
_L2 = 1e-4
_BN_MOMENTUM = 0.9


def _start(seed: int) -> Any:
    keras = legacy_keras()
    # Seeds Python, numpy and TF, so the initial weights depend on `seed` only.
    keras.utils.set_random_seed(seed)
    return keras


def _batch_norm(keras: Any) -> Any:
    # Keras' default momentum 0.99 needs thousands of steps before the moving statistics used
    # at inference match training; the zoo's small datasets give a few hundred.
    return keras.layers.BatchNormalization(momentum=_BN_MOMENTUM)


def _compile_classifier(keras: Any, model: Any, learning_rate: float) -> Any:
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def resnet8(
    seed: int = 0,
    *,
    input_shape: tuple[int, ...] = (32, 32, 3),
    num_classes: int = 10,
    learning_rate: float = 1e-3,
) -> Any:
    """MLPerf Tiny image classification ResNet-8 (the EEMBC ResNet v1: 16-32-64 filters), ~78k
    parameters."""
    keras = _start(seed)
    layers = keras.layers
    reg = keras.regularizers.l2(_L2)

    def conv(filters: int, kernel: int, strides: int) -> Any:
        return layers.Conv2D(
            filters,
            kernel,
            strides=strides,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=reg,
        )

    inputs = keras.Input(shape=input_shape)
    x = conv(16, 3, 1)(inputs)
    x = _batch_norm(keras)(x)
    x = layers.Activation("relu")(x)
    for filters, strides in ((16, 1), (32, 2), (64, 2)):
        y = conv(filters, 3, strides)(x)
        y = _batch_norm(keras)(y)
        y = layers.Activation("relu")(y)
        y = conv(filters, 3, 1)(y)
        y = _batch_norm(keras)(y)
        if strides != 1:
            # A 1x1 strided convolution matches the identity path to the new shape.
            x = conv(filters, 1, strides)(x)
        x = layers.Add()([x, y])
        x = layers.Activation("relu")(x)
    x = layers.AveragePooling2D(pool_size=int(min(x.shape[1:3])))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax", kernel_initializer="he_normal")(x)
    model = keras.Model(inputs, outputs, name="ic_resnet8")
    return _compile_classifier(keras, model, learning_rate)


def ds_cnn(
    seed: int = 0,
    *,
    input_shape: tuple[int, ...] = (49, 10, 1),
    num_classes: int = 12,
    learning_rate: float = 1e-3,
) -> Any:
    """MLPerf Tiny keyword spotting DS-CNN (small): a 10x4 conv and four depthwise-separable
    blocks of 64 filters, ~25k parameters (~24k trainable)."""
    keras = _start(seed)
    layers = keras.layers
    reg = keras.regularizers.l2(_L2)
    filters = 64

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=reg)(
        inputs
    )
    x = _batch_norm(keras)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.2)(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D((3, 3), padding="same", depthwise_regularizer=reg)(x)
        x = _batch_norm(keras)(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=reg)(x)
        x = _batch_norm(keras)(x)
        x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    # The reference pools (input // 2): 24 x 5 over the 25 x 5 map, leaving a 1 x 1 output.
    x = layers.AveragePooling2D(pool_size=(input_shape[0] // 2, input_shape[1] // 2))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="kws_dscnn")
    return _compile_classifier(keras, model, learning_rate)


def mobilenet_v1(
    seed: int = 0,
    *,
    input_shape: tuple[int, ...] = (96, 96, 3),
    num_classes: int = 2,
    learning_rate: float = 1e-3,
    alpha: float = 0.25,
) -> Any:
    """MLPerf Tiny visual wake words MobileNetV1 (alpha 0.25, plain ReLU, average pool, no
    dropout, as in the reference), ~220k parameters."""
    keras = _start(seed)
    layers = keras.layers
    reg = keras.regularizers.l2(_L2)

    def bn_relu(x: Any) -> Any:
        return layers.Activation("relu")(_batch_norm(keras)(x))

    # Pointwise filters at alpha 1 and the stride of each depthwise-separable block.
    blocks = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)]
    blocks += [(512, 1)] * 5 + [(1024, 2), (1024, 1)]

    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(
        int(32 * alpha),
        3,
        strides=2,
        padding="same",
        kernel_initializer="he_normal",
        kernel_regularizer=reg,
    )(inputs)
    x = bn_relu(x)
    for filters, strides in blocks:
        x = layers.DepthwiseConv2D(
            3,
            strides=strides,
            padding="same",
            depthwise_initializer="he_normal",
            depthwise_regularizer=reg,
        )(x)
        x = bn_relu(x)
        x = layers.Conv2D(
            int(filters * alpha),
            1,
            padding="same",
            kernel_initializer="he_normal",
            kernel_regularizer=reg,
        )(x)
        x = bn_relu(x)
    x = layers.AveragePooling2D(pool_size=tuple(x.shape[1:3]))(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="vww_mobilenet")
    return _compile_classifier(keras, model, learning_rate)


def fc_autoencoder(
    seed: int = 0,
    *,
    input_dim: int = 640,
    learning_rate: float = 1e-3,
) -> Any:
    """MLPerf Tiny anomaly detection autoencoder: 4 x Dense(128), an 8-unit bottleneck, 4 x
    Dense(128), each with batch norm and ReLU, then a linear reconstruction; ~270k parameters."""
    keras = _start(seed)
    layers = keras.layers

    def dense_bn_relu(x: Any, units: int) -> Any:
        x = layers.Dense(units)(x)
        x = _batch_norm(keras)(x)
        return layers.Activation("relu")(x)

    inputs = keras.Input(shape=(input_dim,))
    x = inputs
    for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
        x = dense_bn_relu(x, units)
    outputs = layers.Dense(input_dim)(x)
    model = keras.Model(inputs, outputs, name="ad_autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss="mse")
    return model


def digits_cnn(
    seed: int = 0,
    *,
    input_shape: tuple[int, ...] = (8, 8, 1),
    num_classes: int = 10,
    learning_rate: float = 3e-3,
) -> Any:
    """A small CNN for 8x8 grey digits: two 3x3 convolutions, a 2x2 max pool, Dense(64); ~38k
    parameters."""
    keras = _start(seed)
    layers = keras.layers
    inputs = keras.Input(shape=input_shape)
    x = layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(64, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="digits_cnn")
    return _compile_classifier(keras, model, learning_rate)


def tabular_mlp(
    seed: int = 0,
    *,
    input_shape: tuple[int, ...] = (30,),
    num_classes: int = 2,
    learning_rate: float = 3e-3,
) -> Any:
    """An MLP for standardized tabular features: Dense(32) and Dense(16) with ReLU."""
    keras = _start(seed)
    layers = keras.layers
    inputs = keras.Input(shape=input_shape)
    x = layers.Dense(32, activation="relu")(inputs)
    x = layers.Dense(16, activation="relu")(x)
    outputs = layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs, name="breast_cancer_mlp")
    return _compile_classifier(keras, model, learning_rate)
