"""`pbx meeting`: the meeting server's workers on the application-server frame.

Rooms come from the database (`RoomCatalog`); each worker runs a `MeetingApplication` that
holds the meetings of the calls the Call Managers send it and mixes them every 20 ms.
"""

from __future__ import annotations

import asyncio
import platform
import time

from ..appserver import daemon
from ..appserver.core import Application
from ..appserver.event_outbox import EventOutbox
from ..appserver.sounds import Announcements
from ..appserver.worker import AppServerWorker
from ..cluster.config import PbxConfig
from ..cluster.database import create_engine_for
from .application import CONTROL_PATHS, MeetingApplication
from .catalog import RoomCatalog

ROLE = "meeting"
NAME = "meeting server"


def run(config: PbxConfig) -> int:
    """Run the meeting server in the foreground until SIGINT/SIGTERM; the exit status."""
    return daemon.run(role=ROLE, name=NAME, config=config, section=config.meeting, factory=make_worker,
                      control_paths=CONTROL_PATHS)


def make_worker(config: PbxConfig, index: int) -> AppServerWorker:
    """Worker `index` of `pbx meeting`: its SIP port and its share of the RTP ports."""
    return meeting_worker(config, index=index, port_range=daemon.worker_port_range(config.meeting, index))


def meeting_worker(config: PbxConfig, *, index: int = 0,
                   port_range: tuple[int, int] | None = None) -> AppServerWorker:
    """A meeting worker (also the all-in-one's, in its own loop); with a state store its talker
    events go to the cluster's bus."""
    engine = create_engine_for(config.database.url)
    catalog = RoomCatalog(engine)
    announcements = Announcements()
    events = EventOutbox(config.state.url, timeout=config.state.timeout) if config.state.url else None

    def application() -> Application:
        wall_offset = time.time() - asyncio.get_running_loop().time()
        return MeetingApplication(catalog=catalog, announcements=announcements,
                                  recording_dir=config.meeting.recording_dir, wall_offset=wall_offset,
                                  publish=events.publish if events is not None else None,
                                  server_name=platform.node())

    def stopped() -> None:
        engine.dispose()
        if events is not None:
            events.close()

    return AppServerWorker(role=ROLE, name=NAME, config=config.meeting, application=application, index=index,
                           port_range=port_range, on_stop=stopped)
