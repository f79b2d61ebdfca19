"""The datagram channel between the Call Manager workers of one host (AF_UNIX, abstract names).

Worker i of the daemon on SIP address HOST:PORT listens on the abstract socket
"pbx-callmanager-HOST-PORT-i": nothing on disk to clean up, gone with the process. `send`
says False at once when nobody listens under a name (the worker is dead or restarting).

A receiver's queue holds only `net.unix.max_dgram_qlen` datagrams (10 by default, whatever
the buffer size): a frame that finds it full waits here, in order, and is sent again every
`RETRY_INTERVAL` until it goes; if its worker died meanwhile it goes to `on_undeliverable`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

CHANNEL_BUFFER_BYTES = 4 * 1024 * 1024
RETRY_INTERVAL = 0.001
MAX_WAITING = 10_000
"""Frames waiting for full queues; past that, a frame is undeliverable (handled here)."""


def channel_name(host: str, port: int, index: int) -> bytes:
    return f"\0pbx-callmanager-{host}-{port}-{index}".encode()


class _ChannelProtocol(asyncio.DatagramProtocol):
    def __init__(self, on_frame: Callable[[bytes], None]) -> None:
        self._on_frame = on_frame

    def datagram_received(self, data: bytes, addr: object) -> None:
        self._on_frame(data)


class WorkerChannel:
    def __init__(self, *, host: str, port: int, index: int, on_frame: Callable[[bytes], None],
                 on_undeliverable: Callable[[bytes], None]) -> None:
        self._host, self._port, self._index = host, port, index
        self._on_frame = on_frame
        self._on_undeliverable = on_undeliverable
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: socket.socket | None = None
        self._waiting: deque[tuple[int, bytes]] = deque()
        self._retry: asyncio.TimerHandle | None = None

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
        """Hand `frame` to worker `index` (now, or once its queue has room); False when that
        worker is not there."""
        if self._waiting:
            return self._wait(index, frame)  # behind the frames already waiting, in order
        try:
            self._sendto(index, frame)
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except BlockingIOError:
            return self._wait(index, frame)
        return True

    def _sendto(self, index: int, frame: bytes) -> None:
        assert self._sender is not None
        self._sender.sendto(frame, channel_name(self._host, self._port, index))

    def _wait(self, index: int, frame: bytes) -> bool:
        if len(self._waiting) >= MAX_WAITING:
            log.warning("%d frames wait for full worker queues: handling worker %d's message here",
                        len(self._waiting), index)
            return False
        self._waiting.append((index, frame))
        if self._retry is None:
            self._retry = asyncio.get_running_loop().call_later(RETRY_INTERVAL, self._send_waiting)
        return True

    def _send_waiting(self) -> None:
        self._retry = None
        while self._waiting:
            index, frame = self._waiting[0]
            try:
                self._sendto(index, frame)
            except (ConnectionRefusedError, FileNotFoundError):
                self._on_undeliverable(frame)  # the worker died while its frame waited
            except BlockingIOError:
                self._retry = asyncio.get_running_loop().call_later(RETRY_INTERVAL, self._send_waiting)
                return
            self._waiting.popleft()

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._sender is not None:
            self._sender.close()
            self._sender = None
