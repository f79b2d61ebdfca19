"""`pbx queue`: the queue server's workers on the application-server frame.

Queues come from the database (`QueueCatalog`); what agents are doing is in the state store
(`state.url`: Redis, shared with the Call Managers and the other queue servers); each worker
runs a `QueueApplication` for the calls the Call Managers send it, and puts its callers' and
agents' events on the cluster's bus (the same Redis) through an `EventOutbox`.
"""

from __future__ import annotations

import asyncio
import platform
import sys
import time

from ..appserver import daemon
from ..appserver.core import Application
from ..appserver.event_outbox import EventOutbox
from ..appserver.sounds import Announcements
from ..appserver.worker import AppServerWorker
from ..cluster.config import PbxConfig
from ..cluster.database import create_engine_for, session_factory
from ..cluster.queues import QueueService
from ..cluster.state import StateStore, StateStoreUnavailable, open_state_store
from ..cluster.state.agents import AgentStore
from ..cluster.state.leases import InMemoryLeases, LeaseStore
from ..runtime.daemon import StartError
from .application import QueueApplication
from .catalog import QueueCatalog

ROLE = "queue"
NAME = "queue server"


def run(config: PbxConfig) -> int:
    """Run the queue server in the foreground until SIGINT/SIGTERM; the exit status."""
    if config.state.url is None:
        print("pbx queue: config error: state.url: a queue server shares its agents' states with the Call "
              "Managers and the other queue servers through Redis (redis://HOST:PORT/DB)", file=sys.stderr)
        return 1
    return daemon.run(role=ROLE, name=NAME, config=config, section=config.queue, factory=make_worker,
                      control_paths=("queues",))


def make_worker(config: PbxConfig, index: int) -> AppServerWorker:
    """Worker `index` of `pbx queue`: its SIP port and its share of the RTP ports."""
    return queue_worker(config, index=index, port_range=daemon.worker_port_range(config.queue, index))


def queue_worker(config: PbxConfig, *, index: int = 0, port_range: tuple[int, int] | None = None,
                 agents: AgentStore | None = None) -> AppServerWorker:
    """A queue worker (also the all-in-one's, in its own loop, given the Call Manager's `agents`:
    the only queue worker there, it holds its queues' leases in its own memory); with a state
    store its events go to the cluster's bus."""
    engine = create_engine_for(config.database.url)
    catalog = QueueCatalog(engine)
    service = QueueService(sessions=session_factory(engine), default_domain="")
    announcements = Announcements()
    opened: list[StateStore] = []
    events = EventOutbox(config.state.url, timeout=config.state.timeout) if config.state.url else None

    def application() -> Application:
        wall_offset = time.time() - asyncio.get_running_loop().time()
        store = agents
        leases: LeaseStore = InMemoryLeases()
        if store is None:
            try:
                opened.append(open_state_store(config.state.url, nonce_ttl=300.0,
                                               timeout=config.state.timeout))
            except StateStoreUnavailable as exc:
                raise StartError(f"state.url: {exc}") from None
            store, leases = opened[0].agents, opened[0].leases
        return QueueApplication(catalog=catalog, agents=store, leases=leases, announcements=announcements,
                                wall_offset=wall_offset, server_name=f"{platform.node()}/{index}",
                                admin=ServiceAdmin(service),
                                publish=events.publish if events is not None else None)

    def stopped() -> None:
        engine.dispose()
        for state in opened:
            state.close()
        if events is not None:
            events.close()

    return AppServerWorker(role=ROLE, name=NAME, config=config.queue, application=application, index=index,
                           port_range=port_range, on_stop=stopped)


class ServiceAdmin:
    """`application.AgentAdmin` on the system of record (a write per feature code or auto-pause)."""

    def __init__(self, service: QueueService) -> None:
        self._service = service

    def log_in(self, domain: str, extension: str, logged_in: bool) -> list[str]:
        return self._service.log_in(extension, logged_in=logged_in, tenant_domain=domain)

    def pause(self, domain: str, extension: str, queue: str | None, paused: bool,
              reason: str | None) -> list[str]:
        return self._service.pause(extension, queue=queue, paused=paused, reason=reason, tenant_domain=domain)
