"""Keras -> Keras transforms that fine-tune: magnitude and 2:4 pruning, clustering, QAT (tfmot)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from accelbench.errors import UsageError
from accelbench.optimizers.base import (
    RANK_CLUSTER,
    RANK_PRUNE,
    RANK_QAT,
    OptimizationState,
    Transform,
)

TFMOT_LIMIT = (
    "tensorflow-model-optimization needs a Sequential or functional Keras 2 model; rebuild it "
    "functionally or use the post-training optimizations fp32/dynamic/float16/int8 only"
)


def tfmot_problem(model: Any) -> str | None:
    """None when tfmot can wrap this model, else the sentence that names the limit and the way out.

    tfmot itself refuses anything but a tf_keras Sequential or functional model (it checks
    ``_is_graph_network``); asking the same question first turns its late ValueError, raised
    after the data are loaded, into an early UsageError.
    """
    from accelbench.keras_compat import legacy_keras

    keras = legacy_keras()
    if not isinstance(model, keras.Model):
        kind = f"{type(model).__module__}.{type(model).__name__}"
        return f"the model is a {kind}, not a Keras 2 (tf_keras) model: {TFMOT_LIMIT}"
    if not isinstance(model, keras.Sequential) and not getattr(model, "_is_graph_network", False):
        return f"the model is a subclassed Keras model ({type(model).__name__}): {TFMOT_LIMIT}"
    return None


class TrainingTransform(Transform):
    """A Keras -> Keras step that wraps the model with tfmot and fine-tunes it."""

    learning_rate: ClassVar[float] = 1e-4

    def supports(self, model: Any) -> str | None:
        return tfmot_problem(model)

    def _wrap_and_fine_tune(
        self,
        state: OptimizationState,
        make: Callable[[], Any],
        what: str,
        callbacks: list[Any] | None = None,
        make_each: Callable[[], tuple[Any, list[str]]] | None = None,
    ) -> tuple[Any, Any, float, dict[str, Any]]:
        """Wrap a clone of the model with tfmot, fine-tune it; (wrapped, loss, seconds, notes).

        ``make`` wraps the whole model; where tfmot refuses one of its layers, ``make_each``
        (`_wrap_each`) wraps layer by layer and the notes name the layers left as they were.
        """
        loss = _loss(state.model)
        left: list[str] = []
        try:
            wrapped = _wrap(make, what)
        except UsageError:
            if make_each is None:
                raise
            wrapped, left = _wrap(make_each, what)
        seconds = _fine_tune(wrapped, state, loss, self.learning_rate, callbacks)
        notes: dict[str, Any] = {
            "fine_tune_epochs": state.fine_tune_epochs,
            "learning_rate": self.learning_rate,
            "fine_tune_s": seconds,
            "fine_tune_mode": "eager" if fine_tunes_eagerly(state) else "graph",
        }
        if left:
            notes["layers_left_unwrapped"] = left
        return wrapped, loss, seconds, notes


def _clone(model: Any) -> Any:
    """A copy with the same weights: tfmot wrappers share layers, so would edit the caller's."""
    from accelbench.keras_compat import legacy_keras

    keras = legacy_keras()
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def _wrap_each(
    model: Any, wrap_layer: Callable[[Any], Any], supports: Callable[[Any], bool] | None = None
) -> tuple[Any, list[str]]:
    """A clone in which each layer tfmot can wrap is wrapped, and each weightless other one kept.

    tensorflow-model-optimization's documented way to wrap some layers only: ``clone_model`` with
    a ``clone_function``. Used when the whole-model call refuses a layer: a layer with no trainable
    weights (Rescaling, Normalization, Multiply) has nothing to prune, cluster or train, so it
    stays float as it is; a layer with trainable weights that tfmot cannot wrap is still refused,
    by name. ``supports`` decides where the wrapper itself does not check (QAT's annotation);
    else the wrapper's ValueError says no. Returns the clone and the layers left unwrapped.
    """
    from accelbench.keras_compat import legacy_keras

    keras = legacy_keras()
    left: list[str] = []

    def clone(layer: Any) -> Any:
        if supports is None or supports(layer):
            try:
                return wrap_layer(layer)
            except ValueError:
                if supports is not None:
                    raise
        if layer.trainable_weights:
            raise ValueError(
                f"layer '{layer.name}' ({type(layer).__name__}) has trainable weights and no "
                "tfmot support"
            )
        left.append(layer.name)
        return layer

    return keras.models.clone_model(_clone(model), clone_function=clone), left


