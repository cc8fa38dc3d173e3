"""Keras 3 -> Keras 2 (tf_keras): the same model rebuilt in tf_keras, for tfmot's training steps.

``model.save("x.keras")`` writes a Keras 3 model since TF 2.16, and tensorflow-model-optimization
wraps only tf_keras models. `bridge_to_tf_keras` rebuilds such a model in tf_keras:

1. It walks the Keras 3 functional graph node by node, deepest first, and replays each call on
   tf_keras tensors with the call's own arguments (lists for Add or Concatenate, keyword
   arguments). Walking the built graph, rather than translating the saved topology
   (``inbound_nodes``, whose format differs between the two Keras), reuses the one description of
   the topology that Keras 3 itself executes; a layer called twice stays one shared layer.
   Nested Sequential and functional sub-models are rebuilt the same way and called as layers.
2. Each layer is made from its Keras 3 config, translated: dtype policies become their names,
   ``{"module", "class_name", "config", "registered_name"}`` objects (initializers, regularizers,
   constraints) become tf_keras's ``{"class_name", "config"}``, tuples lists. A Keras 3 option
   that tf_keras lacks is dropped where it is unset and refused where it is set. Only tf_keras's
   built-in layer classes are made, so no code from the file runs.
3. The weights are copied layer by layer, shapes checked, and the two models must agree on a
   batch of the user's data (max abs difference <= 1e-4) before anything is optimized.

A layer that cannot be rebuilt (a custom class, a Keras 3 only layer or activation, a set option
tf_keras lacks) raises `BridgeError`, which names the layer, its class and the reason.
"""

from __future__ import annotations

import inspect
import time
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from accelbench.errors import UsageError, first_line

TOLERANCE = 1e-4
CHECK_SAMPLES = 32

# Activation names tf_keras knows but computes differently from Keras 3, and Keras 3 only names.
_ACTIVATIONS_REFUSED = {
    "hard_sigmoid": "Keras 3's hard_sigmoid is relu6(x + 3) / 6, tf_keras's clip(0.2x + 0.5, 0, 1)",
    "gelu": "Keras 3's gelu defaults to the tanh approximation, tf_keras's to the exact erf",
    "hard_silu": "tf_keras has no hard_silu activation",
    "hard_swish": "tf_keras has no hard_swish activation",
}
# Keys every tf_keras layer takes through ``Layer.__init__(**kwargs)``.
# fmt: skip below: 12 names packed as a paragraph, not one per line.
_BASE_LAYER_KEYS = {
    "name", "trainable", "dtype", "dynamic", "input_dim", "input_shape", "batch_input_shape",
    "batch_size", "weights", "activity_regularizer", "autocast", "implementation",
}  # fmt: skip


class BridgeError(UsageError):
    """A Keras 3 model that cannot be rebuilt in tf_keras: which layer, its class, and why."""

    def __init__(self, layer: str, class_name: str, reason: str) -> None:
        self.layer, self.class_name, self.reason = layer, class_name, reason
        super().__init__(
            f"layer '{layer}' ({class_name}) cannot be rebuilt in Keras 2 (tf_keras), which "
            f"tensorflow-model-optimization needs: {reason}; the post-training optimizations "
            "fp32/dynamic/float16/int8 still apply to the Keras 3 model"
        )


@dataclass(frozen=True)
class Bridged:
    """A tf_keras rebuild of a Keras 3 model, with what made it and how close it came."""

    model: Any
    keras_source: str
    bridged_to: str
    seconds: float
    max_abs_diff: float | None
    layers: int

    def notes(self) -> dict[str, Any]:
        """What a record says about the Keras that built the artifact."""
        return {
            "keras_source": self.keras_source,
            "bridged_to": self.bridged_to,
            "bridge_s": self.seconds,
            "bridge_max_abs_diff": self.max_abs_diff,
            "bridge_tolerance": TOLERANCE,
            "bridged_layers": self.layers,
        }


