"""The `accelbench serve` command: a TensorFlow Serving-compatible model server in the foreground.

`python -m accelbench.serving` runs the same command; no web framework is imported until a
server starts, so `accelbench --help` stays fast.
"""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from accelbench.errors import UsageError

DEFAULT_PORT = 8501  # TF Serving's REST port
_BATCH_FLAGS = ("batch_timeout_us", "max_enqueued_batches")


def register(sub: Any) -> None:
    """Add the `serve` command to the CLI's subparsers."""
    p = sub.add_parser(
        "serve",
        help="serve a model over TensorFlow Serving's REST API (predict, status, metadata)",
        description="Serve MODEL at POST /v1/models/NAME:predict (TF Serving's REST API), with "
        "optional dynamic batching and response cache, until Ctrl-C or SIGTERM. Counters and "
        "settings: GET /v1/accelbench/stats.",
    )
    add_arguments(p)
    p.set_defaults(handler=run_serve)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="model artifact (.tflite, SavedModel folder, .keras, .jaxexport)")
    p.add_argument("--name", default=None, help="model name in URLs (default: file stem)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port (default {DEFAULT_PORT}; 0: a free one)",
    )
    p.add_argument("--runtime", default=None, help="litert, tflite-runtime, tensorflow or jax")
    p.add_argument("--threads", type=int, default=None, help="threads of each runtime instance")
    p.add_argument("--no-xnnpack", action="store_true", help="run LiteRT without XNNPACK")
    p.add_argument(
        "--max-batch-size",
        type=int,
        default=None,
        help="turn dynamic batching on: most instances in one batch (default: batching off)",
    )
    p.add_argument(
        "--batch-timeout-us",
        type=int,
        default=None,
        help="microseconds a batch waits to fill after its first request (default 0)",
    )
    p.add_argument(
        "--max-enqueued-batches",
        type=int,
        default=None,
        help="batches that may wait; beyond that a request gets 429 at once (default 10)",
    )
    p.add_argument(
        "--num-batch-threads",
        type=int,
        default=None,
        help="inference threads, each with its own runtime instance (default: the CPUs)",
    )
    p.add_argument(
        "--cache-size", type=int, default=0, help="responses kept in an LRU cache (default 0: off)"
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=None,
        help="largest request body accepted; larger ones get 413 (default 16 MiB)",
    )
    p.add_argument(
        "--max-concurrent-requests",
        type=int,
        default=None,
        help="open connections or requests in flight beyond which a request gets 503 at once "
        "(default: what the batch queue or the inference threads hold, plus 256)",
    )


def run_serve(args: argparse.Namespace) -> int:
    """Check the flags, load the model, serve until SIGINT/SIGTERM; exit status 0."""
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be in 0..65535 (0: a free port), got {args.port}")
    if args.max_batch_size is None:
        given = [f"--{f.replace('_', '-')}" for f in _BATCH_FLAGS if getattr(args, f) is not None]
        if given:
            raise UsageError(
                f"{' and '.join(given)} only apply to dynamic batching, which is off; "
                "give --max-batch-size N to turn it on"
            )
    for flag in (
        "threads",
        "num_batch_threads",
        "max_body_bytes",
        "max_batch_size",
        "max_concurrent_requests",
    ):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise UsageError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.cache_size < 0:
        raise UsageError(f"--cache-size must be 0 (off) or more, got {args.cache_size}")

    # SIGTERM while the server starts stops it as Ctrl-C does: quietly, status 0, runtimes closed.
    # Once serving, serve() handles both signals itself.
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if on_main else None
    try:
        from accelbench.serving.batching import BatchingConfig
        from accelbench.serving.server import DEFAULT_MAX_BODY_BYTES, build_app, serve

        batching = None
        if args.max_batch_size is not None:
            tuning = {
                "batch_timeout_micros": args.batch_timeout_us,
                "max_enqueued_batches": args.max_enqueued_batches,
                "num_batch_threads": args.num_batch_threads,
            }
            batching = BatchingConfig(
                args.max_batch_size, **{k: v for k, v in tuning.items() if v is not None}
            )
        app = build_app(
            args.model,
            name=args.name,
            runtime=args.runtime,
            threads=args.threads,
            xnnpack=not args.no_xnnpack,
            batching=batching,
            num_batch_threads=args.num_batch_threads,
            cache_size=args.cache_size,
            max_body_bytes=args.max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            max_concurrent_requests=args.max_concurrent_requests,
        )
        serve(app, args.host, args.port)
    except KeyboardInterrupt:
        pass
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0