def _loss(model: Any) -> Any:
    loss = getattr(model, "loss", None)
    if loss is None:
        raise UsageError(
            "the model has no compiled loss, which fine-tuning needs; compile it with its training "
            "loss before saving, or use the post-training optimizations fp32/dynamic/float16/int8"
        )
    return loss


def _steps_per_epoch(state: OptimizationState) -> int:
    return max(1, math.ceil(len(state.x_train) / state.batch_size))


def _wrap(make: Callable[[], Any], what: str) -> Any:
    """Run a tfmot wrapper; its refusal of a layer becomes a one-line UsageError.

    tfmot raises ValueError for a layer pruning or clustering cannot wrap, RuntimeError for one
    quantize_apply cannot quantize.
    """
    try:
        return make()
    except (ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UsageError(
            f"tensorflow-model-optimization cannot apply {what} to this model ({first}); "
            "use a model built from built-in Keras layers, or a post-training optimization"
        ) from None


EAGER_MAX_STEPS = 20


def fine_tunes_eagerly(state: OptimizationState) -> bool:
    """Few steps run eagerly: tracing a tfmot-wrapped network costs more than it saves.

    ``scripts/bench_fine_tune_mode.py`` (magnitude pruning, 2-core VM, 2026-12-06): a wrapped
    MobileNetV2 took 1.2 / 3.0 / 20.5 s eagerly against 19.7 / 34.1 / 58.2 s as a graph for 1 / 5
    / 20 steps; a small CNN 0.7 / 0.4 s against 1.9 / 1.4 s for 1 / 5 steps and, at 20, 1.30 s
    eagerly against 1.14 s. At most ``EAGER_MAX_STEPS`` steps, then, eager saves seconds to
    minutes on a large model and costs at most a fraction of a second on a small one; longer
    runs (any real fine-tuning) use graphs.
    """
    return _steps_per_epoch(state) * state.fine_tune_epochs <= EAGER_MAX_STEPS


def _fine_tune(
    model: Any,
    state: OptimizationState,
    loss: Any,
    learning_rate: float,
    callbacks: list[Any] | None = None,
) -> float:
    """Fine-tune with the model's own loss, seeded; returns the wall time in seconds."""
    from accelbench.keras_compat import legacy_keras

    keras = legacy_keras()
    keras.utils.set_random_seed(state.seed)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss=loss,
        run_eagerly=fine_tunes_eagerly(state),
    )
    start = time.perf_counter()
    model.fit(
        state.x_train,
        state.y_train,
        epochs=state.fine_tune_epochs,
        batch_size=state.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=callbacks or [],
    )
    return time.perf_counter() - start


def kernel_arrays(model: Any) -> dict[str, np.ndarray]:
    """Each conv/dense layer's kernel as numpy, by layer name (nested models included)."""
    kernels: dict[str, np.ndarray] = {}
    for layer in _layers(model):
        for attribute in ("kernel", "depthwise_kernel"):
            weight = getattr(layer, attribute, None)
            if weight is not None and hasattr(weight, "numpy"):
                kernels[layer.name] = np.asarray(weight.numpy())
    return kernels


def _layers(model: Any) -> list[Any]:
    found = []
    for layer in getattr(model, "layers", []):
        found.extend(_layers(layer) if hasattr(layer, "layers") else [layer])
    return found


def _kernel_sparsity(model: Any) -> float:
    kernels = list(kernel_arrays(model).values())
    total = sum(k.size for k in kernels)
    return float(sum(int(np.count_nonzero(k == 0)) for k in kernels) / total) if total else 0.0


def _compiled(model: Any, loss: Any) -> Any:
    model.compile(loss=loss)  # later steps read the loss back from the model
    return model