def is_keras3_model(model: Any) -> bool:
    """True for a model of the Keras 3 package (``keras.src``), not tf_keras."""
    return type(model).__module__.startswith("keras.")


def keras_source(model: Any) -> str:
    """'keras 3.x.y' or 'tf_keras 2.x.y': which Keras the model object belongs to."""
    if is_keras3_model(model):
        import keras

        return f"keras {keras.__version__}"
    if type(model).__module__.startswith("tf_keras."):
        import tf_keras

        return f"tf_keras {tf_keras.__version__}"
    return type(model).__module__.split(".")[0]


_CACHE: dict[int, tuple[Any, Bridged]] = {}


def bridged(model: Any, sample: np.ndarray | None) -> Bridged:
    """`bridge_to_tf_keras`, done once per model object (each optimization of a run reuses it)."""
    cached = _CACHE.get(id(model))
    if cached is not None and cached[0]() is model:
        return cached[1]
    result = bridge_to_tf_keras(model, sample)
    _CACHE[id(model)] = (weakref.ref(model), result)
    return result


def bridge_to_tf_keras(model: Any, sample: Any = None) -> Bridged:
    """Rebuild a Keras 3 model in tf_keras with its weights and compiled loss and optimizer.

    With ``sample`` (a batch of inputs, or a list of one per input), the two models' outputs on
    its first 32 rows must agree within 1e-4, else `BridgeError`.
    """
    from accelbench.keras_compat import legacy_keras

    tfk = legacy_keras()
    import keras

    started = time.perf_counter()
    rebuilder = _Rebuilder(keras, tfk)
    new = rebuilder.model(model)
    rebuilder.copy_weights()
    _compile_like(model, new, keras, tfk)
    difference = None
    if sample is not None:
        several = isinstance(sample, list | tuple)  # one array per input
        checked = [_rows(s) for s in sample] if several else _rows(sample)
        difference = _max_difference(model, new, checked)
        if not difference <= TOLERANCE:
            raise BridgeError(
                model.name,
                type(model).__name__,
                f"its tf_keras rebuild's outputs differ from the Keras 3 model's by "
                f"{difference:.3g} (more than {TOLERANCE:g}) on {CHECK_SAMPLES} samples or fewer",
            )
    return Bridged(
        model=new,
        keras_source=f"keras {keras.__version__}",
        bridged_to=f"tf_keras {tfk.__version__}",
        seconds=time.perf_counter() - started,
        max_abs_diff=difference,
        layers=len(rebuilder.pairs),
    )


