"""`accelbench load`: MLPerf LoadGen against any TensorFlow Serving REST endpoint."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from accelbench.cli.base import Command, add_api_key_arguments, api_key, check_run_dir
from accelbench.errors import UsageError

LOAD_SCENARIOS = ("server", "single-stream", "offline")


class Load(Command):
    name = "load"
    help = "load-test a TensorFlow Serving REST endpoint (any URL) with MLPerf LoadGen"
    description = (
        "Run a LoadGen scenario against POST URL/v1/models/NAME:predict, or find the "
        "highest Server QPS whose p99 latency stays under the bound; print the table and write "
        "the run folder (records.jsonl, results.parquet, summary.md, report)."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from accelbench.benchmarks.serving import DEFAULTS

        parser.add_argument("url", help="the endpoint, e.g. http://127.0.0.1:8501")
        parser.add_argument("--model", required=True, help="the model's name on the endpoint")
        parser.add_argument(
            "--version", default=None, help="a model version (default: the endpoint's)"
        )
        parser.add_argument(
            "--scenario", default="server", help="server (default), single-stream or offline"
        )
        parser.add_argument(
            "--target-qps",
            type=float,
            default=None,
            help="server target QPS / offline expected QPS (default: calibrated); with "
            "--find-peak, the top of the curve instead of an Offline capacity run",
        )
        parser.add_argument(
            "--latency-bound-ms",
            type=float,
            default=None,
            help="the server scenario's p99 bound (default: LoadGen's rule)",
        )
        parser.add_argument("--preset", default="quick", help="quick (default), standard or mlperf")
        parser.add_argument(
            "--find-peak",
            action="store_true",
            help="sweep and bisect Server target QPS for the highest that LoadGen judges VALID",
        )
        parser.add_argument(
            "--curve-points",
            type=int,
            default=DEFAULTS["curve_points"],
            help="--find-peak: target QPS points up to the capacity "
            f"(default {DEFAULTS['curve_points']})",
        )
        parser.add_argument(
            "--search-steps",
            type=int,
            default=DEFAULTS["search_steps"],
            help="--find-peak: bisection runs after the curve "
            f"(default {DEFAULTS['search_steps']})",
        )
        parser.add_argument(
            "--concurrency",
            type=int,
            default=DEFAULTS["concurrency"],
            help=f"the client's connection pool size (default {DEFAULTS['concurrency']})",
        )
        parser.add_argument(
            "--inputs", default=None, help=".npy/.npz of real inputs (default: synthetic)"
        )
        parser.add_argument("--out", default=None, help="run folder (default: results/<timestamp>)")
        add_api_key_arguments(parser, "send with every request as 'Authorization: Bearer KEY'")

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        """Probe, load and record one endpoint; the exit status (1 when the result failed)."""
        from accelbench.benchmarks.serving import endpoint_samples, find_peak, run_endpoint
        from accelbench.runner.sweep import new_run_dir
        from accelbench.runtimes.remote import RemoteRuntime, probe_endpoint

        _check_args(args)
        key = api_key(args)
        run_dir = Path(args.out) if args.out else new_run_dir()
        check_run_dir(run_dir)
        if run_dir.is_dir() and any(run_dir.iterdir()):
            raise UsageError(
                f"run folder {run_dir} already exists and is not empty; choose another --out"
            )
        endpoint = probe_endpoint(args.url, args.model, args.version, api_key=key)
        runtime = RemoteRuntime(endpoint, concurrency=args.concurrency)
        try:
            samples = endpoint_samples(runtime, args.inputs, seed=0)
            cell = _cell(args, endpoint)
            log_dir = run_dir / "cells" / f"{cell.cell_id}-loadgen"
            run_dir.mkdir(parents=True, exist_ok=True)  # every check is done: now write
            started = time.time()
            if args.find_peak:
                result = find_peak(
                    runtime,
                    samples,
                    args.preset,
                    log_dir,
                    latency_bound_ms=args.latency_bound_ms,
                    curve_points=args.curve_points,
                    search_steps=args.search_steps,
                    start_qps=args.target_qps,
                ).result()
            else:
                result = run_endpoint(
                    runtime,
                    samples,
                    args.scenario,
                    args.preset,
                    log_dir,
                    target_qps=args.target_qps,
                    latency_bound_ms=args.latency_bound_ms,
                ).result()
            wall_s = time.time() - started
            result["runtime"] = runtime.info()
        finally:
            runtime.close()
        return _write_and_print(run_dir, cell, endpoint, result, wall_s, log_dir)


def _check_args(args: argparse.Namespace) -> None:
    from accelbench.benchmarks.presets import get_preset
    from accelbench.benchmarks.serving import check_options
    from accelbench.serving import MODEL_NAME

    # The name is also part of the run folder's cell paths.
    if not MODEL_NAME.fullmatch(args.model):
        raise UsageError(
            f"--model {args.model!r} is not a model name; use letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    if args.scenario not in LOAD_SCENARIOS:
        raise UsageError(
            f"--scenario {args.scenario!r} cannot load an endpoint; use {', '.join(LOAD_SCENARIOS)}"
        )
    get_preset(args.preset, args.scenario)
    if args.find_peak and args.scenario != "server":
        raise UsageError("--find-peak searches Server QPS; drop --scenario or say server")
    if args.target_qps is not None and not args.target_qps > 0:
        raise UsageError(f"--target-qps must be a positive number, not {args.target_qps:g}")
    if args.target_qps is not None and args.scenario == "single-stream":
        raise UsageError("--target-qps applies to server and offline; drop it for single-stream")
    if args.latency_bound_ms is not None and args.scenario != "server":
        raise UsageError("--latency-bound-ms is the server scenario's bound; drop it")
    options = {
        "curve_points": args.curve_points,
        "search_steps": args.search_steps,
        "concurrency": args.concurrency,
        "latency_bound_ms": args.latency_bound_ms,
    }
    try:
        check_options(options)
    except UsageError as exc:
        flag = str(exc).split()[0].replace("_", "-")
        raise UsageError(f"--{flag}{str(exc)[len(flag) :]}") from None
    if args.inputs and not Path(args.inputs).is_file():
        raise UsageError(f"inputs file {args.inputs} does not exist; pass a .npy or .npz file")


def _cell(args: argparse.Namespace, endpoint: Any) -> Any:
    """The run's one cell: the endpoint's model, profile 'remote', executed remotely."""
    from accelbench.runner.suite import Cell

    settings = {
        "url": endpoint.url,
        "model_version": endpoint.version,
        "concurrency": args.concurrency,
        "endpoint": {
            "signature": endpoint.signature,
            "inputs": [s.to_dict() for s in endpoint.inputs],
        },
    }
    return Cell(
        model=args.model,
        model_path=endpoint.predict_url,
        optimization="none",
        profile="remote",
        profile_data={"name": "remote", "kind": "remote"},
        execution="remote",
        threads=server_threads(endpoint.server_stats),
        scenario=args.scenario,
        preset=args.preset,
        runtime="remote",
        xnnpack=False,
        inputs_path=str(Path(args.inputs).resolve()) if args.inputs else None,
        seed=0,
        timeout_s=0.0,
        settings=settings,
    )


def server_threads(stats: dict[str, Any] | None) -> int:
    """The server's thread count when accelbench's own endpoint says it; 0 when unknown."""
    found = _find_key(stats or {}, "threads")
    return int(found) if isinstance(found, int) and not isinstance(found, bool) else 0


def _find_key(data: Any, key: str) -> Any:
    if isinstance(data, dict):
        if key in data:
            return data[key]
        for value in data.values():
            found = _find_key(value, key)
            if found is not None:
                return found
    return None


def _write_and_print(
    run_dir: Path, cell: Any, endpoint: Any, result: dict[str, Any], wall_s: float, log_dir: Path
) -> int:
    from accelbench.benchmarks.serving import fetch_server_stats
    from accelbench.hardware_profiles import environment_fingerprint
    from accelbench.records import append_record
    from accelbench.report.run_outputs import write_run_outputs
    from accelbench.report.tables import print_table
    from accelbench.runner.sweep import make_record

    stats = fetch_server_stats(endpoint)
    if stats is not None:
        result["settings"]["server"] = stats
    if result["settings"].get("curve") is not None:
        result["settings"]["mode"] = _mode_from_stats(stats)
    record = make_record(cell, run_dir.name, environment_fingerprint(), result, wall_s, log_dir)
    append_record(run_dir, record)
    write_run_outputs(run_dir)
    print_table([record], title=f"load {endpoint.url} model {cell.model}")
    peak = record["metrics"].get("server_peak_qps")
    if peak is not None:
        bound = record["settings"]["latency_bound_ms"]
        value = "none" if peak["value"] is None else f"{peak['value']:.1f} QPS"
        if peak["value"] is not None:
            confirmed = record["settings"].get("peak_confirmed")
            value += " (met the bound again when re-run)" if confirmed else " (not re-confirmed)"
        print(f"server peak (p99 <= {bound:g} ms): {value}")
    requests = record["settings"].get("requests") or {}
    if requests.get("errors"):
        print(f"request errors: {requests['errors']} of {requests['requests']}")
    print(f"records: {run_dir / 'records.jsonl'}  table: {run_dir / 'results.parquet'}")
    return 1 if record["status"] == "failed" else 0


def _mode_from_stats(stats: dict[str, Any] | None) -> str:
    """online, batching or cache, as accelbench's own server reports its settings; else remote."""
    if not stats:
        return "remote"
    batch = _find_key(stats, "max_batch_size")
    cache = _find_key(stats, "cache_size")
    if isinstance(batch, int) and batch > 1:
        return "batching"
    if isinstance(cache, int) and cache > 0:
        return "cache"
    return "online"
