"""`pbx allinone`: every role in one daemon, for a laptop, a demo or a test.

A composition of the roles' components on the daemon runtime: a media worker, an IVR worker,
a meeting worker and a queue worker in the same event loop (each unless its `embedded` is off),
then the Call Manager, whose in-process state store the queue worker shares (without Redis),
and the web portal on `portal.port` (unless 0).
It runs on the embedded defaults (SQLite, in-process state) with no other service to start.
"""

from __future__ import annotations

import dataclasses
import sys

from sqlalchemy.orm import Session, sessionmaker

from .callmanager import main as callmanager
from .callmanager.controller import CallManagerController
from .cluster.config import PbxConfig
from .cluster.models import ServerRole
from .cluster.servers import ServerService
from .cluster.state import StateStore
from .cluster.state.agents import DeferredAgents
from .ivr import main as ivr
from .media.worker import MediaWorker
from .meeting import main as meeting
from .portal.cluster_monitor import MAX_PARALLEL_PROBES
from .portal.embedded import PortalComponent
from .queue import main as queue
from .runtime import daemon
from .runtime.daemon import Component
from .runtime.descriptors import DATABASE_NEED, STATE_STORE_NEED, DescriptorNeed, rtp_ports_need
from .runtime.file_modes import database_paths

ROLE = "allinone"
EMBEDDED_MEDIA_SERVER = "allinone-media"
"""Name of the all-in-one's in-process media server in the servers table."""
EMBEDDED_IVR_SERVER = "allinone-ivr"
EMBEDDED_MEETING_SERVER = "allinone-meeting"
EMBEDDED_QUEUE_SERVER = "allinone-queue"
EMBEDDED_CALLMANAGER = "allinone-callmanager"


def run(config: PbxConfig) -> int:
    """Run every role in the foreground until SIGINT/SIGTERM; the exit status."""
    clash = config.embedded_ports_clash()
    if clash is not None:
        print(f"pbx {ROLE}: config error: {clash}", file=sys.stderr)
        return 1
    return daemon.run(role=ROLE, log_level=config.log.level, http=config.http, auth=config.auth,
                      components=lambda: components(config),
                      private_paths=[*database_paths(config.database.url), config.media.recording_dir,
                                     config.ivr.recording_dir, config.meeting.recording_dir,
                                     config.queue.recording_dir,
                                     config.callmanager.cdr_journal_dir])


def components(config: PbxConfig) -> list[Component]:
    parts: list[Component] = []
    if config.media.embedded:
        parts.append(MediaWorker(config=config.media))
    if config.ivr.embedded:
        parts.append(ivr.ivr_worker(config))
    if config.meeting.embedded:
        parts.append(meeting.meeting_worker(config))
    managers = callmanager.components(config, colocated=embedded_descriptors(config))
    if config.queue.embedded:
        manager = managers[0]
        # Without Redis the agents' states live in the Call Manager's own store, which it changes
        # when a queue call it joined ends; in a cluster both reach them in Redis.
        shared = DeferredAgents(lambda: _started_state(manager).agents) \
            if config.state.url is None and isinstance(manager, CallManagerController) else None
        parts.append(queue.queue_worker(config, agents=shared))
    portal = [PortalComponent(config=config)] if config.portal.port else []
    return parts + managers + portal


def _started_state(manager: CallManagerController) -> StateStore:
    assert manager.state is not None, "the Call Manager's store is used once it has started"
    return manager.state


PORTAL_BROWSERS = 32
"""Browser connections the embedded portal is counted for (its threaded server has no cap)."""


def embedded_descriptors(config: PbxConfig) -> list[DescriptorNeed]:
    """What the other parts in the Call Manager's process hold: every port of the media and
    application workers' ranges, the application servers' database pools, and the portal's
    (its pool, its browsers and probes of the servers, and the alert sender's pool and Redis)."""
    needs = []
    if config.media.embedded:
        needs.append(rtp_ports_need("media", (config.media.port_min, config.media.port_max)))
    if config.ivr.embedded:
        needs += [rtp_ports_need("ivr", (config.ivr.port_min, config.ivr.port_max)),
                  dataclasses.replace(DATABASE_NEED, what="the IVR's database pool")]
    if config.meeting.embedded:
        needs += [rtp_ports_need("meeting", (config.meeting.port_min, config.meeting.port_max)),
                  dataclasses.replace(DATABASE_NEED, what="the meeting server's database pool")]
    if config.queue.embedded:
        needs += [rtp_ports_need("queue", (config.queue.port_min, config.queue.port_max)),
                  dataclasses.replace(DATABASE_NEED, what="the queue server's database pool")]
    if config.portal.port:
        needs += [dataclasses.replace(DATABASE_NEED, what="the portal's database pool"),
                  DescriptorNeed("the portal's browsers and probes of the servers",
                                 PORTAL_BROWSERS + MAX_PARALLEL_PROBES, ("portal.port",))]
        if config.alerts.recipients:
            needs += [dataclasses.replace(DATABASE_NEED, what="the alert sender's database pool"),
                      dataclasses.replace(STATE_STORE_NEED, what="the alert sender's Redis")]
    return needs


def list_embedded_servers(sessions: sessionmaker[Session], config: PbxConfig) -> None:
    """The all-in-one's own servers are rows like any other (so they can be watched, and all but
    the Call Manager disabled), kept at their configured addresses; without one, its row goes."""
    servers = ServerService(sessions=sessions)
    listed = {server.name for server in servers.list_servers()}
    sip = config.sip
    embedded = (
        (EMBEDDED_CALLMANAGER, ServerRole.CALLMANAGER, True, sip.node_host or sip.host, sip.port),
        (EMBEDDED_MEDIA_SERVER, ServerRole.MEDIA, config.media.embedded, config.media.control_host,
         config.media.control_port),
        (EMBEDDED_IVR_SERVER, ServerRole.IVR, config.ivr.embedded, config.ivr.sip_host, config.ivr.sip_port),
        (EMBEDDED_MEETING_SERVER, ServerRole.MEETING, config.meeting.embedded, config.meeting.sip_host,
         config.meeting.sip_port),
        (EMBEDDED_QUEUE_SERVER, ServerRole.QUEUE, config.queue.embedded, config.queue.sip_host,
         config.queue.sip_port),
    )
    for name, role, runs, host, port in embedded:
        if runs:
            # Its /health and control API are the all-in-one's.
            servers.ensure_server(name, role=role, host=host, port=port, http_port=config.http.port or None)
        elif name in listed:
            servers.delete_server(name)
