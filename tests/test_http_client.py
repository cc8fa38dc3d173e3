"""The load client's HTTP/1.1 connection pool against small misbehaving servers on loopback."""

from __future__ import annotations

import asyncio

import pytest

from accelbench.runtimes.http_client import BadResponse, ConnectionPool, request_bytes

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


async def _serve(handler) -> tuple[asyncio.AbstractServer, str, list[int]]:
    """A server calling handler(reader, writer) per request; also counts the connections."""
    connections: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                if not await handler(writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}", connections


def _run(handler, requests: int, *, limit: int = 4, timeout_s: float = 5.0):
    async def main():
        server, url, connections = await _serve(handler)
        pool = ConnectionPool(url, limit=limit, timeout_s=timeout_s)
        data = request_bytes("POST", url + "/v1/models/m:predict", b'{"instances": [1]}')
        try:
            results = await asyncio.gather(
                *(pool.request(data) for _ in range(requests)), return_exceptions=True
            )
        finally:
            pool.close()
            server.close()
        return results, len(connections)

    return asyncio.run(main())


def test_keep_alive_reuses_at_most_limit_connections():
    async def ok(writer):
        writer.write(OK)
        return True

    results, connections = _run(ok, 200, limit=4)
    assert [r.status for r in results] == [200] * 200
    assert all(r.body == b"{}" for r in results)
    assert connections <= 4


def test_chunked_and_read_until_close_bodies_arrive_whole():
    chunked = (
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"a":\r\n3\r\n 1}\r\n0\r\n\r\n'
    )

    async def send_chunked(writer):
        writer.write(chunked)
        return True

    results, _ = _run(send_chunked, 3)
    assert [r.body for r in results] == [b'{"a": 1}'] * 3

    async def until_close(writer):
        writer.write(b'HTTP/1.1 503 Unavailable\r\nConnection: close\r\n\r\n{"error": "x"}')
        await writer.drain()
        return False  # the body ends when the connection closes

    results, connections = _run(until_close, 3)
    assert [(r.status, r.body) for r in results] == [(503, b'{"error": "x"}')] * 3
    assert connections == 3  # a closed connection is never reused


def test_silence_is_a_timeout_and_garbage_a_bad_response_never_a_hang():
    async def silent(writer):
        await asyncio.sleep(30)
        return True

    results, _ = _run(silent, 6, limit=2, timeout_s=0.3)
    # Two requests wait on connections, four wait for a free one: all six time out.
    assert all(isinstance(r, TimeoutError) for r in results), results

    async def garbage(writer):
        writer.write(b"SPAM\r\n\r\n")
        return True

    results, _ = _run(garbage, 2)
    assert all(isinstance(r, BadResponse) for r in results), results


def test_dropped_connection_is_an_error_and_the_pool_recovers():
    calls = {"n": 0}

    async def drop_every_other(writer):
        calls["n"] += 1
        if calls["n"] % 2:
            writer.transport.abort()
            return False
        writer.write(OK)
        return True

    results, _ = _run(drop_every_other, 20, limit=1)
    errors = [r for r in results if isinstance(r, OSError)]
    assert errors and len(errors) < 20
    assert all(r.status == 200 for r in results if not isinstance(r, BaseException))


def test_nothing_listening_is_a_connection_error():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main():
        pool = ConnectionPool(f"http://127.0.0.1:{port}", limit=2, timeout_s=2)
        with pytest.raises(OSError):
            await pool.request(request_bytes("GET", f"http://127.0.0.1:{port}/"))

    asyncio.run(main())
