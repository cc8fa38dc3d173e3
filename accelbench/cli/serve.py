"""`accelbench serve`: a TensorFlow Serving-compatible model server in the foreground.

`python -m accelbench.cli.serve_subprocess` runs the same command; no web framework is imported
until a server starts, so `accelbench --help` stays fast. The server loads the model, so it runs
in the sandbox (accelbench.runner.sandbox): this process starts ``python -m
accelbench.cli.serve_subprocess`` with the same flags under bubblewrap, with the host's network
(it must listen) and the filesystem limits of a worker, and passes SIGINT/SIGTERM on to it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from accelbench.cli.base import (
    Command,
    add_api_key_arguments,
    add_model_trust_arguments,
    api_key,
)
from accelbench.errors import UsageError

DEFAULT_PORT = 8501  # TF Serving's REST port
_BATCH_FLAGS = ("batch_timeout_us", "max_enqueued_batches")


class Serve(Command):
    name = "serve"
    help = "serve a model over TensorFlow Serving's REST API (predict, status, metadata)"
    description = (
        "Serve MODEL at POST /v1/models/NAME:predict (TF Serving's REST API), with "
        "optional dynamic batching and response cache, until Ctrl-C or SIGTERM. Counters and "
        "settings: GET /v1/accelbench/stats."
    )

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        from accelbench.runtimes.registry import names_text as runtime_names_text

        parser.add_argument(
            "model", help="model artifact (.tflite, SavedModel folder, .keras, .jaxexport)"
        )
        parser.add_argument("--name", default=None, help="model name in URLs (default: file stem)")
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)"
        )
        parser.add_argument(
            "--port",
            type=int,
            default=DEFAULT_PORT,
            help=f"port (default {DEFAULT_PORT}; 0: a free one)",
        )
        parser.add_argument("--runtime", default=None, help=runtime_names_text())
        parser.add_argument(
            "--threads", type=int, default=None, help="threads of each runtime instance"
        )
        parser.add_argument("--no-xnnpack", action="store_true", help="run LiteRT without XNNPACK")
        parser.add_argument(
            "--max-batch-size",
            type=int,
            default=None,
            help="turn dynamic batching on: most instances in one batch (default: batching off)",
        )
        parser.add_argument(
            "--batch-timeout-us",
            type=int,
            default=None,
            help="microseconds a batch waits to fill after its first request (default 0)",
        )
        parser.add_argument(
            "--max-enqueued-batches",
            type=int,
            default=None,
            help="batches that may wait; beyond that a request gets 429 at once (default 10)",
        )
        parser.add_argument(
            "--num-batch-threads",
            type=int,
            default=None,
            help="inference threads, each with its own runtime instance (default: the CPUs)",
        )
        parser.add_argument(
            "--cache-size",
            type=int,
            default=0,
            help="responses kept in an LRU cache (default 0: off)",
        )
        parser.add_argument(
            "--max-body-bytes",
            type=int,
            default=None,
            help="largest request body accepted; larger ones get 413 (default 16 MiB)",
        )
        parser.add_argument(
            "--max-concurrent-requests",
            type=int,
            default=None,
            help="open connections or requests in flight beyond which a request gets 503 at once "
            "(default: what the batch queue or the inference threads hold, plus 256)",
        )
        add_api_key_arguments(
            parser,
            "require on every request (Authorization: Bearer KEY; else 401); without one the API "
            "has no authentication, so keep it on 127.0.0.1",
        )
        add_model_trust_arguments(parser, serve=True)

    @classmethod
    def run(cls, args: argparse.Namespace) -> int:
        """Check the flags, load the model, serve until SIGINT/SIGTERM; exit status 0."""
        if not 0 <= args.port <= 65535:
            raise UsageError(f"--port must be in 0..65535 (0: a free port), got {args.port}")
        if args.max_batch_size is None:
            given = [
                f"--{f.replace('_', '-')}" for f in _BATCH_FLAGS if getattr(args, f) is not None
            ]
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
        key = api_key(args)
        _check_model(args)
        from accelbench.runner import sandbox

        box = sandbox.choose(not args.no_sandbox)
        if box.active and os.environ.get(sandbox.MODE_ENV) is None:
            return _serve_in_sandbox(args, box)
        # What the server reports, and what the processes it starts see (for as long as it runs).
        inherited = os.environ.get(sandbox.MODE_ENV)
        os.environ[sandbox.MODE_ENV] = box.mode

        # SIGTERM while the server starts stops it as Ctrl-C does: quietly, status 0, runtimes
        # closed. Once serving, serve() handles both signals itself.
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
                api_key=key,
            )
            serve(app, args.host, args.port)
        except KeyboardInterrupt:
            pass
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            if inherited is None:
                os.environ.pop(sandbox.MODE_ENV, None)
        return 0


def _check_model(args: argparse.Namespace) -> None:
    """Refuse, before anything starts, a model that is missing, not a model file, or flagged by
    the static look (unless --trust-model, which this process then passes to its runtime). The
    file is read as data only: the server loads it, in its sandbox."""
    from accelbench.runtimes.model_inspect import trust
    from accelbench.runtimes.validate import check_artifact

    check_artifact(Path(args.model), trust=args.trust_model, load=False)
    if args.trust_model:
        trust(args.model)


def _serve_in_sandbox(args: argparse.Namespace, box: Any) -> int:
    """Run this command's server in the sandbox; its exit status. SIGINT and SIGTERM go on to
    the server (the sandbox's PID 1), which stops as it would unsandboxed."""
    from accelbench.processes import spawn_group, stop_group
    from accelbench.runner.sandbox import exit_status

    argv = [sys.executable, "-m", "accelbench.cli.serve_subprocess", *server_argv(args)]
    read = [p for p in (args.model, args.api_key_file) if p]
    command, env = box.command(argv, read=read, network=True, as_pid_1=True)
    info_read, info_write = os.pipe()
    # --info-fd names the server's PID, the process to signal (bubblewrap itself would die).
    command[1:1] = ["--info-fd", str(info_write)]
    proc = spawn_group(command, env=env, pass_fds=(info_write,))
    os.close(info_write)
    target = [proc.pid]

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(target[0], signum)

    on_main = threading.current_thread() is threading.main_thread()
    previous = {}
    if on_main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, forward)
    try:
        with os.fdopen(info_read, "rb") as info:
            text = info.read()  # bubblewrap closes it once the sandbox is set up
        # Nothing readable: bubblewrap failed to start, and its exit status says so.
        with contextlib.suppress(ValueError, KeyError, TypeError):
            target[0] = int(json.loads(text)["child-pid"])
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            code = stop_group(proc)
    code = exit_status(code, box)
    return 0 if code is not None and code < 0 and -code in (signal.SIGINT, signal.SIGTERM) else code


def server_argv(args: argparse.Namespace) -> list[str]:
    """The command-line arguments that give a server these parsed arguments (the model as an
    absolute path, so that it reads the same file from any folder)."""
    parser = argparse.ArgumentParser(add_help=False)
    Serve.add_arguments(parser)
    argv = [os.path.abspath(args.model)]
    for action in parser._actions:
        value = getattr(args, action.dest, action.default)
        if not action.option_strings or value == action.default:
            continue
        flag = action.option_strings[-1]
        argv += [flag] if action.nargs == 0 else [flag, str(value)]
    return argv
