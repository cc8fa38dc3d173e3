"""The preparation worker: trains (or loads) one model, makes each optimized artifact, scores it.

Started as ``python -m accelbench.runner.prepare JOB.json RESULT.json`` by the sweep, once per
model. Every artifact is judged on the same test set, against the fp32 artifact's predictions,
by the same code whoever predicts. One optimization that fails is recorded with its reason and
the others go on.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from accelbench.errors import failure_reason
from accelbench.records import write_result

FLAG_THRESHOLD_POINTS = 2.0


def main(argv: list[str]) -> int:
    job_path, result_path = Path(argv[0]), Path(argv[1])
    job = json.loads(job_path.read_text(encoding="utf-8"))
    if job.get("trust_model") and job.get("path"):
        from accelbench.runtimes.model_inspect import trust

        trust(job["path"])
    try:
        result = prepare(job)
        code = 0
    except Exception as exc:  # noqa: BLE001 - the model's failure becomes every artifact's reason
        traceback.print_exc()
        result = {"status": "failed", "error": failure_reason(exc), "artifacts": {}}
        code = 1
    write_result(result_path, result)
    return code


class _Data:
    """Train and test arrays, class names, and how to score outputs, for any model kind."""

    def __init__(self, job: dict[str, Any]) -> None:
        self.spec = None
        if job["kind"] == "reference":
            from accelbench.models import get_spec

            self.spec = get_spec(job["model"])
            self.dataset = self.spec.load_data(job.get("data"), seed=int(job["seed"]))
            d = self.dataset
            self.x_train, self.y_train, self.x_test, self.y_test = (
                d.x_train,
                d.y_train,
                d.x_test,
                d.y_test,
            )
            self.class_names = list(d.class_names)
            self.metric = self.spec.metric
            # An autoencoder learns to reproduce its input: fine-tuning targets are the inputs.
            self.fine_tune_targets = d.x_train if self.spec.is_autoencoder else d.y_train
        else:
            from accelbench.models.data import load_user_data
            from accelbench.optimizers.user_models import load_user_model

            # Loaded here once: image folders and tables are shaped to the model's input.
            self.user_model = load_user_model(job["path"])
            classes = self.user_model.output_shape[-1]
            user_data = load_user_data(
                job["data"],
                self.user_model.input_shape[1:],
                num_classes=classes if isinstance(classes, int) else None,
                label=job.get("label") or "label",
            )
            self.x_train, self.y_train = user_data.x_train, user_data.y_train
            self.x_test, self.y_test = user_data.x_test, user_data.y_test
            self.settings = user_data.settings
            self.fine_tune_targets = self.y_train
            # Folder names or string labels where the data has them, ids otherwise.
            self.class_names = list(user_data.class_names)
            self.metric = "accuracy"

    def evaluate(self, predict) -> dict[str, Any]:
        """Quality, predictions and per-class accuracy of any predict(x) -> outputs function."""
        import numpy as np

        if self.spec is not None:
            from accelbench.models import evaluate

            return evaluate(self.spec, predict, self.dataset)
        scores = np.asarray(predict(self.x_test))
        predictions = np.argmax(scores, axis=1)
        quality = float(np.mean(predictions == self.y_test))
        return {"metric": "accuracy", "quality": quality, "predictions": predictions}


def prepare(job: dict[str, Any]) -> dict[str, Any]:
    from accelbench.keras_compat import legacy_keras

    legacy_keras()  # Keras 2 must be chosen before TensorFlow loads
    from accelbench.models.jax_models import is_jax_model
    from accelbench.optimizers import optimize

    out_dir = Path(job["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    data = _Data(job)
    result: dict[str, Any] = {"status": "ok", "error": None, "metric": data.metric}
    if job["kind"] != "reference":
        result["data_settings"] = data.settings
    jax_export = None
    if job["kind"] == "reference" and is_jax_model(job["model"]):
        make, result["training"], jax_export = _jax_model(job, data, out_dir)
    else:
        if job["kind"] == "reference":
            from accelbench.models import train

            trained = train(
                data.spec, data.dataset, seed=int(job["seed"]), epochs=job.get("epochs")
            )
            model = trained.model
            result["training"] = {
                "quality": trained.quality,
                "target": data.spec.target,
                "epochs": trained.epochs,
                "wall_s": trained.wall_s,
                "time_to_target_s": trained.time_to_target_s,
                "history": trained.history,
                "data_source": data.dataset.source,
            }
        else:
            model = data.user_model

        def make(name: str) -> Any:
            return optimize(
                model,
                name,
                (data.x_train, data.fine_tune_targets),
                out_dir,
                fine_tune_epochs=int(job["fine_tune_epochs"]),
                seed=int(job["seed"]),
            )

    artifacts = _make_artifacts(job, data, make)
    if jax_export is not None and artifacts.get("fp32", {}).get("status") == "ok":
        # The same trained function for runtime 'jax', where a GPU/TPU runs it.
        artifacts["fp32"]["jax_export"] = str(jax_export)
    result["artifacts"] = {k: v for k, v in artifacts.items() if k in job["optimizations"]}
    return result


def _jax_model(job: dict[str, Any], data: _Data, out_dir: Path) -> tuple[Any, dict, Path]:
    """Train a JAX reference model; its artifact maker (jax2tf), training figures, .jaxexport."""
    if "jax" not in sys.modules:
        # Preparation is recorded as this host's CPU work, even where a GPU is attached: the
        # accelerator is measured by its own cells (the .jaxexport is lowered for it as well).
        os.environ["JAX_PLATFORMS"] = "cpu"
    from accelbench.models import jax_models

    figures, params = jax_models.fit(
        job["model"],
        seed=int(job["seed"]),
        epochs=job.get("epochs"),
        batch_size=data.spec.batch_size,
        data=job.get("data"),
    )
    jax_export = jax_models.export_jax(job["model"], params, out_dir / "model.jaxexport")
    training = {k: v for k, v in figures.items() if k != "step_times_s"}
    training["jax_export"] = str(jax_export)

    def make(name: str) -> Any:
        from accelbench.optimizers.jax_tflite import export_tflite

        return export_tflite(
            job["model"],
            params,
            name,
            out_dir,
            x_train=data.x_train,
            y_train=data.y_train,
            seed=int(job["seed"]),
        )

    return make, training, jax_export


def _make_artifacts(job: dict[str, Any], data: _Data, make: Any) -> dict[str, Any]:
    """Make (``make(name) -> Artifact``) and score every optimization, fp32 first as baseline."""
    import numpy as np

    from accelbench.optimizers.analysis import artifact_stats
    from accelbench.optimizers.evaluation import compare_predictions, predict_tflite

    threads = os.cpu_count() or 1

    def scorer(path: Path):
        return lambda x: predict_tflite(path, x, threads=threads)

    names = list(dict.fromkeys(["fp32", *job["optimizations"]]))
    artifacts: dict[str, Any] = {}
    baseline: dict[str, Any] | None = None
    for name in names:
        entry: dict[str, Any] = {"status": "ok", "error": None}
        try:
            started = time.perf_counter()
            made = make(name)
            entry["optimize_s"] = time.perf_counter() - started
            entry["artifact"] = made.to_dict()
            evaluation = data.evaluate(scorer(made.path))
            entry["quality"] = float(evaluation["quality"])
            entry["per_class_accuracy"] = evaluation.get("per_class_accuracy")
            predictions = np.asarray(evaluation["predictions"])
            if baseline is None:
                baseline = {"predictions": predictions, "quality": entry["quality"]}
            k = len(data.class_names)
            # Predictions as one-hot scores: one comparison serves classifiers and the
            # autoencoder (whose "classes" are normal / anomalous detections).
            comparison = compare_predictions(
                data.y_test,
                np.eye(k)[predictions],
                np.eye(k)[baseline["predictions"]],
                data.class_names,
                threshold_points=FLAG_THRESHOLD_POINTS,
            )
            entry["quality_delta"] = entry["quality"] - baseline["quality"]
            if len(predictions) == len(data.y_test):
                # Which test examples this artifact gets right, in order: what a paired test
                # (McNemar) between two runs of the same evaluation set needs.
                hits = predictions == np.asarray(data.y_test)
                entry["correct_bits"] = "".join("1" if h else "0" for h in hits)
            entry["comparison"] = comparison
            entry["stats"] = artifact_stats(made.path)
        except Exception as exc:  # noqa: BLE001 - one optimization failing must not stop the rest
            traceback.print_exc()
            entry = {"status": "failed", "error": failure_reason(exc)}
        artifacts[name] = entry
    return artifacts


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main(sys.argv[1:]))