class _Rebuilder:
    """Makes tf_keras layers and models from Keras 3 ones; remembers pairs to copy weights."""

    def __init__(self, keras: Any, tfk: Any) -> None:
        self.keras, self.tfk = keras, tfk
        self.made: dict[int, Any] = {}  # id(Keras 3 layer) -> tf_keras layer
        self.pairs: list[tuple[Any, Any]] = []

    def model(self, model: Any) -> Any:
        if id(model) in self.made:
            return self.made[id(model)]
        if not model.built or not getattr(model, "inputs", None):
            raise BridgeError(model.name, type(model).__name__, "it is not built (no inputs)")
        if isinstance(model, self.keras.Sequential):
            new = self._sequential(model)
        elif hasattr(model, "_nodes_by_depth") and type(model).__module__.startswith("keras.src"):
            new = self._functional(model)
        else:
            raise BridgeError(
                model.name,
                type(model).__name__,
                "a subclassed model has no graph of layers to rebuild; build it functionally",
            )
        self.made[id(model)] = new
        return new

    def _input(self, tensor: Any, name: str) -> Any:
        return self.tfk.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype, name=name)

    def _sequential(self, model: Any) -> Any:
        first = model.inputs[0]
        name = first._keras_history.operation.name
        layers = [self._layer(layer) for layer in model.layers]
        return self.tfk.Sequential([self._input(first, name), *layers], name=model.name)

    def _functional(self, model: Any) -> Any:
        tree = self.keras.tree
        tensors: dict[int, Any] = {}
        for tensor in model.inputs:
            tensors[id(tensor)] = self._input(tensor, tensor._keras_history.operation.name)
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                layer = self._layer(node.operation)
                replay = _Replay(tensors, self.keras)
                args = tree.map_structure(replay, node.arguments.args)
                kwargs = tree.map_structure(replay, node.arguments.kwargs)
                try:
                    outputs = layer(*args, **kwargs)
                except Exception as err:  # any tf_keras refusal names the layer
                    raise BridgeError(
                        node.operation.name, type(node.operation).__name__, first_line(err)
                    ) from None
                for old, new in zip(tree.flatten(node.outputs), tree.flatten(outputs), strict=True):
                    tensors[id(old)] = new
        inputs = tree.map_structure(lambda t: tensors[id(t)], model._inputs_struct)
        outputs = tree.map_structure(lambda t: tensors[id(t)], model._outputs_struct)
        return self.tfk.Model(inputs=inputs, outputs=outputs, name=model.name)

    def _layer(self, layer: Any) -> Any:
        if id(layer) in self.made:
            return self.made[id(layer)]
        if isinstance(layer, self.keras.Model):
            return self.model(layer)
        cls = type(layer)
        if not cls.__module__.startswith("keras.src."):
            raise BridgeError(
                layer.name,
                f"{cls.__module__}.{cls.__name__}",
                "a custom layer class has no tf_keras counterpart, and running its code is not "
                "safe; build the model from built-in Keras layers",
            )
        new = self._make(layer, cls.__name__)
        self.made[id(layer)] = new
        self.pairs.append((layer, new))
        return new

    def _make(self, layer: Any, class_name: str) -> Any:
        config = _translate(layer.get_config(), self.tfk)
        if class_name == "Activation" and config.get("activation") == "relu6":
            # tf_keras's ReLU layer is what Keras Applications use for ReLU6; TFLite fuses it.
            class_name, config = "ReLU", {**_base_keys(config), "max_value": 6.0}
        target = getattr(self.tfk.layers, class_name, None)
        if target is None or not isinstance(target, type):
            raise BridgeError(layer.name, class_name, f"tf_keras has no {class_name} layer")
        activation = config.get("activation")
        if isinstance(activation, str) and activation in _ACTIVATIONS_REFUSED:
            raise BridgeError(layer.name, class_name, _ACTIVATIONS_REFUSED[activation])
        try:
            config = _fit(config, target, _BASE_LAYER_KEYS)
            return target.from_config(config)
        except BridgeError:
            raise
        except Exception as err:  # tf_keras refuses a value: say which layer
            raise BridgeError(layer.name, class_name, first_line(err)) from None

    def copy_weights(self) -> None:
        for old, new in self.pairs:
            weights = old.get_weights()
            shapes_old = [tuple(w.shape) for w in weights]
            shapes_new = [tuple(w.shape) for w in new.get_weights()]
            if shapes_old != shapes_new:
                raise BridgeError(
                    old.name,
                    type(old).__name__,
                    f"its weights have shapes {shapes_old} in Keras 3 but {shapes_new} in tf_keras",
                )
            new.set_weights(weights)
            if isinstance(new, self.tfk.layers.Normalization) and new.input_mean is None:
                # An adapted Normalization computes mean and variance from its weights once.
                new.finalize_state()


class _Replay:
    """Maps a Keras 3 symbolic tensor to its tf_keras counterpart; other arguments pass through."""

    def __init__(self, tensors: dict[int, Any], keras: Any) -> None:
        self.tensors, self.keras = tensors, keras

    def __call__(self, value: Any) -> Any:
        if isinstance(value, self.keras.KerasTensor):
            return self.tensors[id(value)]
        return value


def _base_keys(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k in ("name", "trainable", "dtype")}


