"""SIP over TCP on loopback with short deadlines: the limits per source and in all, the
first-message deadline against a slow sender, the idle timeout and keep-alives, the counters."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pbx_services.sip.events import Transmit
from pbx_services.transport.connections import ConnectionLimits, ConnectionTable
from pbx_services.transport.sip import SipTransports, TcpConnection

OPTIONS = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:5060;branch=z9hG4bK1\r\n"
           b"From: <sip:a@127.0.0.2>;tag=1\r\nTo: <sip:127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 OPTIONS\r\n"
           b"Content-Length: 0\r\n\r\n")
SWEEP = 0.05


def _limits(**overrides: float) -> ConnectionLimits:
    values = {"max_connections": 100, "max_per_source": 100, "first_message_timeout": 5.0,
              "idle_timeout": 5.0, **overrides}
    return ConnectionLimits(**values)  # type: ignore[arg-type]


Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def run_with_transports(limits: ConnectionLimits,
                        body: Callable[[SipTransports, int, list[bytes]], Awaitable[None]]) -> None:
    async def main() -> None:
        received: list[bytes] = []
        table: ConnectionTable[TcpConnection] = ConnectionTable(limits)
        transports = SipTransports(on_message=lambda data, source, transport: received.append(data),
                                   max_message_size=65535, table=table, sweep_interval=SWEEP)
        await transports.start("127.0.0.1", 0, ("tcp",))
        assert transports._tcp_server is not None
        port = transports._tcp_server.sockets[0].getsockname()[1]
        try:
            await body(transports, port, received)
        finally:
            transports.close()

    asyncio.run(main())


async def _connect(port: int, source: str) -> Client:
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def _closed_within(client: Client, seconds: float) -> bool:
    """Whether the server closed `client` within `seconds` (whatever it sent before)."""
    try:
        while await asyncio.wait_for(client[0].read(100), seconds):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def test_a_source_at_its_limit_is_refused_and_counted() -> None:
    async def body(transports: SipTransports, port: int, received: list[bytes]) -> None:
        first = [await _connect(port, "127.0.0.2") for _ in range(2)]
        refused = await _connect(port, "127.0.0.2")
        other = await _connect(port, "127.0.0.3")
        assert await _closed_within(refused, 1.0)
        assert not await _closed_within(first[0], 0.1)
        assert not await _closed_within(other, 0.1)
        assert transports.counters["tcp_closed_per_source_limit"] == 1
        assert len(transports.table) == 3

    run_with_transports(_limits(max_per_source=2), body)


def test_a_full_table_closes_the_oldest_silent_connection_then_refuses_once_all_have_spoken() -> None:
    async def body(transports: SipTransports, port: int, received: list[bytes]) -> None:
        silent = await _connect(port, "127.0.0.2")
        await asyncio.sleep(0.05)
        phones = [await _connect(port, "127.0.0.3") for _ in range(2)]
        for _, writer in phones:
            writer.write(OPTIONS)
        await asyncio.sleep(0.1)
        newcomer = await _connect(port, "127.0.0.4")
        assert await _closed_within(silent, 1.0)  # made room for the newcomer
        assert not await _closed_within(newcomer, 0.1)
        newcomer[1].write(OPTIONS)
        await asyncio.sleep(0.1)
        refused = await _connect(port, "127.0.0.5")  # every connection held has spoken
        assert await _closed_within(refused, 1.0)
        for phone in phones:
            assert not await _closed_within(phone, 0.05)
        assert transports.counters["tcp_closed_global_limit"] == 2
        assert len(received) == 3

    run_with_transports(_limits(max_connections=3), body)


def test_a_byte_a_moment_that_never_completes_a_message_is_closed_at_the_first_message_deadline() -> None:
    async def body(transports: SipTransports, port: int, received: list[bytes]) -> None:
        slowloris = await _connect(port, "127.0.0.2")
        phone = await _connect(port, "127.0.0.3")
        phone[1].write(OPTIONS)
        started = time.monotonic()
        for byte in OPTIONS[:-2]:  # everything but the last CRLF, a byte every 0.05 s
            if slowloris[1].is_closing() or slowloris[0].at_eof():
                break
            slowloris[1].write(bytes([byte]))
            await asyncio.sleep(0.05)
            if time.monotonic() - started > 1.0:
                break
        assert await _closed_within(slowloris, 1.0)
        assert 0.5 <= time.monotonic() - started < 1.0 + SWEEP
        assert not await _closed_within(phone, 0.1)
        assert transports.counters["tcp_closed_first_message_deadline"] == 1
        assert received == [OPTIONS]

    run_with_transports(_limits(first_message_timeout=0.5), body)


def test_idle_connection_is_closed_and_a_keepalive_ping_keeps_one_open() -> None:
    async def body(transports: SipTransports, port: int, received: list[bytes]) -> None:
        idle, pinging = await _connect(port, "127.0.0.2"), await _connect(port, "127.0.0.3")
        for _, writer in (idle, pinging):
            writer.write(OPTIONS)
        started = time.monotonic()
        pongs = b""
        while time.monotonic() - started < 1.2:
            pinging[1].write(b"\r\n\r\n")  # RFC 5626 keep-alive
            pongs += await asyncio.wait_for(pinging[0].readexactly(2), 1.0)
            await asyncio.sleep(0.2)
        assert idle[0].at_eof() or await _closed_within(idle, 0.1)
        assert not await _closed_within(pinging, 0.05)
        assert pongs.startswith(b"\r\n\r\n")
        assert transports.counters["tcp_closed_idle_timeout"] == 1
        assert transports.counters["tcp_closed_first_message_deadline"] == 0
        assert len(transports.table) == 1

    run_with_transports(_limits(idle_timeout=0.5), body)


def test_a_message_to_a_peer_goes_out_on_a_new_connection_past_a_full_table() -> None:
    async def body(transports: SipTransports, port: int, received: list[bytes]) -> None:
        phones = [await _connect(port, "127.0.0.2") for _ in range(2)]
        for _, writer in phones:
            writer.write(OPTIONS)
        await asyncio.sleep(0.1)
        heard: asyncio.Queue[bytes] = asyncio.Queue()

        async def peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            heard.put_nowait(await reader.readexactly(len(OPTIONS)))

        server = await asyncio.start_server(peer, "127.0.0.3", 0)
        destination = server.sockets[0].getsockname()[:2]
        transports.send(Transmit(data=OPTIONS, destination=destination, transport="TCP"))
        assert await asyncio.wait_for(heard.get(), 1.0) == OPTIONS
        assert len(transports.table) == 3  # in the headroom, counted
        transports.send(Transmit(data=OPTIONS, destination=("127.0.0.4", 9), transport="TCP"))
        assert transports.counters["send_errors"] == 1  # past the headroom too: lost, and said
        assert transports.counters["tcp_closed_global_limit"] == 1
        server.close()

    run_with_transports(_limits(max_connections=2, outbound_headroom=1), body)
