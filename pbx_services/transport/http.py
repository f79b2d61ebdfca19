"""A daemon's HTTP endpoint: GET /health and GET /metrics (Prometheus text format), on asyncio.

Small on purpose: two read-only resources for probes and scrapers, no framework.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .ports import PortInUseError

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8192
READ_TIMEOUT = 5.0


class HttpEndpoint:
    def __init__(self, *, registry: CollectorRegistry, health: Callable[[], dict[str, object]]) -> None:
        self._registry = registry
        self._health = health
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(exc.errno, f"HTTP port {host}:{port} is already in use") from None
            raise

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            status, content_type, body = "400 Bad Request", "text/plain", b"bad request\n"
        elif parts[0] != "GET":
            status, content_type, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
        elif parts[1] == "/health":
            report = self._health()
            status = "200 OK" if report.get("status") == "ok" else "503 Service Unavailable"
            content_type, body = "application/json", json.dumps(report).encode() + b"\n"
        elif parts[1] == "/metrics":
            status, content_type, body = "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
        else:
            status, content_type, body = "404 Not Found", "text/plain", b"not found\n"
        writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()
