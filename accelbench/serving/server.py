"""The TensorFlow Serving REST API over accelbench runtimes: the Starlette app and its uvicorn runs.

Endpoints (TF Serving's ``api_rest`` forms, version "1" being the artifact):

- ``POST /v1/models/<name>[/versions/1]:predict`` with ``instances`` (row format) or ``inputs``
  (columnar format); answers ``predictions`` or ``outputs``.
- ``GET /v1/models/<name>[/versions/1]`` (model status), ``GET .../metadata`` (signature).
- ``GET /v1/accelbench/stats``: request, batch, cache and overload counters and the settings.

Like TF Serving, the API has no authentication of its own; given an API key, every route
answers 401 unless the request says ``Authorization: Bearer KEY``.

Inference runs off the event loop on ``num_batch_threads`` threads, each with its own runtime
instance (LiteRT interpreters are not thread-safe). Request bodies are parsed as JSON only; the
JSON forms are `accelbench.runtimes.serving_protocol`'s, which the client shares.
Predict requests go straight from uvicorn to the model server (no router or middleware on that
path: the server's own Python per request is most of its cost for a small model); everything
else goes through the Starlette app.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import os
import queue
import re
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from accelbench.errors import UsageError
from accelbench.runtimes import TensorSpec, open_runtime
from accelbench.runtimes.serving_protocol import (
    DEFAULT_SIGNATURE,
    TF_NAMES,
    Arrays,
    RequestError,
    dumps,
    error_body,
    first_line,
    format_outputs,
    metadata_body,
    parse_predict,
    status_body,
)
from accelbench.serving import LISTENING_PREFIX, MODEL_NAME, check_api_key
from accelbench.serving.batching import (
    BatchingConfig,
    BatchScheduler,
    BatchTooLarge,
    QueueFull,
    default_batch_threads,
)
from accelbench.serving.cache import ResponseCache, request_key

MODEL_VERSION = "1"
DEFAULT_MAX_BODY_BYTES = 16 * 2**20
# uvicorn counts open connections as well as requests in flight against its concurrency limit,
# so the default leaves room for a load generator's whole connection pool above the requests the
# server itself can be working on or holding.
CONCURRENCY_SLACK = 256
MODELS_PREFIX = "/v1/models/"
_PARSE_OFF_LOOP_BYTES = 2**20
_PREDICT_PATH = re.compile(r"(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?:(?P<verb>[^/]*)")
_GET_PATH = re.compile(
    r"(?P<name>[^/:]+)(?:/versions/(?P<version>[^/:]+))?(?P<metadata>/metadata)?"
)


class Servable:
    """One artifact open in ``copies`` runtimes, each used by one inference thread at a time.

    A model with a dynamic batch dimension runs a batch as one invocation; a model with a fixed
    batch dimension B runs it as consecutive invocations of B instances (the last one padded).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        runtime: str | None,
        threads: int | None,
        copies: int,
        xnnpack: bool = True,
    ) -> None:
        self.path = Path(model_path).resolve()
        self._runtimes: list[Any] = []
        self._threads: list[threading.Thread] = []
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self.batches = self.instances = self.invocations = self.largest_batch = 0
        try:
            for _ in range(copies):
                self._runtimes.append(
                    open_runtime(self.path, runtime, threads=threads, xnnpack=xnnpack)
                )
            first = self._runtimes[0]
            self.inputs: list[TensorSpec] = first.inputs()
            self.outputs: list[TensorSpec] = first.outputs()
            self.fixed_batch: int | None = first.max_batch_size
            self.runtime_info: dict[str, Any] = first.info()
            self.runtime_name: str = first.name
            self._check_servable()
            for rt in self._runtimes:
                # The first inference allocates and, for JAX, compiles: not a client's cost.
                self._invoke(rt, _zeros(self.inputs, 1))
        except BaseException:
            self.close()
            raise
        # Batches from several requests are concatenated only when all other dims are fixed.
        self._mergeable = all(-1 not in s.shape[1:] for s in self.inputs)
        for i, rt in enumerate(self._runtimes):
            thread = threading.Thread(
                target=self._work, args=(rt,), name=f"accelbench-inference-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        self.batches = self.instances = self.invocations = self.largest_batch = 0  # warm-up off

    def _check_servable(self) -> None:
        for spec in (*self.inputs, *self.outputs):
            if not spec.shape:
                raise UsageError(
                    f"{self.path} has the scalar tensor {spec.name!r}; the server needs a batch "
                    "dimension (dimension 0) on every input and output"
                )
            if spec.dtype not in TF_NAMES:
                raise UsageError(
                    f"{self.path} has tensor {spec.name!r} of dtype {spec.dtype}, which has no "
                    "JSON form; serve a model with numeric or boolean inputs and outputs"
                )

    @property
    def batch_execution(self) -> str:
        if self.fixed_batch is None:
            return "one invocation per batch (dynamic batch dimension)"
        return f"consecutive invocations of {self.fixed_batch} instance(s) (fixed batch dimension)"

    def submit(self, requests: list[Arrays]) -> asyncio.Future[list[Arrays]]:
        """Run several requests' inputs as one batch on a free inference thread; a future (of the
        running event loop) of each request's outputs. RuntimeError once the servable is closed."""
        if self._closed:
            raise RuntimeError("the model is closed: the server is shutting down")
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((requests, loop, future))
        return future

    def _work(self, runtime: Any) -> None:
        """An inference thread: runs batches on its own runtime until close() says stop."""
        while True:
            job = self._jobs.get()
            if job is None:
                return
            requests, loop, future = job
            results, error = None, None
            if self._closed:
                error = RuntimeError("the server is shutting down")
            else:
                try:
                    results = self._run_batch(runtime, requests)
                except BaseException as err:  # noqa: BLE001 - handed to the request, not lost
                    error = err
            # A closed event loop raises RuntimeError: nobody waits for this batch any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_deliver, future, results, error)

    def _run_batch(self, runtime: Any, requests: list[Arrays]) -> list[Arrays]:
        rows = [len(arrays[0]) for arrays in requests]
        if len(requests) == 1 or not self._mergeable:
            results = [self._invoke(runtime, arrays) for arrays in requests]
        else:
            merged = [np.concatenate(parts) for parts in zip(*requests, strict=True)]
            outputs = self._invoke(runtime, merged)
            cuts = np.cumsum(rows)[:-1]
            per_output = [np.split(out, cuts) for out in outputs]
            results = [list(parts) for parts in zip(*per_output, strict=True)]
        with self._lock:
            self.batches += 1
            self.instances += sum(rows)
            self.largest_batch = max(self.largest_batch, sum(rows))
        return results

    def _invoke(self, runtime: Any, arrays: Arrays) -> Arrays:
        n = len(arrays[0])
        if self.fixed_batch is None:
            outputs = runtime.run(arrays)
            self._count(1)
            return self._checked(outputs, n)
        b = self.fixed_batch
        chunks: list[Arrays] = []
        for start in range(0, n, b):
            part = [a[start : start + b] for a in arrays]
            short = b - len(part[0])
            if short:  # pad the last chunk to the fixed batch, then drop the padding's outputs
                part = [np.concatenate([p, np.zeros((short, *p.shape[1:]), p.dtype)]) for p in part]
            chunks.append([o[: b - short] for o in self._checked(runtime.run(part), b)])
        self._count(len(chunks))
        if len(chunks) == 1:
            return chunks[0]
        return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]

    def _checked(self, outputs: Arrays, n: int) -> Arrays:
        for spec, out in zip(self.outputs, outputs, strict=True):
            if out.ndim == 0 or out.shape[0] != n:
                raise RuntimeError(
                    f"output {spec.name!r} has shape {list(out.shape)} for a batch of {n}: its "
                    "dimension 0 is not the batch, so it cannot be split per instance"
                )
        # The interpreter reuses its output buffers: copy before the runtime is handed back.
        return [np.array(out) for out in outputs]

    def _count(self, invocations: int) -> None:
        with self._lock:
            self.invocations += invocations

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "batches": self.batches,
                "instances": self.instances,
                "invocations": self.invocations,
                "mean_batch_size": self.instances / self.batches if self.batches else None,
                "largest_batch": self.largest_batch,
            }

    def close(self) -> None:
        """Stop the inference threads (batches still queued fail) and close the runtimes."""
        self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()
        self._threads = []
        for rt in self._runtimes:
            rt.close()
        self._runtimes = []