def _translate(value: Any, tfk: Any) -> Any:
    """A Keras 3 config value in tf_keras's format (see the module docstring)."""
    if isinstance(value, tuple | list):
        return [_translate(v, tfk) for v in value]
    if not isinstance(value, dict):
        return value
    if "class_name" in value and "config" in value and "module" in value:
        class_name, config = value["class_name"], value["config"]
        if class_name in ("DTypePolicy", "FloatDTypePolicy"):
            return config["name"]
        if class_name == "__numpy__":
            return config["value"]
        config = _translate(config, tfk)
        target = _tf_keras_class(value["module"], class_name, tfk)
        if target is not None and isinstance(config, dict):
            config = _fit(config, target, set())
        return {"class_name": class_name, "config": config}
    return {k: _translate(v, tfk) for k, v in value.items()}


def _tf_keras_class(module: str, class_name: str, tfk: Any) -> Any:
    """tf_keras's class of that name in the matching module (initializers, ...), or None."""
    part = module.rsplit(".", 1)[-1] if module else ""
    namespace = getattr(tfk, part, None) if part not in ("keras", "") else None
    found = getattr(namespace, class_name, None) if namespace is not None else None
    return found if isinstance(found, type) else None


def _fit(config: dict[str, Any], target: type, extra: set[str]) -> dict[str, Any]:
    """Drop the Keras 3 options ``target`` lacks where unset; refuse those that are set."""
    accepted = set(extra)
    for cls in target.__mro__:
        init = cls.__dict__.get("__init__")
        if init is not None:
            accepted.update(
                p.name
                for p in inspect.signature(init).parameters.values()
                if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
            )
    fitted = {}
    for key, item in config.items():
        if key in accepted:
            fitted[key] = item
        elif item not in (None, False, 0, "", [], {}):
            raise BridgeError(
                config.get("name", "?"),
                target.__name__,
                f"Keras 3 option {key}={item!r} has no tf_keras counterpart",
            )
    return fitted


def _compile_like(old: Any, new: Any, keras: Any, tfk: Any) -> None:
    """Compile the rebuild with the Keras 3 model's loss and optimizer, translated, if any."""
    loss = getattr(old, "loss", None)
    if loss is None:
        return
    try:
        if not isinstance(loss, str):
            loss = tfk.losses.deserialize(_translate(keras.losses.serialize(loss), tfk))
        optimizer = getattr(old, "optimizer", None)
        if optimizer is not None:
            # The class itself: tf_keras's deserialize may pick its legacy optimizer instead.
            target = getattr(tfk.optimizers, type(optimizer).__name__)
            config = _translate(keras.optimizers.serialize(optimizer), tfk)["config"]
            optimizer = target.from_config(config)
    except BridgeError:
        raise
    except Exception as err:  # a Keras 3 only loss or optimizer
        raise BridgeError(old.name, type(old).__name__, first_line(err)) from None
    new.compile(optimizer=optimizer if optimizer is not None else "adam", loss=loss)


def _rows(sample: Any) -> np.ndarray:
    rows = np.asarray(sample)[:CHECK_SAMPLES]
    return rows.astype(np.float32) if rows.dtype.kind == "f" else rows


def _max_difference(old: Any, new: Any, sample: Any) -> float:
    a = [np.asarray(x, np.float64) for x in _flat(old(sample, training=False))]
    b = [np.asarray(x, np.float64) for x in _flat(new(sample, training=False))]
    if [x.shape for x in a] != [x.shape for x in b]:
        return float("inf")
    return max((float(np.max(np.abs(x - y))) if x.size else 0.0) for x, y in zip(a, b, strict=True))


def _flat(outputs: Any) -> list[Any]:
    if isinstance(outputs, dict):
        return [outputs[k] for k in sorted(outputs)]
    if isinstance(outputs, list | tuple):
        return [y for x in outputs for y in _flat(x)]
    return [outputs]