@dataclass(frozen=True, repr=False)
class Prune(TrainingTransform):
    """Magnitude pruning to ``sparsity`` of every prunable kernel: PolynomialDecay + fine-tuning."""

    sparsity: float
    rank: ClassVar[int] = RANK_PRUNE
    learning_rate: ClassVar[float] = 1e-3  # pruning removes half the weights: recovery needs more

    def __post_init__(self) -> None:
        percent = self.sparsity * 100 if isinstance(self.sparsity, int | float) else -1
        if not 1 <= percent <= 99 or abs(percent - round(percent)) > 1e-9:
            raise UsageError(
                f"prune sparsity must be a whole percent between 0.01 and 0.99 (prune50 is 0.5), "
                f"not {self.sparsity!r}"
            )

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"prune{round(self.sparsity * 100)}"

    def apply(self, state: OptimizationState) -> OptimizationState:
        import tensorflow_model_optimization as tfmot

        sparsity_api = tfmot.sparsity.keras
        total = _steps_per_epoch(state) * state.fine_tune_epochs
        frequency = max(1, total // 10)
        # Reach the target two thirds of the way through, so the rest of the fine-tuning
        # recovers accuracy at the final sparsity; end_step on a pruning step hits it exactly.
        end_step = (total * 2 // 3) // frequency * frequency
        if end_step < frequency:
            schedule = sparsity_api.ConstantSparsity(self.sparsity, begin_step=0, frequency=1)
            schedule_text = f"ConstantSparsity({self.sparsity}) from step 0 (only {total} steps)"
        else:
            schedule = sparsity_api.PolynomialDecay(
                initial_sparsity=0.0,
                final_sparsity=self.sparsity,
                begin_step=0,
                end_step=end_step,
                frequency=frequency,
            )
            schedule_text = (
                f"PolynomialDecay(0 -> {self.sparsity}, steps 0..{end_step} every {frequency}, "
                f"of {total})"
            )
        wrapped, loss, seconds, notes = self._wrap_and_fine_tune(
            state,
            lambda: sparsity_api.prune_low_magnitude(
                _clone(state.model), pruning_schedule=schedule
            ),
            "magnitude pruning",
            [sparsity_api.UpdatePruningStep()],
            lambda: _wrap_each(
                state.model,
                lambda layer: sparsity_api.prune_low_magnitude(layer, pruning_schedule=schedule),
            ),
        )
        model = _compiled(sparsity_api.strip_pruning(wrapped), loss)
        notes.update(
            target_sparsity=self.sparsity,
            kernel_sparsity=_kernel_sparsity(model),
            schedule=schedule_text,
        )
        return state.after(
            self.name,
            notes,
            model=model,
            pruned="magnitude",
            fine_tune_s=state.fine_tune_s + seconds,
        )


@dataclass(frozen=True, repr=False)
class Prune2of4(TrainingTransform):
    """Structured 2:4 sparsity: at least 2 zeros in every 4 consecutive input-channel weights.

    tfmot groups along the last axis of the TFLite layout (input channels of a conv's
    [out, h, w, in] filter and of a dense [out, in] matrix), the layout sparse kernels read.
    """

    rank: ClassVar[int] = RANK_PRUNE
    learning_rate: ClassVar[float] = 1e-3
    name: ClassVar[str] = "prune_2of4"  # type: ignore[misc]

    def apply(self, state: OptimizationState) -> OptimizationState:
        import tensorflow_model_optimization as tfmot

        sparsity_api = tfmot.sparsity.keras
        total = _steps_per_epoch(state) * state.fine_tune_epochs
        # The 2:4 mask is recomputed at each pruning step (the sparsity number is not used).
        frequency = max(1, total // 10)
        schedule = sparsity_api.ConstantSparsity(0.5, begin_step=0, frequency=frequency)
        wrapped, loss, seconds, notes = self._wrap_and_fine_tune(
            state,
            lambda: sparsity_api.prune_low_magnitude(
                _clone(state.model), pruning_schedule=schedule, sparsity_m_by_n=(2, 4)
            ),
            "2:4 pruning",
            [sparsity_api.UpdatePruningStep()],
            lambda: _wrap_each(
                state.model,
                lambda layer: sparsity_api.prune_low_magnitude(
                    layer, pruning_schedule=schedule, sparsity_m_by_n=(2, 4)
                ),
            ),
        )
        model = _compiled(sparsity_api.strip_pruning(wrapped), loss)
        notes.update(
            pattern="2:4 along input channels",
            kernel_sparsity=_kernel_sparsity(model),
            mask_update_every_steps=frequency,
        )
        return state.after(
            self.name, notes, model=model, pruned="2of4", fine_tune_s=state.fine_tune_s + seconds
        )


@dataclass(frozen=True, repr=False)
class Cluster(TrainingTransform):
    """Weight clustering: each kernel keeps ``clusters`` distinct values (k-means++ centroids).

    After pruning, clustering keeps the zeros (tfmot's sparsity-preserving clustering).
    """

    clusters: int
    rank: ClassVar[int] = RANK_CLUSTER

    def __post_init__(self) -> None:
        if isinstance(self.clusters, bool) or not isinstance(self.clusters, int):
            raise UsageError(f"cluster count must be an integer such as 16, not {self.clusters!r}")
        if not 2 <= self.clusters <= 256:
            raise UsageError(
                f"cluster count must be between 2 and 256 (cluster16 is 16), not {self.clusters}"
            )

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"cluster{self.clusters}"

    def apply(self, state: OptimizationState) -> OptimizationState:
        import tensorflow_model_optimization as tfmot

        clustering = tfmot.clustering.keras
        preserve_sparsity = state.pruned is not None

        def cluster_weights(model_or_layer: Any) -> Any:
            return clustering.cluster_weights(
                model_or_layer,
                number_of_clusters=self.clusters,
                cluster_centroids_init=clustering.CentroidInitialization.KMEANS_PLUS_PLUS,
                preserve_sparsity=preserve_sparsity,
            )

        wrapped, loss, seconds, notes = self._wrap_and_fine_tune(
            state,
            lambda: cluster_weights(_clone(state.model)),
            "weight clustering",
            make_each=lambda: _wrap_each(state.model, cluster_weights),
        )
        model = _compiled(clustering.strip_clustering(wrapped), loss)
        kernels = kernel_arrays(model)
        notes.update(
            clusters=self.clusters,
            preserve_sparsity=preserve_sparsity,
            max_unique_kernel_values=max((len(np.unique(k)) for k in kernels.values()), default=0),
            kernel_sparsity=_kernel_sparsity(model),
        )
        return state.after(
            self.name,
            notes,
            model=model,
            clusters=self.clusters,
            fine_tune_s=state.fine_tune_s + seconds,
        )


@dataclass(frozen=True, repr=False)
class QAT(TrainingTransform):
    """Quantization-aware training for int8, preserving earlier pruning and clustering.

    The scheme follows what came before: plain ``quantize_model``; after pruning,
    ``Default8BitPrunePreserveQuantizeScheme`` (zeros stay zero); after clustering,
    ``Default8BitClusterPreserveQuantizeScheme`` (centroids stay shared, zeros too if pruned).
    """

    rank: ClassVar[int] = RANK_QAT
    name: ClassVar[str] = "qat"  # type: ignore[misc]

    def apply(self, state: OptimizationState) -> OptimizationState:
        import tensorflow_model_optimization as tfmot

        quantization = tfmot.quantization.keras
        scheme, scheme_name = _qat_scheme(tfmot, state)
        model = _clone(state.model)
        if scheme is None:
            make = lambda: quantization.quantize_model(model)  # noqa: E731
        else:
            make = lambda: quantization.quantize_apply(  # noqa: E731
                quantization.quantize_annotate_model(model), scheme
            )
        applied = scheme or quantization.default_8bit.Default8BitQuantizeScheme()
        registry = applied.get_quantize_registry()

        def make_each() -> tuple[Any, list[str]]:
            # Layers with weights are annotated as quantize_annotate_model does (BatchNorm is
            # folded by quantize_apply's transforms); weightless ones the registry lacks stay float.
            annotated, left = _wrap_each(
                state.model,
                quantization.quantize_annotate_layer,
                lambda layer: bool(layer.trainable_weights) or registry.supports(layer),
            )
            return quantization.quantize_apply(annotated, applied), left

        wrapped, _, seconds, notes = self._wrap_and_fine_tune(
            state, make, "quantization-aware training", make_each=make_each
        )
        notes["scheme"] = scheme_name
        return state.after(
            self.name,
            notes,
            model=wrapped,
            quantization_aware=True,
            qat_float_layers=tuple(notes.get("layers_left_unwrapped", ())),
            fine_tune_s=state.fine_tune_s + seconds,
        )


def _qat_scheme(tfmot: Any, state: OptimizationState) -> tuple[Any, str]:
    combine = getattr(getattr(tfmot, "experimental", None), "combine", None)
    if state.clusters is not None:
        cluster_scheme = getattr(combine, "Default8BitClusterPreserveQuantizeScheme", None)
        if cluster_scheme is not None:
            preserve = state.pruned is not None
            name = "Default8BitClusterPreserveQuantizeScheme"
            return cluster_scheme(preserve_sparsity=preserve), (
                f"{name}(preserve_sparsity={preserve})"
            )
        # Older tfmot: no cluster-preserving QAT; plain QAT may split the clusters.
    if state.pruned is not None:
        prune_scheme = tfmot.quantization.keras.collab_opts.Default8BitPrunePreserveQuantizeScheme
        return prune_scheme(), "Default8BitPrunePreserveQuantizeScheme"
    return None, "default 8-bit (quantize_model)"


def prune(sparsity: float) -> Prune:
    """Magnitude pruning to ``sparsity`` (0.5 -> ``prune50``) with fine-tuning."""
    return Prune(sparsity)


prune_2of4 = Prune2of4()
qat = QAT()


def cluster(clusters: int) -> Cluster:
    """Weight clustering to ``clusters`` shared values per kernel (16 -> ``cluster16``)."""
    return Cluster(clusters)
