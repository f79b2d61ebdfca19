"""One UDP socket with a callback per datagram: the media control protocol's transport.

Both ends use it: the Call Manager's control client (bound to an ephemeral port) and the
media server's control port.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable

from .ports import PortInUseError

log = logging.getLogger(__name__)

DatagramHandler = Callable[[bytes, tuple[str, int]], None]


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_datagram: DatagramHandler) -> None:
        self._on_datagram = on_datagram

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:  # type: ignore[override]
        self._on_datagram(data, addr[:2])

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable: the peer is gone; its pings time out and say so.
        log.debug("UDP error: %s", exc)


class DatagramEndpoint:
    def __init__(self, *, on_datagram: DatagramHandler, name: str) -> None:
        self._on_datagram = on_datagram
        self._name = name
        self._transport: asyncio.DatagramTransport | None = None
        self.local_address: tuple[str, int] = ("", 0)

    async def start(self, host: str, port: int) -> None:
        """Bind `host:port` (port 0: any free port; see `local_address`)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(exc.errno,
                                     f"{self._name} port {host}:{port} is already in use") from None
            raise
        sock.setblocking(False)
        self.local_address = sock.getsockname()[:2]
        self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Protocol(self._on_datagram), sock=sock)

    def send(self, data: bytes, address: tuple[str, int]) -> None:
        if self._transport is not None:
            self._transport.sendto(data, address)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
