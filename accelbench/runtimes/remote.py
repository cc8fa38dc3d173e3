"""The remote runtime: any TensorFlow Serving REST endpoint as a system under test, over HTTP.

``probe_endpoint`` asks the endpoint about the model (status, then ``/metadata`` for the input
names, dtypes and shapes, and accelbench's own ``/v1/accelbench/stats`` when it answers), and
turns an endpoint that does not answer, or a model it does not know, into one UsageError line.

``RemoteRuntime`` is an asynchronous SUT (``accelbench.benchmarks.loadgen.SupportsSubmit``): a
keep-alive connection pool (`accelbench.runtimes.http_client`: asyncio transports, httptools)
runs on an event loop of its own thread, so LoadGen's issue call only
hands requests to that loop and returns. Each sample's whole HTTP request is encoded once
(``prepare``), so the client's own cost per request is small. A request that
fails (an HTTP error status, a refused or dropped connection, a timeout) completes all the same
and is counted by kind; ``counters()`` gives the counts. Like every runtime it never reads a
clock: LoadGen times the requests.

Probing uses only the standard library; requests go through `http_client`. The JSON bodies
(requests, answers, metadata) are `accelbench.runtimes.serving_protocol`'s, which the server shares.
"""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from accelbench.errors import UsageError
from accelbench.runtimes import http_client
from accelbench.runtimes.edge import TensorSpec
from accelbench.runtimes.serving_protocol import (
    DEFAULT_SIGNATURE,
    answer_problem,
    error_text,
    parse_metadata,
    read_answer,
    read_predictions,
    request_body,
)

DEFAULT_CONCURRENCY = 64
PROBE_TIMEOUT_S = 5.0
REQUEST_TIMEOUT_S = 30.0
STATS_PATH = "/v1/accelbench/stats"


@dataclass
class EndpointInfo:
    """What the endpoint said about one model: where to send predictions and what they take."""

    url: str
    model: str
    version: str | None
    predict_url: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    status: dict[str, Any]
    metadata: dict[str, Any]
    server_stats: dict[str, Any] | None = None
    signature: str = DEFAULT_SIGNATURE
    api_key: str | None = field(default=None, repr=False)  # sent as a bearer token, never stored


def base_url(url: str) -> str:
    """The endpoint's scheme://host:port, checked; UsageError for anything that is not one."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(
            f"{url!r} is not an HTTP endpoint URL; give one like http://127.0.0.1:8501"
        )
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        raise UsageError(f"{url!r} has a bad port; give one like http://127.0.0.1:8501") from None
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')}"


def model_path(model: str, version: str | None = None) -> str:
    """TensorFlow Serving's path of a model (and version): /v1/models/NAME[/versions/V]."""
    path = f"/v1/models/{urllib.parse.quote(model, safe='')}"
    if version is not None:
        path += f"/versions/{urllib.parse.quote(str(version), safe='')}"
    return path


def probe_endpoint(
    url: str,
    model: str,
    version: str | None = None,
    *,
    timeout_s: float = PROBE_TIMEOUT_S,
    api_key: str | None = None,
) -> EndpointInfo:
    """Ask the endpoint for the model's status and metadata; UsageError when it cannot serve it.
    ``api_key`` goes with every request as ``Authorization: Bearer KEY``."""
    if not model:
        raise UsageError("name the model to load with --model NAME")
    base = base_url(url)
    path = base + model_path(model, version)
    status_code, status = get_json(path, timeout_s, api_key=api_key)
    if status_code == 401:
        raise UsageError(
            f"the endpoint at {base} refused the request (HTTP 401: {error_text(status)}); "
            + ("check --api-key" if api_key else "it needs an API key: give --api-key")
        )
    if status_code == 404:
        raise UsageError(
            f"the endpoint at {base} does not serve model {model!r}"
            + (f" version {version}" if version is not None else "")
            + f" (HTTP 404: {error_text(status)}); check --model and --version"
        )
    if status_code != 200:
        raise UsageError(
            f"the endpoint at {base} answered HTTP {status_code} for model {model!r} "
            f"({error_text(status)}); is it a TensorFlow Serving REST endpoint?"
        )
    meta_code, metadata = get_json(path + "/metadata", timeout_s, api_key=api_key)
    if meta_code != 200:
        raise UsageError(
            f"the endpoint at {base} answered HTTP {meta_code} for {model!r}'s metadata "
            f"({error_text(metadata)}); it must describe the model's inputs"
        )
    signature, inputs, outputs = parse_metadata(metadata)
    stats_code, stats = get_json(base + STATS_PATH, timeout_s, quiet=True, api_key=api_key)
    return EndpointInfo(
        url=base,
        model=model,
        version=version,
        predict_url=path + ":predict",
        inputs=inputs,
        outputs=outputs,
        status=status,
        metadata=metadata,
        server_stats=stats if stats_code == 200 else None,
        signature=signature,
        api_key=api_key,
    )


