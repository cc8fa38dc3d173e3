"""A lean HTTP/1.1 keep-alive client for load generation: asyncio transports + httptools.

The load client must never be what a benchmark measures. aiohttp, the general-purpose client
this module replaced, was the limit on this project's 2-core VM: under LoadGen Offline against a
bare endpoint it completed 4,324-6,566 requests/s, this client 12,318-16,557 (docs/architecture.md);
on a machine whose cores the client shares with the server, that CPU is taken from the server. This
client does only what a predict request needs: pre-encoded request bytes written on an open
keep-alive connection, the response parsed by httptools (uvicorn's C parser, chunked bodies
included), at most ``limit`` connections, a total timeout per request.

Every method runs on the event loop that owns the pool.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from collections import deque
from dataclasses import dataclass

import httptools

_Future = asyncio.Future


class BadResponse(Exception):
    """The endpoint sent something that is not an HTTP/1.x response."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes


def request_bytes(method: str, url: str, body: bytes = b"", api_key: str | None = None) -> bytes:
    """The whole HTTP/1.1 request for url (keep-alive, JSON body when one is given; with an API
    key, its bearer Authorization header)."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    head = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Accept: */*"]
    if api_key:
        head.append(f"Authorization: Bearer {api_key}")
    if body or method == "POST":
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: _Future | None = None
        self._chunks: list[bytes] = []
        self._reusable = True
        self._until_close = False  # a response with neither length nor chunks ends at close

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment] - uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(BadResponse(f"not an HTTP response ({err})"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and self._until_close and exc is None:
            self._finish()
            return
        self._fail(ConnectionResetError("the endpoint closed the connection"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._chunks = []

    def on_headers_complete(self) -> None:
        self._until_close = not self._parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        self._reusable = self._parser.should_keep_alive()
        self._finish()

    # requests
    def send(self, data: bytes) -> _Future:
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self._until_close = False
        self.transport.write(data)
        return self._waiter

    @property
    def reusable(self) -> bool:
        return self._reusable and not self.closed and self._waiter is None

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self._parser.get_status_code(), b"".join(self._chunks)))
        self._chunks = []

    def _fail(self, err: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        self._reusable = False
        if waiter is not None and not waiter.done():
            waiter.set_exception(err)


class ConnectionPool:
    """Up to ``limit`` keep-alive connections to one origin (http or https)."""

    def __init__(self, base_url: str, *, limit: int, timeout_s: float) -> None:
        parts = urllib.parse.urlsplit(base_url)
        self._host = parts.hostname or ""
        self._tls = parts.scheme == "https"
        self._port = parts.port or (443 if self._tls else 80)
        self._limit = limit
        self._timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._waiting: deque[_Future] = deque()
        self._open = 0
        self._ssl = ssl.create_default_context() if self._tls else None

    async def request(self, data: bytes) -> Response:
        """Send one whole request (see request_bytes); its response, or an OSError / TimeoutError /
        BadResponse. A connection is reused only after a complete keep-alive response."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout_s
        connection = await self._acquire(deadline)
        waiter = connection.send(data)
        timer = loop.call_at(deadline, _time_out, waiter, connection)
        try:
            return await waiter
        finally:
            timer.cancel()
            self._release(connection)

    async def _acquire(self, deadline: float) -> _Connection:
        while self._idle:
            connection = self._idle.pop()
            if connection.reusable:
                return connection
            self._discard(connection)
        if self._open >= self._limit:
            slot = asyncio.get_running_loop().create_future()
            self._waiting.append(slot)
            try:
                async with asyncio.timeout_at(deadline):
                    connection = await slot
            except TimeoutError:
                if slot.done() and not slot.cancelled() and slot.result() is not None:
                    self._release(slot.result())  # handed over just as the time ran out
                raise
            if connection is not None:
                return connection
        self._open += 1
        try:
            async with asyncio.timeout_at(deadline):
                _, connection = await asyncio.get_running_loop().create_connection(
                    _Connection,
                    self._host,
                    self._port,
                    ssl=self._ssl,
                    server_hostname=self._host if self._tls else None,
                )
        except BaseException:
            self._open -= 1
            self._wake_one(None)
            raise
        return connection

    def _release(self, connection: _Connection) -> None:
        if not connection.reusable:
            self._discard(connection)
            self._wake_one(None)  # a slot is free: the waiter opens a connection of its own
            return
        if not self._wake_one(connection):
            self._idle.append(connection)

    def _wake_one(self, connection: _Connection | None) -> bool:
        while self._waiting:
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_result(connection)
                return True
        return False

    def _discard(self, connection: _Connection) -> None:
        connection.abort()
        self._open -= 1

    def close(self) -> None:
        for connection in self._idle:
            connection.abort()
        self._idle.clear()
        self._open = 0
        while self._waiting:
            slot = self._waiting.popleft()
            if not slot.done():
                slot.set_exception(ConnectionAbortedError("the client is closing"))


def _time_out(waiter: _Future, connection: _Connection) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("no complete response within the request timeout"))
        connection.abort()
