"""The datagram channel between the Call Manager workers of one host (AF_UNIX, abstract names).

Worker i of the daemon on SIP address HOST:PORT listens on the abstract socket
"pbx-callmanager-HOST-PORT-i": nothing on disk to clean up, gone with the process. `send`
says False at once when nobody listens under a name (the worker is dead or restarting).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

log = logging.getLogger(__name__)

CHANNEL_BUFFER_BYTES = 4 * 1024 * 1024


def channel_name(host: str, port: int, index: int) -> bytes:
    return f"\0pbx-callmanager-{host}-{port}-{index}".encode()


class _ChannelProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_frame: Callable[[bytes], None]) -> None:
        self._on_frame = on_frame

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._on_frame(data)


class WorkerChannel:
    def __init__(self, *, host: str, port: int, index: int, on_frame: Callable[[bytes], None]) -> None:
        self._host, self._port, self._index = host, port, index
        self._on_frame = on_frame
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: socket.socket | None = None

    async def start(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CHANNEL_BUFFER_BYTES)
        sock.bind(channel_name(self._host, self._port, self._index))
        sock.setblocking(False)
        self._transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _ChannelProtocol(self._on_frame), sock=sock)
        sender = self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHANNEL_BUFFER_BYTES)
        sender.setblocking(False)

    def send(self, index: int, frame: bytes) -> bool:
        """Hand `frame` to worker `index`; False when it is not there or cannot take it now."""
        assert self._sender is not None
        try:
            self._sender.sendto(frame, channel_name(self._host, self._port, index))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except BlockingIOError:
            log.warning("worker %d's channel is full: handling its message here", index)
            return False
        return True

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None