def _deliver(future: asyncio.Future, results: Any, error: BaseException | None) -> None:
    if future.done():  # cancelled: the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(results)


def _zeros(specs: list[TensorSpec], n: int) -> Arrays:
    return [np.zeros((n, *(max(d, 1) for d in s.shape[1:])), s.dtype) for s in specs]


def _json(
    payload: Any, status: int = 200, headers: dict[str, str] | None = None, *, finite: bool = False
) -> Response:
    """JSON response; finite=True promises no NaN/Infinity (see protocol.dumps)."""
    body = dumps(payload, finite=finite)
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json(error_body(message), status, headers)


class ModelServer:
    """The state behind the app: the servable, the batch scheduler, the cache and the counters."""

    def __init__(
        self,
        servable: Servable,
        *,
        name: str,
        batching: BatchingConfig | None,
        num_batch_threads: int,
        threads: int | None,
        cache: ResponseCache,
        max_body_bytes: int,
        max_concurrent_requests: int,
    ) -> None:
        self.servable = servable
        self.name = name
        self.batching = batching
        self.num_batch_threads = num_batch_threads
        self.threads = threads
        self.cache = cache
        self.max_body_bytes = max_body_bytes
        self.max_concurrent_requests = max_concurrent_requests
        self.scheduler: BatchScheduler | None = None
        keys = self.servable.runtime_info.get("signature_keys") or []
        # TF Serving names the default signature serving_default; a .tflite's one key is its own.
        self.signature = keys[0] if len(keys) == 1 else DEFAULT_SIGNATURE
        self.signature_names = {self.signature, DEFAULT_SIGNATURE}
        self.counts = {
            "requests": 0,
            "ok": 0,
            "client_errors": 0,
            "server_errors": 0,
            "rejected": 0,
        }

    def start(self) -> None:
        """Called on the server's event loop before the first request."""
        if self.batching is not None:
            self.scheduler = BatchScheduler(self.batching, self.servable.submit)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()
        self.servable.close()

    def settings(self) -> dict[str, Any]:
        """What a record needs to reproduce this server's configuration."""
        return {
            "model": self.name,
            "version": MODEL_VERSION,
            "model_file": self.servable.path.name,  # not the path: the stats are public
            "runtime": self.servable.runtime_name,
            "runtime_info": self.servable.runtime_info,
            "threads": self.threads,
            "num_batch_threads": self.num_batch_threads,
            "batching": self.batching.to_dict() if self.batching else None,
            "batch_execution": self.servable.batch_execution,
            "cache_size": self.cache.capacity,
            "max_body_bytes": self.max_body_bytes,
            "max_concurrent_requests": self.max_concurrent_requests,
            # The sandbox the server runs in (see accelbench.runner.sandbox); off when unset.
            "sandbox": os.environ.get("ACCELBENCH_SANDBOX", "off"),
        }

    def stats(self) -> dict[str, Any]:
        served = self.servable.stats()
        return {
            **self.counts,
            "batches": served["batches"],
            "mean_batch_size": served["mean_batch_size"],
            "cache_hits": self.cache.hits,
            "cache_misses": self.cache.misses,
            "served": served,
            "queue": {
                "queued_batches": self.scheduler.queued_batches if self.scheduler else 0,
                "running_batches": self.scheduler.running_batches if self.scheduler else None,
            },
            "cache": self.cache.stats(),
            "settings": self.settings(),
        }

    def check_model(self, name: str, version: str | None) -> None:
        if name != self.name or version not in (None, MODEL_VERSION):
            wanted = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise RequestError(
                404,
                f"Servable not found for request: {wanted}; this server serves model "
                f"{self.name!r} version {MODEL_VERSION}",
            )

    def status(self) -> dict[str, Any]:
        return status_body(MODEL_VERSION)

    def metadata(self) -> dict[str, Any]:
        return metadata_body(
            self.name, MODEL_VERSION, self.signature, self.servable.inputs, self.servable.outputs
        )

    async def read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it is known to exceed max_body_bytes."""
        too_large = RequestError(
            413,
            f"the request body exceeds the server's limit of {self.max_body_bytes} bytes; "
            "send fewer instances per request",
        )
        length = request.headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                raise RequestError(400, f"bad Content-Length header {length!r}")
            if int(length) > self.max_body_bytes:
                raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    async def predict(self, request: Request) -> Response:
        body = await self.read_body(request)
        args = (body, self.servable.inputs, self.signature_names)
        # A big body takes long to parse: off the event loop, so other requests keep flowing.
        big = len(body) > _PARSE_OFF_LOOP_BYTES
        parsed = await asyncio.to_thread(parse_predict, *args) if big else parse_predict(*args)
        key = None
        if self.cache.enabled:
            names = [s.name for s in self.servable.inputs]
            key = request_key(
                self.name, MODEL_VERSION, parsed.signature, parsed.form, names, parsed.arrays
            )
            cached = self.cache.get(key)
            if cached is not None:
                return Response(cached, media_type="application/json")
        if self.scheduler is not None:
            try:
                outputs = await self.scheduler.submit(parsed.arrays, parsed.rows)
            except BatchTooLarge as err:
                raise RequestError(400, str(err)) from None
            except QueueFull as err:
                raise RequestError(429, str(err)) from None
        else:
            (outputs,) = await self.servable.submit([parsed.arrays])
        finite = all(o.dtype.kind != "f" or np.isfinite(o).all() for o in outputs)
        response = _json(format_outputs(parsed.form, outputs, self.servable.outputs), finite=finite)
        if key is not None:
            self.cache.put(key, response.body)
        return response

    async def handle(self, request: Request, rest: str) -> Response:
        """Route /v1/models/<rest>: every failure becomes TF Serving's {"error": ...} form."""
        if request.method == "POST":
            self.counts["requests"] += 1
        try:
            response = await self._route(request, rest)
        except RequestError as err:
            key = "rejected" if err.status == 429 else "client_errors"
            self.counts[key] += 1
            # A refused body may be unread: close the connection rather than read the rest.
            headers = {"connection": "close"} if err.status == 413 else None
            return _error(err.status, err.message, headers)
        except ClientDisconnect:
            self.counts["client_errors"] += 1
            return _error(400, "the client disconnected before sending the whole body")
        except Exception as err:  # no request may take the server down
            self.counts["server_errors"] += 1
            print(f"accelbench-serving: error: {type(err).__name__}: {err}", file=sys.stderr)
            return _error(500, f"inference failed: {type(err).__name__}: {first_line(err)}")
        if request.method == "POST":
            self.counts["ok"] += 1
        return response

    async def _route(self, request: Request, rest: str) -> Response:
        if request.method == "POST":
            match = _PREDICT_PATH.fullmatch(rest)
            if match is None:
                raise RequestError(
                    404,
                    f"no such endpoint POST /v1/models/{rest}; predict with POST "
                    f"/v1/models/{self.name}[/versions/{MODEL_VERSION}]:predict",
                )
            self.check_model(match["name"], match["version"])
            if match["verb"] != "predict":
                raise RequestError(
                    400,
                    f"method :{match['verb']} is not supported; this server implements :predict",
                )
            return await self.predict(request)
        match = _GET_PATH.fullmatch(rest)
        if match is None:
            raise RequestError(
                404,
                f"no such endpoint GET /v1/models/{rest}; use /v1/models/{self.name}"
                f"[/versions/{MODEL_VERSION}][/metadata]",
            )
        self.check_model(match["name"], match["version"])
        return _json(self.metadata() if match["metadata"] else self.status())


