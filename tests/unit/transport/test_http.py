"""The /health and /metrics endpoint under a flood of idle connections, on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry

from pbx_services.transport.http import HttpEndpoint

Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def run_with_endpoint(body: Callable[[HttpEndpoint, int], Awaitable[None]], *, max_connections: int,
                      max_per_source: int, read_timeout: float = 5.0) -> None:
    async def main() -> None:
        registry = CollectorRegistry()
        endpoint = HttpEndpoint(registry=registry, health=lambda: {"status": "ok"},
                                max_connections=max_connections, max_per_source=max_per_source,
                                read_timeout=read_timeout, sweep_interval=0.05)
        registry.register(endpoint.collector())
        await endpoint.start("127.0.0.1", 0)
        assert endpoint._server is not None
        try:
            await body(endpoint, endpoint._server.sockets[0].getsockname()[1])
        finally:
            endpoint.close()
            await asyncio.sleep(0.05)  # the handlers see their connections closed

    asyncio.run(main())


async def _connect(port: int, source: str) -> Client:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _get(port: int, path: str, source: str = "127.0.0.1") -> bytes:
    reader, writer = await _connect(port, source)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: pbx\r\n\r\n".encode())
    reply = await asyncio.wait_for(reader.read(), 2.0)
    writer.close()
    return reply


async def _closed_within(client: Client, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(client[0].read(100), seconds) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def test_health_answers_while_idle_connections_fill_the_endpoint_from_many_sources() -> None:
    async def body(endpoint: HttpEndpoint, port: int) -> None:
        flood = [await _connect(port, f"127.0.0.{2 + n % 4}") for n in range(40)]
        await asyncio.sleep(0.1)
        assert len(endpoint.table) == 8
        closed_at_once = sum(reader.at_eof() for reader, _ in flood)
        for _ in range(3):
            assert (await _get(port, "/health")).startswith(b"HTTP/1.1 200 OK")
        metrics = (await _get(port, "/metrics")).decode()
        assert endpoint.counters["closed_per_source_limit"] == 40 - 4 * 2
        assert endpoint.counters["closed_global_limit"] == 1  # the first request made room, then had it
        assert closed_at_once >= 32
        assert 'pbx_http_connections_closed_total{reason="per_source_limit"} 32.0' in metrics
        for _, writer in flood:
            writer.close()

    run_with_endpoint(body, max_connections=8, max_per_source=2)


def test_a_client_that_never_finishes_its_request_is_closed_at_the_deadline() -> None:
    async def body(endpoint: HttpEndpoint, port: int) -> None:
        slow = await _connect(port, "127.0.0.2")
        slow[1].write(b"GET /health HTTP/1.1\r\n")
        assert not await _closed_within(slow, 0.2)
        assert await _closed_within(slow, 0.5)
        assert endpoint.counters["closed_first_message_deadline"] == 1
        assert len(endpoint.table) == 0

    run_with_endpoint(body, max_connections=8, max_per_source=2, read_timeout=0.3)
