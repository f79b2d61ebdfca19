"""A daemon's HTTP endpoint: GET /health, GET /metrics (Prometheus text format) and the control
API under /api/ (`runtime.control`), on asyncio.

Small on purpose: two read-only resources for probes and scrapers and JSON requests for the
CLI and the portal, no framework. Its
connections are held in a `ConnectionTable` (connections.py) so that a flood of them cannot
keep /health from answering: a few per source address, a cap in all (a new connection takes
the place of the oldest one that has not sent its request yet), and `READ_TIMEOUT` to send
the request head and to take the response.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Iterator
from http import HTTPStatus
from urllib.parse import unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..runtime.control import API_PREFIX, MAX_BODY, ControlReply, ControlRequest
from .connections import (
    LISTEN_BACKLOG,
    CloseLog,
    CloseReason,
    ConnectionLimits,
    ConnectionTable,
    closed_connections_family,
    closed_counter_key,
)
from .ports import PortInUseError

log = logging.getLogger(__name__)

MAX_REQUEST_HEAD = 8192
READ_TIMEOUT = 5.0
"""Seconds a client has to send its request head, and then to take the response."""
SWEEP_INTERVAL = 1.0
"""Seconds between two looks for connections past their deadline."""
HTTP_CLOSED = "closed_"
"""Prefix of the `counters` of connections closed by reason (`closed_global_limit`)."""
CONTROL_TIMEOUT = 4.0
"""Seconds a control request may take (the workers answer within milliseconds); less than
READ_TIMEOUT, after which the connection would be closed without a reply."""
NO_TOKEN = "the control API is off: the config has no auth.secret"

Control = Callable[[ControlRequest], Awaitable[ControlReply]]


class HttpEndpoint:
    def __init__(self, *, registry: CollectorRegistry, health: Callable[[], dict[str, object]],
                 max_connections: int, max_per_source: int, read_timeout: float = READ_TIMEOUT,
                 sweep_interval: float = SWEEP_INTERVAL, control: Control | None = None,
                 control_token: str | None = None) -> None:
        self._registry = registry
        self._health = health
        self._control = control
        self._control_token = control_token
        self._server: asyncio.Server | None = None
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_interval = sweep_interval
        self.table: ConnectionTable[asyncio.StreamWriter] = ConnectionTable(ConnectionLimits(
            max_connections=max_connections, max_per_source=max_per_source,
            first_message_timeout=read_timeout, idle_timeout=read_timeout))
        self.counters = {closed_counter_key(HTTP_CLOSED, reason): 0 for reason in CloseReason}
        self._close_log = CloseLog(logger=log, what="HTTP")

    async def start(self, host: str, port: int) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True,
                                                      limit=MAX_REQUEST_HEAD, backlog=LISTEN_BACKLOG)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUseError(exc.errno, f"HTTP port {host}:{port} is already in use") from None
            raise
        self._sweep = asyncio.get_running_loop().call_later(self._sweep_interval, self._sweep_deadlines)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for writer in self.table.connections():
            writer.close()

    def collector(self) -> Collector:
        """Its connections, for /metrics."""
        return _HttpConnectionsCollector(self)

    def _close_for(self, writer: asyncio.StreamWriter, reason: CloseReason) -> None:
        self.counters[closed_counter_key(HTTP_CLOSED, reason)] += 1
        peer = writer.get_extra_info("peername")
        self._close_log.note(reason, peer[0] if peer else "?", asyncio.get_running_loop().time())
        self.table.remove(writer)
        writer.close()

    def _sweep_deadlines(self) -> None:
        loop = asyncio.get_running_loop()
        for writer, reason in self.table.expired(loop.time()):
            self._close_for(writer, reason)
        self._close_log.flush(loop.time())
        self._sweep = loop.call_later(self._sweep_interval, self._sweep_deadlines)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        peer = writer.get_extra_info("peername")
        closing = self.table.admit(writer, peer[0] if peer else "", loop.time())
        if closing is not None:
            self._close_for(*closing)
            if closing[0] is writer:
                return
        try:
            await self._answer(reader, writer)
        finally:
            self.table.remove(writer)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return
        self.table.spoke(writer, asyncio.get_running_loop().time())
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            status, content_type, body = "400 Bad Request", "text/plain", b"bad request\n"
        elif parts[1].startswith(API_PREFIX):
            reply = await self._api(parts[0], parts[1], _headers(lines[1:]), reader)
            status = f"{reply.status} {HTTPStatus(reply.status).phrase}"
            content_type, body = "application/json", json.dumps(reply.body).encode() + b"\n"
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

    async def _api(self, method: str, target: str, headers: dict[str, str],
                   reader: asyncio.StreamReader) -> ControlReply:
        """A control request: authorised by its bearer token, its JSON body read, then answered."""
        if self._control is None:
            return ControlReply.error(404, "this daemon has no control API")
        if self._control_token is None:
            return ControlReply.error(403, NO_TOKEN)
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                  self._control_token.encode()):
            return ControlReply.error(401, "a bearer token (derived from auth.secret) is required")
        if method not in ("GET", "POST"):
            return ControlReply.error(405, "GET or POST only")
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return ControlReply.error(400, "Content-Length is not a number")
        if not 0 <= length <= MAX_BODY:
            return ControlReply.error(413, f"the body may have at most {MAX_BODY} bytes")
        payload: object = {}
        if length:
            try:
                raw = await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                return ControlReply.error(400, "the body is shorter than its Content-Length")
            try:
                payload = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                return ControlReply.error(400, "the body is not JSON")
        if not isinstance(payload, dict):
            return ControlReply.error(400, "the body is not a JSON object")
        segments = urlsplit(target).path[len(API_PREFIX):].split("/")
        request = ControlRequest(method, tuple(unquote(segment) for segment in segments if segment), payload)
        try:
            return await asyncio.wait_for(self._control(request), CONTROL_TIMEOUT)
        except TimeoutError:
            return ControlReply.error(504, f"no answer within {CONTROL_TIMEOUT:g} s")


def _headers(lines: list[str]) -> dict[str, str]:
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return headers


class _HttpConnectionsCollector(Collector):
    def __init__(self, endpoint: HttpEndpoint) -> None:
        self._endpoint = endpoint

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield GaugeMetricFamily("pbx_http_connections", "Connections to /health and /metrics open now",
                                value=len(self._endpoint.table))
        yield closed_connections_family(
            "pbx_http_connections_closed", "HTTP connections refused or closed by the endpoint, by reason",
            HTTP_CLOSED, [], [([], self._endpoint.counters)])