def build_app(
    model_path: str | Path,
    *,
    name: str | None = None,
    runtime: str | None = None,
    threads: int | None = None,
    xnnpack: bool = True,
    batching: BatchingConfig | None = None,
    num_batch_threads: int | None = None,
    cache_size: int = 0,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_concurrent_requests: int | None = None,
    api_key: str | None = None,
) -> ServingApp:
    """The ASGI app serving model_path; its runtimes are open (and warm) when this returns.

    ``num_batch_threads`` (inference threads, one runtime each) defaults to batching's, or to the
    CPUs of this process. Beyond ``max_concurrent_requests`` open connections or requests in
    flight, uvicorn answers 503 at once (default: ``default_max_concurrent_requests``).
    ``app.state.model_server`` is the ModelServer; the app closes it at
    shutdown. With ``api_key``, every request must carry ``Authorization: Bearer API_KEY``.
    Raises UsageError for a bad model or setting.
    """
    if api_key is not None:
        check_api_key(api_key)
    name = name if name is not None else Path(model_path).stem
    if not MODEL_NAME.fullmatch(name):
        raise UsageError(
            f"model name {name!r} cannot appear in a URL; use letters, digits, '_', '.' or '-'"
        )
    if batching is not None:
        if num_batch_threads not in (None, batching.num_batch_threads):
            raise UsageError(
                f"num_batch_threads={num_batch_threads} contradicts the batching config's "
                f"{batching.num_batch_threads}; give it once"
            )
        num_batch_threads = batching.num_batch_threads
    if num_batch_threads is None:
        num_batch_threads = default_batch_threads()
    if max_concurrent_requests is None:
        max_concurrent_requests = default_max_concurrent_requests(batching, num_batch_threads)
    for label, value, least in (
        ("num_batch_threads", num_batch_threads, 1),
        ("max_body_bytes", max_body_bytes, 1),
        ("max_concurrent_requests", max_concurrent_requests, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"{label} must be an integer >= {least}, got {value!r}")
    cache = ResponseCache(cache_size)  # validates cache_size before any model loads
    servable = Servable(
        model_path, runtime=runtime, threads=threads, copies=num_batch_threads, xnnpack=xnnpack
    )
    server = ModelServer(
        servable,
        name=name,
        batching=batching,
        num_batch_threads=num_batch_threads,
        threads=threads,
        cache=cache,
        max_body_bytes=max_body_bytes,
        max_concurrent_requests=max_concurrent_requests,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        server.start()
        try:
            yield
        finally:
            server.close()

    async def models(request: Request) -> Response:
        return await server.handle(request, request.path_params["rest"])

    async def stats(request: Request) -> Response:
        return _json(server.stats())

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return _error(
            exc.status_code,
            f"{exc.detail}: {request.method} {request.url.path}",
            dict(exc.headers or {}),
        )

    app = Starlette(
        routes=[
            Route(MODELS_PREFIX + "{rest:path}", models, methods=["GET", "POST"]),
            Route("/v1/accelbench/stats", stats, methods=["GET"]),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.model_server = server
    return ServingApp(app, server, api_key)


def default_max_concurrent_requests(batching: BatchingConfig | None, num_batch_threads: int) -> int:
    """The requests a server can run and queue, plus CONCURRENCY_SLACK.

    With batching, that is every batch running or waiting, full (beyond them the scheduler
    answers 429); without, one request per inference thread.
    """
    if batching is None:
        return num_batch_threads + CONCURRENCY_SLACK
    batches = batching.max_enqueued_batches + batching.num_batch_threads
    return batches * batching.max_batch_size + CONCURRENCY_SLACK


class ServingApp:
    """The ASGI app: POSTs under /v1/models/ go straight to the ModelServer (the same handler
    the Starlette route calls, without router and middleware); everything else, lifespan
    included, to the Starlette app. ``state.model_server`` is the ModelServer."""

    def __init__(self, app: Starlette, server: ModelServer, api_key: str | None = None) -> None:
        self.app = app
        self.state = app.state
        self._server = server
        self._authorization = f"Bearer {api_key}".encode("latin-1") if api_key else None

    @property
    def api_key_required(self) -> bool:
        return self._authorization is not None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if self._authorization is not None and scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            # Constant time: how much of a guess matched must not show in the answer's timing.
            if not hmac.compare_digest(given, self._authorization):
                response = _error(
                    401,
                    "this server needs an API key: send the header 'Authorization: Bearer KEY'",
                    {"www-authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(MODELS_PREFIX)
        ):
            request = Request(scope, receive)
            response = await self._server.handle(request, scope["path"][len(MODELS_PREFIX) :])
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class _Server(uvicorn.Server):
    """uvicorn's server that calls on_ready once its sockets accept connections."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            self._on_ready()


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on host:port (0 = a free port); UsageError when impossible."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as err:
        raise UsageError(f"cannot resolve host {host!r} ({err}); pass an IP address") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise UsageError(
            f"cannot listen on {host}:{port} ({err.strerror}); pass another --port, or 0 for "
            "a free one"
        ) from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def is_loopback(sock: socket.socket) -> bool:
    return ipaddress.ip_address(sock.getsockname()[0]).is_loopback


def _config(app: ServingApp) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        ws="none",
        timeout_graceful_shutdown=5,
        server_header=False,
        # Overload gets 503 at once instead of an unbounded pile of waiting requests.
        limit_concurrency=app.state.model_server.max_concurrent_requests,
    )


def _closing(app: ServingApp) -> None:
    app.state.model_server.close()


def serve(
    app: ServingApp, host: str = "127.0.0.1", port: int = 8501, *, stdout: TextIO | None = None
) -> None:
    """Serve in the foreground until SIGINT or SIGTERM, then close the runtimes and return.

    Once it accepts connections it prints ``accelbench-serving: listening on http://HOST:PORT``
    to stdout (flushed). A non-loopback address gets a warning on stderr, which says the API
    has no authentication unless the app was built with an API key.
    """
    try:
        sock = bind(host, port)
    except UsageError:
        _closing(app)
        raise
    url = url_of(sock)
    if not is_loopback(sock):
        guarded = app.api_key_required
        print(
            f"accelbench-serving: warning: listening on {url}, reachable from other machines; "
            + (
                "requests need the API key"
                if guarded
                else "the API has no authentication (as TF Serving's): anyone who reaches it "
                "can use the model; give --api-key or --api-key-file, or bind 127.0.0.1"
            ),
            file=sys.stderr,
        )

    def ready() -> None:
        print(LISTENING_PREFIX + url, file=stdout or sys.stdout, flush=True)

    server = _Server(_config(app), ready)
    # uvicorn re-raises the signal that stopped it, after restoring the handlers it found; with
    # these handlers in place that re-raise is a no-op, so SIGINT/SIGTERM end with status 0.
    main = threading.current_thread() is threading.main_thread()
    previous = {}
    if main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: None)
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
        _closing(app)  # the lifespan closed it unless startup failed; closing twice is harmless


@contextlib.contextmanager
def running(
    app: ServingApp, host: str = "127.0.0.1", *, start_timeout_s: float = 60.0
) -> Iterator[str]:
    """Run app on a free port of host on a background thread; yields the base URL, then stops it."""
    try:
        sock = bind(host, 0)
    except UsageError:
        _closing(app)
        raise
    ready = threading.Event()
    server = _Server(_config(app), ready.set)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="accelbench-serving", daemon=True
    )
    thread.start()
    try:
        while not ready.wait(0.02):
            start_timeout_s -= 0.02
            if not thread.is_alive() or start_timeout_s <= 0:
                raise RuntimeError("the model server did not start; see the log above")
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()
        _closing(app)
