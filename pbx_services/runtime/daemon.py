"""A daemon's life, the same for every role: logging, components started in order, /health and
/metrics, signals, graceful stop in reverse order.

A role is a list of `Component`s (the all-in-one is several roles' components in one list),
and the paths it keeps data in, which must be private (`file_modes.check_private`).
Start-up problems a user can fix (a port taken, a worker that cannot start) end the process
with one line on stderr and exit status 1; SIGINT and SIGTERM stop it with status 0.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import importlib.metadata
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import uvloop
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from ..cluster.config import AuthConfig, HttpConfig
from ..transport.http import HttpEndpoint
from ..transport.ports import PortInUseError
from .control import control_token, dispatch
from .file_modes import check_private

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default is 700)."""


class StartError(Exception):
    """A component could not start; the message says why, in one line."""


class Component(Protocol):
    """One running part of a daemon: a Call Manager, a media worker, a supervisor of workers."""

    name: str
    """What it is, for the log and the start-up line ("Call Manager", "media server")."""
    role: str
    """The server role it plays (`ServerRole`'s value, or "portal"): its part of an all-in-one's
    /health is under `roles` by this key."""

    async def start(self) -> None:
        """Listen and serve; raises StartError or PortInUseError when it cannot."""

    async def stop(self) -> None:
        """Stop serving; safe to call on a component whose start failed half-way."""

    def listening_on(self) -> str: ...

    def health(self) -> dict[str, object]:
        """Its part of /health: a "status" ("ok" or anything else) and what an operator reads."""

    def collectors(self) -> Sequence[Collector]:
        """Its Prometheus collectors, for /metrics."""


def configure_logging(role: str, level: str) -> None:
    logging.basicConfig(level=level, format=f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s")


def run(*, role: str, log_level: str, http: HttpConfig, auth: AuthConfig | None,
        components: Callable[[], list[Component]], private_paths: Sequence[Path]) -> int:
    """Run the components in the foreground until SIGINT/SIGTERM; the exit status.

    `components` is called inside the event loop, so that what they build can use it.
    `auth`: its secret gives the control API's token (`runtime.control`); without it the API is off.
    `private_paths`: where the role keeps data (database, recordings), checked at start-up.
    """
    configure_logging(role, log_level)
    for warning in check_private(private_paths):
        log.warning("%s", warning)
    token = control_token(auth.secret.get_secret_value()) if auth is not None else None
    return uvloop.run(_serve(role=role, http=http, control_token=token, components=components))


async def _serve(*, role: str, http: HttpConfig, control_token: str | None,
                 components: Callable[[], list[Component]]) -> int:
    parts = components()
    started: list[Component] = []
    endpoint: HttpEndpoint | None = None
    try:
        for part in parts:
            started.append(part)
            await part.start()
        if http.port:
            registry = _registry(parts)
            endpoint = HttpEndpoint(registry=registry, health=lambda: merged_health(role, parts),
                                    max_connections=http.max_connections,
                                    max_per_source=http.max_connections_per_source,
                                    control=lambda request: dispatch(parts, request),
                                    control_token=control_token)
            registry.register(endpoint.collector())
            await endpoint.start(http.host, http.port)
    except (StartError, PortInUseError) as exc:
        print(f"pbx {role}: {exc.strerror if isinstance(exc, PortInUseError) else exc}", file=sys.stderr)
        for part in reversed(started):
            await part.stop()
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    freeze_startup_objects()
    for part in parts:
        print(f"pbx {role}: {part.name} listening on {part.listening_on()}", flush=True)
    if endpoint is not None:
        print(f"pbx {role}: health and metrics on http://{http.host}:{http.port}/health", flush=True)
    await stopping.wait()
    print(f"pbx {role}: stopping", flush=True)
    if endpoint is not None:
        endpoint.close()
    for part in reversed(parts):
        await part.stop()
    return 0


def freeze_startup_objects() -> None:
    """What start-up built lives as long as the process: keep it out of every collection, and
    collect the young generation less often, so that a registrar holding 100,000 bindings (or
    a relay allocating a tuple per packet) does not pause for a full traversal every few
    thousand allocations."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)


def merged_health(role: str, parts: Sequence[Component]) -> dict[str, object]:
    """One /health for the daemon: every component's fields; "ok" only when each says so.
    A daemon of several roles (the all-in-one) also gives each role's own under `roles`, where
    the fields they share ("calls" of the IVR and of the queue) are not mixed."""
    report: dict[str, object] = {}
    by_role: dict[str, dict[str, object]] = {}
    healthy = True
    for part in parts:
        health = part.health()
        healthy = healthy and health.get("status") == "ok"
        report.update(health)
        by_role[part.role] = health
    if len(by_role) > 1:
        report["roles"] = by_role
    report["status"] = "ok" if healthy else "degraded"
    report["role"] = role
    report["version"] = package_version()
    return report


@functools.cache
def package_version() -> str:
    """The version of pbx-services this daemon runs (shown by the portal's cluster page)."""
    try:
        return importlib.metadata.version("pbx-services")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _registry(parts: Sequence[Component]) -> CollectorRegistry:
    registry = CollectorRegistry()
    for part in parts:
        for collector in part.collectors():
            registry.register(collector)
    return registry
