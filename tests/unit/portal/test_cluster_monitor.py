"""The servers' states from their rows and their /health, probed over real HTTP on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerEntry
from pbx_services.portal.cluster_monitor import (
    PROBE_TIMEOUT,
    ClusterMonitor,
    Probe,
    ServerState,
    load_of,
    probe_health,
    server_status,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def entry(name: str = "ivr-1", *, enabled: bool = True, http_port: int | None = 9061) -> ServerEntry:
    return ServerEntry(name=name, role=ServerRole.IVR, host="127.0.0.1", port=5090, workers=1, weight=1,
                       enabled=enabled, http_port=http_port)


def answered(**health: Any) -> Probe:
    return Probe(at=NOW, answered=True, health={"status": "ok", **health})


@pytest.mark.parametrize(("enabled", "probe", "state"), [
    (True, answered(calls=3), ServerState.UP),
    (True, answered(status="degraded"), ServerState.DEGRADED),
    (True, Probe(at=NOW, answered=False, error="connection refused"), ServerState.DOWN),
    (False, answered(calls=2), ServerState.DRAINING),
    (False, answered(calls=0), ServerState.DISABLED),
    (False, Probe(at=NOW, answered=False), ServerState.DISABLED),
    (True, None, ServerState.UNKNOWN),
    (False, None, ServerState.DISABLED),
])
def test_state_from_row_and_probe(enabled: bool, probe: Probe | None, state: ServerState) -> None:
    assert server_status(entry(enabled=enabled), probe).state is state


def test_a_server_without_an_http_port_is_unknown() -> None:
    assert server_status(entry(http_port=None), answered()).state is ServerState.UNKNOWN


def test_load_reads_the_numbers_each_role_reports() -> None:
    assert load_of({"calls": 4, "status": "ok"}) == {"calls": 4}
    assert load_of({"media_calls": 7}) == {"media_calls": 7}
    assert load_of({"active_calls": 2, "registered_contacts": 100}) == {"active_calls": 2,
                                                                        "registered_contacts": 100}
    assert load_of({"calls": 1, "workers": [{"rooms": 2, "participants": 5}, {"rooms": 1}]}) == \
        {"calls": 1, "rooms": 3, "participants": 5}
    assert load_of({"calls": True, "rooms": "many"}) == {}


class _Health(BaseHTTPRequestHandler):
    body: bytes = b""
    status = 200
    delay = 0.0

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        time.sleep(self.delay)
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def serve_health(body: dict[str, Any] | bytes, *, status: int = 200, delay: float = 0.0
                 ) -> tuple[ThreadingHTTPServer, int]:
    handler = type("Handler", (_Health,), {
        "body": body if isinstance(body, bytes) else json.dumps(body).encode(), "status": status,
        "delay": delay})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def servers() -> Iterator[list[ThreadingHTTPServer]]:
    started: list[ThreadingHTTPServer] = []
    yield started
    for server in started:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_reads_a_real_health_endpoint(servers: list[ThreadingHTTPServer]) -> None:
    server, port = serve_health({"status": "ok", "calls": 5, "role": "ivr", "version": "0.1.0"})
    servers.append(server)

    probe = probe_health("127.0.0.1", port, clock=lambda: NOW)

    assert probe.answered and probe.at == NOW
    assert server_status(entry(http_port=port), probe).version == "0.1.0"
    assert server_status(entry(http_port=port), probe).load == {"calls": 5}


def test_a_degraded_daemon_answering_503_still_answered(servers: list[ThreadingHTTPServer]) -> None:
    server, port = serve_health({"status": "degraded", "calls": 1}, status=503)
    servers.append(server)

    probe = probe_health("127.0.0.1", port)

    assert probe.answered
    assert server_status(entry(http_port=port), probe).state is ServerState.DEGRADED


def test_a_closed_port_and_a_non_json_answer_are_down(servers: list[ThreadingHTTPServer]) -> None:
    server, port = serve_health(b"<html>not ours</html>")
    servers.append(server)

    refused = probe_health("127.0.0.1", closed_port())
    garbage = probe_health("127.0.0.1", port)

    assert not refused.answered and refused.error
    assert not garbage.answered and garbage.error == "/health is not JSON"


def test_the_monitor_probes_all_servers_at_once(servers: list[ThreadingHTTPServer]) -> None:
    slow_ports = []
    for _ in range(4):
        server, port = serve_health({"status": "ok", "calls": 0}, delay=0.5)
        servers.append(server)
        slow_ports.append(port)
    rows = [entry(f"ivr-{i}", http_port=port) for i, port in enumerate(slow_ports)]
    rows.append(entry("ivr-dead", http_port=closed_port()))
    monitor = ClusterMonitor(servers=lambda: rows)

    assert {s.state for s in monitor.statuses()} == {ServerState.UNKNOWN}  # nothing probed: no waiting
    started = time.monotonic()
    monitor.refresh()
    took = time.monotonic() - started

    states = {status.name: status.state for status in monitor.statuses()}
    assert states == {"ivr-0": ServerState.UP, "ivr-1": ServerState.UP, "ivr-2": ServerState.UP,
                      "ivr-3": ServerState.UP, "ivr-dead": ServerState.DOWN}
    assert took < 1.5  # four half-second answers side by side, not one after the other


def test_a_server_that_does_not_answer_in_time_is_down(servers: list[ThreadingHTTPServer]) -> None:
    server, port = serve_health({"status": "ok"}, delay=PROBE_TIMEOUT + 0.5)
    servers.append(server)

    started = time.monotonic()
    probe = probe_health("127.0.0.1", port)

    assert not probe.answered
    assert time.monotonic() - started < PROBE_TIMEOUT + 0.4


def test_the_background_thread_refreshes_until_stopped(servers: list[ThreadingHTTPServer]) -> None:
    server, port = serve_health({"status": "ok", "calls": 1})
    servers.append(server)
    monitor = ClusterMonitor(servers=lambda: [entry(http_port=port)], interval=0.05)

    monitor.start()
    deadline = time.monotonic() + 5
    while monitor.statuses()[0].state is ServerState.UNKNOWN and time.monotonic() < deadline:
        time.sleep(0.02)
    monitor.stop()

    assert monitor.statuses()[0].state is ServerState.UP
