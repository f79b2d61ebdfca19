"""Binding a daemon's sockets, and the error of a port another process holds."""

from __future__ import annotations

import socket


class PortInUseError(OSError):
    """A port the daemon must listen on is taken by another process; `strerror` says which."""


def udp_socket(host: str, port: int, *, buffer_bytes: int, reuse_port: bool = False) -> socket.socket:
    """A non-blocking UDP socket bound to `host:port`, with `buffer_bytes` of kernel buffers.

    Large buffers ride out a stall of the event loop (a collection, a burst of requests or
    calls) without the kernel dropping datagrams.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_bytes)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_bytes)
        sock.bind((host, port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock
