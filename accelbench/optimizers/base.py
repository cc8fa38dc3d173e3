"""The transform protocol: the state a transform maps, `Transform`, `Pipeline` and `Artifact`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from accelbench.errors import UsageError

# Training-side steps run in this order, each at most once; the converter comes last.
RANK_PRUNE, RANK_CLUSTER, RANK_QAT, RANK_CONVERT = 0, 1, 2, 3
_RANK_WORDS = {
    RANK_PRUNE: "pruning",
    RANK_CLUSTER: "clustering",
    RANK_QAT: "quantization-aware training",
    RANK_CONVERT: "the converter",
}
ACCEPTED_NAMES = (
    "[pruneNN+ | prune_2of4+][clusterN+](fp32 | dynamic | float16 | int8 | int16x8 | qat_int8), "
    "for example prune50+int8, cluster16+int8 or prune50+qat_int8"
)


@dataclass(frozen=True)
class OptimizationState:
    """What flows through a pipeline: the model so far, the fine-tuning data and what was done.

    Keras-side transforms return a new ``model``; a converter sets ``tflite_path``. The flags
    (``pruned``, ``clusters``, ``quantization_aware``) let a later step preserve an earlier one's
    property (pruning-preserving QAT, sparse weights in the .tflite).
    """

    model: Any
    x_train: np.ndarray
    y_train: np.ndarray
    out_dir: Path
    artifact_name: str = "model"
    seed: int = 0
    fine_tune_epochs: int = 2
    batch_size: int = 32
    steps: tuple[str, ...] = ()
    fine_tune_s: float = 0.0
    pruned: str | None = None  # "magnitude" or "2of4"
    clusters: int | None = None
    quantization_aware: bool = False
    qat_float_layers: tuple[str, ...] = ()  # layers QAT left without fake-quant ranges
    tflite_path: Path | None = None
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def after(self, step: str, step_notes: dict[str, Any], **changes: Any) -> OptimizationState:
        """A new state with one more step recorded (the old state is left as it was)."""
        notes = {**self.notes, step: step_notes}
        return dataclasses.replace(self, steps=(*self.steps, step), notes=notes, **changes)


class Transform:
    """One model transform: ``name``, ``apply(state) -> state``; ``a | b`` composes in order.

    Transforms without parameters are single objects, and calling one returns it, so that
    ``prune(0.5) | int8`` and ``prune(0.5) | int8()`` are the same pipeline.
    """

    name: str = ""
    rank: int = RANK_CONVERT

    @property
    def converts(self) -> bool:
        """True for a Keras -> .tflite converter, False for a Keras -> Keras transform."""
        return self.rank == RANK_CONVERT

    def apply(self, state: OptimizationState) -> OptimizationState:
        raise NotImplementedError

    def supports(self, model: Any) -> str | None:
        """None when this transform can handle the model, else one sentence saying why not."""
        return None

    def __call__(self) -> Transform:
        return self

    def __or__(self, other: Transform) -> Pipeline:
        if not isinstance(other, Transform):
            return NotImplemented
        return Pipeline((*_flatten(self), *_flatten(other)))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


def _flatten(transform: Transform) -> tuple[Transform, ...]:
    return transform.transforms if isinstance(transform, Pipeline) else (transform,)


@dataclass(frozen=True, repr=False)
class Pipeline(Transform):
    """Transforms applied in order; checked on construction so a bad order fails before training."""

    transforms: tuple[Transform, ...]

    def __post_init__(self) -> None:
        _check_order(self.transforms)

    @property
    def rank(self) -> int:  # type: ignore[override]
        return max(t.rank for t in self.transforms)

    @property
    def name(self) -> str:  # type: ignore[override]
        """The record name: step names joined with '+' in the order applied.

        Two spellings keep names short: QAT followed by the int8 converter is one step,
        ``qat_int8``; and the fp32 converter after a training step is implied (``prune50``).
        """
        names = [t.name for t in self.transforms]
        if "qat" in names and names[-1] == "int8" and names[-2] == "qat":
            names[-2:] = ["qat_int8"]
        if len(names) > 1 and names[-1] == "fp32":
            names.pop()
        return "+".join(names)

    def apply(self, state: OptimizationState) -> OptimizationState:
        for transform in self.transforms:
            state = transform.apply(state)
        return state

    def supports(self, model: Any) -> str | None:
        for transform in self.transforms:
            problem = transform.supports(model)
            if problem:
                return problem
        return None


def _check_order(transforms: tuple[Transform, ...]) -> None:
    if not transforms:
        raise UsageError(f"an optimization needs at least one step; names are {ACCEPTED_NAMES}")
    for before, after in zip(transforms, transforms[1:], strict=False):
        if after.rank == before.rank == RANK_CONVERT:
            why = "an optimization ends in exactly one converter"
        elif after.rank == before.rank:
            why = "pruning, clustering and QAT each appear at most once"
        elif after.rank < before.rank:
            why = f"{_RANK_WORDS[after.rank]} comes before {_RANK_WORDS[before.rank]}"
        else:
            continue
        raise UsageError(
            f"'{after.name}' cannot follow '{before.name}' ({why}); names are {ACCEPTED_NAMES}"
        )
    for before, after in zip(transforms, transforms[1:], strict=False):
        if before.rank == RANK_QAT and after.name != "int8":
            raise UsageError(
                f"a quantization-aware-trained model converts only to int8, not '{after.name}'; "
                "use qat_int8, or a post-training optimization without QAT"
            )


@dataclass(frozen=True)
class Artifact:
    """A deployable file made by `optimize`, with how it was made.

    ``steps`` are the transform names in the order applied; ``fine_tune_s`` is the wall time
    spent fine-tuning (all steps); ``notes`` maps each step to what it did and measured.
    """

    path: Path
    name: str
    steps: tuple[str, ...]
    fine_tune_s: float
    notes: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "name": self.name,
            "steps": list(self.steps),
            "fine_tune_s": self.fine_tune_s,
            "notes": self.notes,
        }
