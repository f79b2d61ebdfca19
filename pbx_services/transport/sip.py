"""SIP over UDP and TCP on asyncio (uvloop in the daemons): the only SIP code that touches sockets.

Received messages go to one callback as (data, source, transport); `send` takes the
`Transmit`s the sans-IO core produced. A TCP message to a peer goes over that peer's
connection if there is one, else over a new one (and the peer's answers come back on it).

TCP connections are held in a `ConnectionTable` (connections.py: limits per source and in
all, the first-message deadline, the idle timeout), shared by the transports of one process
so that together they stay within its descriptor budget; one sweep a second closes the
connections past a deadline.
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
from .connections import LISTEN_BACKLOG, CloseLog, CloseReason, ConnectionTable, closed_counter_key
from .ports import PortInUseError, udp_socket

log = logging.getLogger(__name__)

MessageHandler = Callable[[bytes, tuple[str, int], str], None]
SOCKET_BUFFER_BYTES = 8 * 1024 * 1024
SWEEP_INTERVAL = 1.0
"""Seconds between two looks for TCP connections past a deadline."""
TCP_OUTBOUND_HEADROOM = 64
"""TCP connections we open (to send a request or a response) that may go past the cap."""
TCP_CLOSED = "tcp_closed_"
"""Prefix of the `counters` of TCP connections closed by reason (`tcp_closed_idle_timeout`)."""


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_message: MessageHandler) -> None:
        self._on_message = on_message

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self._on_message(data, addr[:2], "UDP")

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a phone that went away: nothing to do but note it.
        log.debug("UDP error: %s", exc)


class TcpConnection(asyncio.Protocol):
    """One SIP TCP connection, accepted by a listener or opened by us, held in the table."""

    def __init__(self, owner: SipTransports, *, outbound: bool = False) -> None:
        self._owner = owner
        self._framer = StreamFramer(max_message_size=owner.max_message_size)
        self.outbound = outbound
        """Opened by us (admitted to the table before it connects), not accepted."""
        self.transport: asyncio.Transport | None = None
        self.peer: tuple[str, int] = ("", 0)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if peer is None:  # reset before we got to it
            transport.close()
            return
        self.peer = peer[:2]
        if self.outbound and self not in self._owner.table:
            transport.close()  # given up while it connected (past its idle timeout)
            return
        if not self.outbound:
            closing = self._owner.table.admit(self, self.peer[0], self._owner.now())
            if closing is not None:
                connection, reason = closing
                connection.close_for(reason)
                if connection is self:
                    return
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
        if messages:
            self._owner.table.spoke(self, self._owner.now())
        for message in messages:
            if message == KEEPALIVE_PING:
                assert self.transport is not None
                self.transport.write(KEEPALIVE_PONG)
            else:
                self._owner._on_message(message, self.peer, "TCP")

    def close_for(self, reason: CloseReason) -> None:
        """Close it because of `reason` (refused, evicted, past a deadline), counted and logged."""
        self._owner.closed(reason, self.peer[0])
        self._owner.table.remove(self)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner.table.remove(self)
        if self._owner._connections.get(self.peer) is self:
            del self._owner._connections[self.peer]


class SipTransports:
    """The UDP socket and TCP listener of one SIP address.

    `table` holds its TCP connections (and those of the process's other SIP addresses): SIP
    over TCP needs one; `sweep_interval` is how often its deadlines are looked at.
    """

    def __init__(self, *, on_message: MessageHandler, max_message_size: int,
                 table: ConnectionTable[TcpConnection] | None = None,
                 sweep_interval: float = SWEEP_INTERVAL) -> None:
        self._on_message = on_message
        self.max_message_size = max_message_size
        self._table = table
        self._sweep_interval = sweep_interval
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.Server | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._connections: dict[tuple[str, int], TcpConnection] = {}
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self.counters: dict[str, int] = {"tcp_framing_errors": 0, "send_errors": 0,
                                         **{closed_counter_key(TCP_CLOSED, r): 0 for r in CloseReason}}
        self._close_log = CloseLog(logger=log, what="SIP over TCP")

    @property
    def table(self) -> ConnectionTable[TcpConnection]:
        assert self._table is not None, "SIP over TCP needs a connection table"
        return self._table

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def closed(self, reason: CloseReason, source: str) -> None:
        self.counters[closed_counter_key(TCP_CLOSED, reason)] += 1
        self._close_log.note(reason, source, self.now())

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
                    lambda: TcpConnection(self), host, port, reuse_address=True, reuse_port=reuse_port,
                    backlog=LISTEN_BACKLOG)
                self._sweep = loop.call_later(self._sweep_interval, self._sweep_deadlines)
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
        # Counted in the table from now on: a connection being opened holds a descriptor too.
        connection = TcpConnection(self, outbound=True)
        closing = self.table.admit(connection, None, self.now())
        if closing is not None:
            other, reason = closing
            if other is connection:
                # Past the headroom too: lost, as a datagram would be (the transaction times out).
                self.counters["send_errors"] += 1
                self.closed(reason, transmit.destination[0])
                return
            other.close_for(reason)
        self._pending[transmit.destination] = [transmit.data]
        asyncio.get_running_loop().create_task(self._connect(transmit.destination, connection))

    async def _connect(self, destination: tuple[str, int], connection: TcpConnection) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(lambda: connection, *destination)
        except OSError as exc:
            # The transaction layer times out and the TU answers 408/480, as for a lost datagram.
            log.info("TCP connection to %s:%s failed: %s", *destination, exc)
            self.counters["send_errors"] += 1
            self.table.remove(connection)
            self._pending.pop(destination, None)
            return
        for data in self._pending.pop(destination, []):
            assert connection.transport is not None
            connection.transport.write(data)

    def _sweep_deadlines(self) -> None:
        now = self.now()
        for connection, reason in self.table.expired(now):
            connection.close_for(reason)
        self._close_log.flush(now)
        self._sweep = asyncio.get_running_loop().call_later(self._sweep_interval, self._sweep_deadlines)

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp_server is not None:
            self._tcp_server.close()
            self._tcp_server = None
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.transport.close()
        self._connections.clear()