def get_json(
    url: str, timeout_s: float, quiet: bool = False, api_key: str | None = None
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) of a GET; a connection failure is a UsageError unless quiet."""
    # No proxy: a benchmark measures the endpoint, never a proxy in between (the load client
    # connects directly too).
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        with opener.open(
            urllib.request.Request(url, headers=headers), timeout=timeout_s
        ) as response:
            code, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        code, raw = err.code, err.read()
    except (urllib.error.URLError, OSError, ValueError) as err:
        if quiet:
            return 0, {}
        reason = getattr(err, "reason", err)
        raise UsageError(
            f"nothing answers at {url.split('/v1/')[0]} ({reason}); start the server or fix the URL"
        ) from None
    body = read_answer(raw)
    return code, body if isinstance(body, dict) else {"value": body}


@dataclass
class Counters:
    """What came back for the requests sent since the last reset."""

    requests: int = 0
    ok: int = 0
    http_errors: dict[int, int] = field(default_factory=dict)
    connection_errors: int = 0
    bad_responses: int = 0
    first_error: str | None = None

    @property
    def errors(self) -> int:
        return sum(self.http_errors.values()) + self.connection_errors + self.bad_responses

    def to_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": self.errors,
            "http_errors": {str(k): v for k, v in sorted(self.http_errors.items())},
            "http_429": self.http_errors.get(429, 0),
            "connection_errors": self.connection_errors,
            "bad_responses": self.bad_responses,
            "first_error": self.first_error,
        }


class RemoteRuntime:
    """A TF Serving endpoint's model, called over HTTP by an async client on its own thread."""

    name = "remote"
    max_batch_size = None  # one sample per request: the server batches, if it is told to

    def __init__(
        self,
        endpoint: EndpointInfo,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        timeout_s: float = REQUEST_TIMEOUT_S,
    ) -> None:
        if not isinstance(concurrency, int) or concurrency < 1:
            raise UsageError(f"concurrency must be a positive integer, not {concurrency!r}")
        self.endpoint = endpoint
        self.concurrency = concurrency
        self._timeout_s = timeout_s
        self._counters = Counters()
        self._requests: list[bytes] = []
        self._encoded: list[list[np.ndarray]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        # asyncio's own loop, not uvloop: LoadGen wakes it from another thread for every query,
        # and asyncio's self-pipe wake-up is the long-proven path (uvloop saved ~3% here).
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="accelbench-http", daemon=True
        )
        self._thread.start()
        self._pool = http_client.ConnectionPool(
            endpoint.url, limit=concurrency, timeout_s=timeout_s
        )

    def _call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def inputs(self) -> list[TensorSpec]:
        return list(self.endpoint.inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self.endpoint.outputs)

    def set_batch_size(self, n: int) -> None:
        if n != 1:
            raise ValueError("a remote endpoint takes one sample per request; batch size is 1")

    def info(self) -> dict[str, Any]:
        from importlib import metadata

        return {
            "runtime": "remote",
            "client": f"accelbench http_client (httptools {metadata.version('httptools')})",
            "url": self.endpoint.url,
            "model": self.endpoint.model,
            "version": self.endpoint.version,
            "concurrency": self.concurrency,
            "request_timeout_s": self._timeout_s,
        }

    # --- the asynchronous SUT (accelbench.benchmarks.loadgen.SupportsSubmit) ---

    def prepare(self, samples: list[list[np.ndarray]]) -> None:
        """Encode each sample's request once; the same samples again are not re-encoded."""
        same = len(samples) == len(self._encoded) and all(
            a is b for a, b in zip(samples, self._encoded, strict=True)
        )
        if not same:
            url = self.endpoint.predict_url
            self._requests = [
                http_client.request_bytes(
                    "POST", url, request_body(s, self.endpoint.inputs), self.endpoint.api_key
                )
                for s in samples
            ]
            self._encoded = list(samples)

    def submit(self, requests: list[tuple[int, int]], done: Callable[[int], None]) -> None:
        self._loop.call_soon_threadsafe(self._start, requests, done)

    def _start(self, requests: list[tuple[int, int]], done: Callable[[int], None]) -> None:
        for index, token in requests:
            task = self._loop.create_task(self._send(self._requests[index], token, done))
            self._tasks.add(task)  # the loop keeps only weak references to tasks
            task.add_done_callback(self._tasks.discard)

    async def _send(self, request: bytes, token: int, done: Callable[[int], None]) -> None:
        counters = self._counters
        counters.requests += 1
        try:
            response = await self._pool.request(request)
            problem = answer_problem(response.status, response.body)
            if problem is None:
                counters.ok += 1
            elif response.status != 200:
                counters.http_errors[response.status] = (
                    counters.http_errors.get(response.status, 0) + 1
                )
                self._note(problem)
            else:
                counters.bad_responses += 1
                self._note(problem)
        except (TimeoutError, OSError, http_client.BadResponse) as err:
            counters.connection_errors += 1
            self._note(f"{type(err).__name__}: {err}")
        finally:
            done(token)

    def _note(self, text: str) -> None:
        if self._counters.first_error is None:
            self._counters.first_error = text.strip()

    def counters(self) -> Counters:
        """The counts since the last reset (read them once LoadGen has finished its test)."""
        return self._counters

    def reset_counters(self) -> None:
        self._loop.call_soon_threadsafe(self._reset)
        self._call(asyncio.sleep(0))  # the reset has run once this returns

    def _reset(self) -> None:
        self._counters = Counters()

    # --- synchronous calls: one prepared request at a time, a first request, checking answers ---

    def request(self, index: int) -> None:
        """Send prepared request ``index`` and wait for its whole answer, which is checked as
        the asynchronous SUT checks it (a prediction, not decoded); RuntimeError with the
        reason when it is not one."""
        problem = self._call(self._request_once(self._requests[index]))
        if problem is not None:
            raise RuntimeError(f"{self.endpoint.url}: {problem}")

    async def _request_once(self, request: bytes) -> str | None:
        try:
            response = await self._pool.request(request)
            return answer_problem(response.status, response.body)
        except (TimeoutError, OSError, http_client.BadResponse) as err:
            return f"{type(err).__name__}: {err}"

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """Predict one batch of rows synchronously; outputs in the metadata's output order."""
        body = request_body(inputs, self.endpoint.inputs)
        return self._call(self._predict(body))

    async def _predict(self, body: bytes) -> list[np.ndarray]:
        request = http_client.request_bytes(
            "POST", self.endpoint.predict_url, body, self.endpoint.api_key
        )
        response = await self._pool.request(request)
        answer = read_answer(response.body)
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {error_text(answer)}")
        return read_predictions(answer, [s.name for s in self.endpoint.outputs])

    def close(self) -> None:
        if not self._loop.is_running():
            return
        self._loop.call_soon_threadsafe(self._pool.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


def open_remote(
    url: str,
    model: str,
    version: str | None = None,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> RemoteRuntime:
    """Probe the endpoint (UsageError if it cannot serve the model) and open a client for it."""
    endpoint = probe_endpoint(url, model, version)
    return RemoteRuntime(endpoint, concurrency=concurrency, timeout_s=timeout_s)
