"""RTP, RTCP and media control over UDP on asyncio (uvloop): the only media code that touches sockets.

Each leg of a call has an RTP socket (an even port) and an RTCP socket (the next port).
The RTP socket relays the common packet itself, without calling into the relay: a packet
from the leg's latched source, of the payload type both legs use under one number, goes
straight to the other phone. `datagram_received` checks the header's length and version,
bumps three int counters and calls `sendto`; it reads no clock (the media core notices
activity by the counters moving). Every other packet goes to `on_packet`, the relay.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from typing import Any, Protocol, cast

from .ports import PortInUseError, udp_socket

log = logging.getLogger(__name__)

RTP_SOCKET_BUFFER_BYTES = 2 * 1024 * 1024
CONTROL_SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
RTP_HEADER_SIZE = 12

Address = tuple[Any, ...]
SendTo = Callable[[bytes, Address], None]


class RelayedLeg(Protocol):
    """What the transport reads and writes of a relayed leg (the media server's legs are these):
    its port, the fast path's fields for every packet, and the sender it is given once open."""

    port: int
    source: Address | None
    fast_pt: int
    fast_sendto: SendTo
    fast_to: Address
    fast_rewrite: Callable[[bytes], bytes] | None
    packets_in: int
    bytes_in: int
    relayed: int
    sendto: SendTo | None


PacketHandler = Callable[[Any, bytes, Address], None]
"""(the leg the packet came in on, the packet, its source)"""
DatagramHandler = Callable[[bytes, Address], None]


class _RtpProtocol(asyncio.DatagramProtocol):
    __slots__ = ("leg", "on_packet")

    def __init__(self, leg: RelayedLeg, on_packet: PacketHandler) -> None:
        self.leg = leg
        self.on_packet = on_packet

    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        leg = self.leg
        if (
            addr == leg.source
            and len(data) >= RTP_HEADER_SIZE
            and data[0] & 0xC0 == 0x80
            and data[1] & 0x7F == leg.fast_pt
        ):
            leg.packets_in += 1
            leg.bytes_in += len(data)
            leg.relayed += 1
            rewrite = leg.fast_rewrite
            leg.fast_sendto(data if rewrite is None else rewrite(data), leg.fast_to)
        else:
            self.on_packet(leg, data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a phone that went away: the timeout will free the call.
        pass


class _RtcpProtocol(asyncio.DatagramProtocol):
    def __init__(self, leg: RelayedLeg, on_packet: PacketHandler) -> None:
        self.leg = leg
        self.on_packet = on_packet

    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        self.on_packet(self.leg, data, addr)

    def error_received(self, exc: Exception) -> None:
        pass


class _PortPair:
    __slots__ = ("rtp_socket", "rtcp_socket", "rtp", "rtcp", "closed")

    def __init__(self, rtp_socket: socket.socket, rtcp_socket: socket.socket) -> None:
        self.rtp_socket = rtp_socket
        self.rtcp_socket = rtcp_socket
        self.rtp: asyncio.DatagramTransport | None = None
        self.rtcp: asyncio.DatagramTransport | None = None
        self.closed = False


class RtpPorts:
    """The RTP and RTCP sockets of every leg of one worker, bound on `host`."""

    def __init__(
        self, *, host: str, on_rtp: PacketHandler, on_rtcp: PacketHandler, on_ready: Callable[[Any], None]
    ) -> None:
        self.host = host
        self._on_rtp = on_rtp
        self._on_rtcp = on_rtcp
        self._on_ready = on_ready
        self._pairs: dict[int, _PortPair] = {}
        self.unsent = 0
        """Datagrams that could not be sent: the leg was gone, or its socket's buffer full."""

    def open(self, leg: RelayedLeg) -> bool:
        """Bind `leg.port` and the next port; False when another process holds one of them."""
        try:
            rtp_socket = udp_socket(self.host, leg.port, buffer_bytes=RTP_SOCKET_BUFFER_BYTES)
        except OSError as exc:
            return _bind_failed(self.host, leg.port, exc)
        try:
            rtcp_socket = udp_socket(self.host, leg.port + 1, buffer_bytes=RTP_SOCKET_BUFFER_BYTES)
        except OSError as exc:
            rtp_socket.close()
            return _bind_failed(self.host, leg.port + 1, exc)
        pair = self._pairs[leg.port] = _PortPair(rtp_socket, rtcp_socket)
        asyncio.get_running_loop().create_task(self._attach(leg, pair))
        return True

    async def _attach(self, leg: RelayedLeg, pair: _PortPair) -> None:
        loop = asyncio.get_running_loop()
        rtp, _ = await loop.create_datagram_endpoint(
            lambda: _RtpProtocol(leg, self._on_rtp), sock=pair.rtp_socket
        )
        rtcp, _ = await loop.create_datagram_endpoint(
            lambda: _RtcpProtocol(leg, self._on_rtcp), sock=pair.rtcp_socket
        )
        pair.rtp, pair.rtcp = rtp, rtcp
        if pair.closed:  # the call ended before its sockets were ready
            rtp.close()
            rtcp.close()
            return
        leg.sendto = rtp.sendto
        self._on_ready(leg)

    def close(self, leg: RelayedLeg) -> None:
        pair = self._pairs.pop(leg.port, None)
        if pair is None:
            return
        pair.closed = True
        leg.sendto = None
        if pair.rtp is not None and pair.rtcp is not None:
            pair.rtp.close()
            pair.rtcp.close()

    def sendto(self, port: int, data: bytes, destination: Address) -> None:
        """Send from local `port` (an RTP port, or the RTCP port after it)."""
        pair = self._pairs.get(port & ~1)
        if pair is None:
            self.unsent += 1
            return
        transport = pair.rtcp if port & 1 else pair.rtp
        if transport is not None:
            transport.sendto(data, destination)
            return
        try:  # the endpoint is still being set up: the socket itself is there already
            (pair.rtcp_socket if port & 1 else pair.rtp_socket).sendto(data, destination)
        except OSError:
            self.unsent += 1

    def close_all(self) -> None:
        for pair in self._pairs.values():
            pair.closed = True
            for transport in (pair.rtp, pair.rtcp):
                if transport is not None:
                    transport.close()
        self._pairs.clear()


class _ControlProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: DatagramHandler) -> None:
        self.on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: Address) -> None:  # type: ignore[override]
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("media control: %s", exc)


class ControlSocket:
    """A UDP socket for the media control protocol: a worker's server socket, or a client's."""

    def __init__(self, *, on_datagram: DatagramHandler) -> None:
        self._on_datagram = on_datagram
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str, port: int) -> None:
        """Listen on `host`:`port` (port 0: any free port, for a client)."""
        try:
            sock = udp_socket(host, port, buffer_bytes=CONTROL_SOCKET_BUFFER_BYTES)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(
                    exc.errno, f"media control port {host}:{port} is already in use"
                ) from None
            raise
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _ControlProtocol(self._on_datagram), sock=sock
        )
        self._transport = transport

    @property
    def address(self) -> Address:
        assert self._transport is not None
        return cast(Address, self._transport.get_extra_info("sockname"))

    def sendto(self, data: bytes, destination: Address) -> None:
        if self._transport is not None:
            self._transport.sendto(data, destination)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


def _bind_failed(host: str, port: int, exc: OSError) -> bool:
    if exc.errno not in (errno.EADDRINUSE, errno.EACCES):
        log.warning("cannot bind RTP port %s:%d: %s", host, port, exc)
    return False
