"""SIP over UDP and TCP on asyncio (uvloop in the daemons): the only SIP code that touches sockets.

Received messages go to one callback as (data, source, transport); `send` takes the
`Transmit`s the sans-IO core produced. A TCP message to a peer goes over that peer's
connection if there is one, else over a new one (and the peer's answers come back on it).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable
from typing import cast

from ..sip.errors import RemoteProtocolError
from ..sip.events import Transmit
from ..sip.framing import KEEPALIVE_PING, KEEPALIVE_PONG, StreamFramer
from .ports import PortInUseError, udp_socket

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes, tuple[str, int], str], None]
SOCKET_BUFFER_BYTES = 8 * 1024 * 1024


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_message: MessageHandler) -> None:
        self._on_message = on_message

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self._on_message(data, addr[:2], "UDP")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a phone that went away: nothing to do but note it.
        log.debug("UDP error: %s", exc)


class _TcpConnection(asyncio.Protocol):
    def __init__(self, owner: SipTransports) -> None:
        self._owner = owner
        self._framer = StreamFramer(max_message_size=owner.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = transport.get_extra_info("peername")[:2]
        self._owner._connections[self.peer] = self

    def data_received(self, data: bytes) -> None:
        try:
            messages = self._framer.feed(data)
        except RemoteProtocolError as exc:
            log.info("closing TCP connection from %s:%s: %s", *self.peer, exc.reason)
            self._owner.counters["tcp_framing_errors"] += 1
            assert self.transport is not None
            self.transport.close()
            return
        for message in messages:
            if message == KEEPALIVE_PING:
                assert self.transport is not None
                self.transport.write(KEEPALIVE_PONG)
            else:
                self._owner._on_message(message, self.peer, "TCP")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._owner._connections.get(self.peer) is self:
            del self._owner._connections[self.peer]


class SipTransports:
    """The UDP socket and TCP listener of one SIP address."""

    def __init__(self, *, on_message: MessageHandler, max_message_size: int) -> None:
        self._on_message = on_message
        self.max_message_size = max_message_size
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._connections: dict[tuple[str, int], _TcpConnection] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self.counters: dict[str, int] = {"tcp_framing_errors": 0, "send_errors": 0}

    async def start(self, host: str, port: int, transports: tuple[str, ...], *,
                    reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        try:
            if "udp" in transports:
                sock = udp_socket(host, port, buffer_bytes=SOCKET_BUFFER_BYTES, reuse_port=reuse_port)
                self._udp, _ = await loop.create_datagram_endpoint(
                    lambda: _UdpProtocol(self._on_message), sock=sock)
            if "tcp" in transports:
                self._tcp_server = await loop.create_server(
                    lambda: _TcpConnection(self), host, port, reuse_address=True, reuse_port=reuse_port)
        except OSError as exc:
            self.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(exc.errno, f"SIP port {host}:{port} is already in use") from None
            raise

    def write_if_held(self, peer: tuple[str, int], data: bytes) -> bool:
        """Write `data` on the TCP connection with `peer` if we hold one; whether we did."""
        connection = self._connections.get(peer)
        if connection is None or connection.transport is None:
            return False
        connection.transport.write(data)
        return True

    def send(self, transmit: Transmit) -> None:
        if transmit.transport == "UDP":
            if self._udp is not None:
                self._udp.sendto(transmit.data, transmit.destination)
            return
        connection = self._connections.get(transmit.destination)
        if connection is not None and connection.transport is not None:
            connection.transport.write(transmit.data)
            return
        queued = self._pending.get(transmit.destination)
        if queued is not None:
            queued.append(transmit.data)
            return
        self._pending[transmit.destination] = [transmit.data]
        asyncio.get_running_loop().create_task(self._connect(transmit.destination))

    async def _connect(self, destination: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await loop.create_connection(lambda: _TcpConnection(self), *destination)
        except OSError as exc:
            # The transaction layer times out and the TU answers 408/480, as for a lost datagram.
            log.info("TCP connection to %s:%s failed: %s", *destination, exc)
            self.counters["send_errors"] += 1
            self._pending.pop(destination, None)
            return
        for data in self._pending.pop(destination, []):
            assert connection.transport is not None
            connection.transport.write(data)

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp_server is not None:
            self._tcp_server.close()
            self._tcp_server = None
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.transport.close()
        self._connections.clear()
