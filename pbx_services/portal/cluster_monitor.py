"""The servers of the cluster as the portal shows them: state, load, last probe, version.

Each server of the servers table that has an `http_port` is probed with `GET /health` on
it (every daemon serves one: `runtime.daemon`) by a background thread, all servers at once
with a short timeout, so that a dead host costs one timeout per round and pages never wait
for a probe: they read the last results. The state combines the row and the probe:

    enabled,  answers        -> up (degraded when its /health says a worker is not ok)
    enabled,  no answer      -> down
    disabled, calls > 0      -> draining (takes no new calls, its calls go on)
    disabled, otherwise      -> disabled
    never probed / no port   -> unknown (disabled if disabled)

A Call Manager (role callmanager) is never disabled; its /health says whether it holds the
VIP (`holds_sip_address`), shown beside its state. A daemon running several roles (the
all-in-one) answers one /health with each role's part under `roles`: a server's load and
state are its role's part.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.models.base import utcnow
from pbx_services.cluster.servers import ServerEntry

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 1.0
"""Seconds a server has to answer its /health."""
PROBE_INTERVAL = 2.0
"""Seconds between two rounds of probes."""
MAX_PARALLEL_PROBES = 32
LOAD_KEYS = ("calls", "media_calls", "active_calls", "registered_contacts", "rooms", "participants",
             "connections", "tcp_open")
"""Numbers of a /health (or of its workers', summed) shown as the server's load."""


class ServerState(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    DISABLED = "disabled"
    DRAINING = "draining"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Probe:
    """One look at a server's /health."""

    at: datetime
    answered: bool
    health: Mapping[str, Any] = field(default_factory=dict)
    error: str = ""


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    role: str
    address: str
    workers: int
    weight: int
    enabled: bool
    http_port: int | None
    state: ServerState
    load: dict[str, int]
    version: str | None
    last_probe: datetime | None
    error: str
    can_be_disabled: bool = True
    holds_vip: bool | None = None
    """For a Call Manager: whether it holds the VIP (serves the calls); None: not known."""

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "address": self.address, "workers": self.workers,
                "weight": self.weight, "enabled": self.enabled, "http_port": self.http_port,
                "state": self.state.value, "load": self.load, "version": self.version,
                "last_probe": self.last_probe.isoformat() if self.last_probe else None, "error": self.error,
                "can_be_disabled": self.can_be_disabled, "holds_vip": self.holds_vip}


def load_of(health: Mapping[str, Any]) -> dict[str, int]:
    load: dict[str, int] = {}
    for key in LOAD_KEYS:
        value = health.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            load[key] = value
    workers = health.get("workers")
    if isinstance(workers, list):
        for key in ("rooms", "participants"):
            values: list[int] = [worker[key] for worker in workers
                                 if isinstance(worker, dict) and isinstance(worker.get(key), int)]
            if values and key not in load:
                load[key] = sum(values)
    return load


def role_health(health: Mapping[str, Any], role: str) -> Mapping[str, Any]:
    """The part of a /health about `role`: the whole of a one-role daemon's."""
    roles = health.get("roles")
    part = roles.get(role) if isinstance(roles, dict) else None
    return part if isinstance(part, dict) else health


def server_status(server: ServerEntry, probe: Probe | None) -> ServerStatus:
    """What the portal shows of a server, from its row and its last probe (see the module's doc)."""
    health = role_health(probe.health, server.role.value) if probe is not None and probe.answered else {}
    load = load_of(health)
    busy = any(load.get(key, 0) > 0 for key in ("calls", "media_calls", "active_calls"))
    if probe is None or server.http_port is None:
        state = ServerState.UNKNOWN if server.enabled else ServerState.DISABLED
    elif not server.enabled:
        state = ServerState.DRAINING if probe.answered and busy else ServerState.DISABLED
    elif not probe.answered:
        state = ServerState.DOWN
    else:
        state = ServerState.UP if health.get("status") == "ok" else ServerState.DEGRADED
    version = probe.health.get("version") if probe is not None and probe.answered else None
    holds = health.get("holds_sip_address") if server.role is ServerRole.CALLMANAGER else None
    return ServerStatus(name=server.name, role=server.role.value, address=f"{server.host}:{server.port}",
                        workers=server.workers, weight=server.weight, enabled=server.enabled,
                        http_port=server.http_port, state=state, load=load,
                        version=version if isinstance(version, str) else None,
                        last_probe=probe.at if probe is not None else None,
                        error=probe.error if probe is not None else "",
                        can_be_disabled=server.role.can_be_disabled,
                        holds_vip=holds if isinstance(holds, bool) else None)


def probe_health(host: str, port: int, *, timeout: float = PROBE_TIMEOUT,
                 clock: Callable[[], datetime] = utcnow) -> Probe:
    """GET http://host:port/health; a 503 with a JSON body still answered (the daemon is degraded)."""
    url = f"http://{_url_host(host)}:{port}/health"
    at = clock()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310 (http only, our daemons)
            body = reply.read(65536)
    except urllib.error.HTTPError as error:
        body = error.read(65536)
        if not body:
            return Probe(at=at, answered=False, error=f"HTTP {error.code}")
    except (OSError, ValueError) as exc:
        return Probe(at=at, answered=False, error=str(getattr(exc, "reason", exc)))
    try:
        health = json.loads(body)
    except ValueError:
        return Probe(at=at, answered=False, error="/health is not JSON")
    if not isinstance(health, dict):
        return Probe(at=at, answered=False, error="/health is not a JSON object")
    return Probe(at=at, answered=True, health=health)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


Prober = Callable[[ServerEntry], Probe]


def http_prober(server: ServerEntry) -> Probe:
    if server.http_port is None:
        return Probe(at=utcnow(), answered=False, error="no HTTP port known (pbx server add --http-port)")
    return probe_health(server.host, server.http_port)


class ClusterMonitor:
    """The servers' last probes, refreshed every `interval` by a daemon thread started on first use
    (after gunicorn has forked its workers, so each has its own)."""

    def __init__(self, *, servers: Callable[[], list[ServerEntry]], prober: Prober = http_prober,
                 interval: float = PROBE_INTERVAL) -> None:
        self._servers = servers
        self._prober = prober
        self._interval = interval
        self._probes: dict[str, Probe] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="pbx-portal-probes", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=self._interval + PROBE_TIMEOUT + 1)

    def refresh(self) -> None:
        """Probe every server now, all at once."""
        servers = [s for s in self._servers() if s.http_port is not None]
        if not servers:
            return
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_PROBES, len(servers))) as pool:
            probes = list(pool.map(self._prober, servers))
        with self._lock:
            self._probes.update({server.name: probe for server, probe in zip(servers, probes, strict=True)})

    def statuses(self) -> list[ServerStatus]:
        """Every server of the table with its last probe (none yet: unknown); no probing here."""
        servers = self._servers()
        with self._lock:
            probes = dict(self._probes)
        return [server_status(server, probes.get(server.name))
                for server in sorted(servers, key=lambda s: (s.role.value, s.name))]

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.refresh()
            except Exception:  # the database away for a moment: try again next round
                log.exception("probing the servers failed")
            self._stopping.wait(self._interval)
