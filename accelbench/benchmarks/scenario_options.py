"""The option models of the built-in module scenarios, as the scenario table names them.

Each one runs its module's own check first (``check_options``: one line per mistake, defaults
filled in, no framework imported), then states the checked mapping's types. They live apart from
the modules because the CLI's help reads those modules' name tables, and it imports no pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from accelbench.benchmarks import input_pipeline, serving, training


class InputPipelineOptions(BaseModel):
    """A suite's ``input_pipeline:`` mapping: formats and pipelines to time, and how long."""

    model_config = ConfigDict(extra="forbid")
    formats: list[str]
    pipelines: list[str]
    batch_size: int | None
    examples: int
    shards: int
    min_seconds: float
    check_training: bool | None

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> dict[str, Any]:
        return input_pipeline.check_options(data)


class TrainingOptions(BaseModel):
    """A suite's ``training:`` mapping: the configurations to train and the quality to reach."""

    model_config = ConfigDict(extra="forbid")
    seeds: int | None
    epochs: int | None
    batch_size: int | None
    precisions: list[str]
    xla: list[bool]
    strategies: list[str]
    devices: list[int]
    frameworks: list[str]
    target: float | None

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> dict[str, Any]:
        return training.check_options(data)


class ServingOptions(BaseModel):
    """A suite's ``serving:`` mapping: the server's modes, the load curve and the peak search."""

    model_config = ConfigDict(extra="forbid")
    modes: list[str]
    latency_bound_ms: float | None
    curve_points: int
    search_steps: int
    max_qps: float | None
    concurrency: int
    max_batch_size: int
    batch_timeout_us: int
    max_enqueued_batches: int
    num_batch_threads: int | None
    cache_size: int
    startup_timeout_s: float

    @model_validator(mode="before")
    @classmethod
    def _checked(cls, data: Any) -> dict[str, Any]:
        return serving.check_options(data)
