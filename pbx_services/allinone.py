"""`pbx allinone`: every role in one daemon, for a laptop, a demo or a test.

A composition of the roles' components on the daemon runtime: a media worker in the same
event loop (unless `media.embedded` is off), then the Call Manager. It runs on the embedded
defaults (SQLite, in-process state) with no other service to start.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from .callmanager import main as callmanager
from .cluster.config import PbxConfig
from .cluster.models import ServerRole
from .cluster.servers import ServerService
from .media.worker import MediaWorker
from .runtime import daemon
from .runtime.daemon import Component

ROLE = "allinone"
EMBEDDED_MEDIA_SERVER = "allinone-media"
"""Name of the all-in-one's in-process media server in the servers table."""


def run(config: PbxConfig) -> int:
    """Run every role in the foreground until SIGINT/SIGTERM; the exit status."""
    return daemon.run(role=ROLE, log_level=config.log.level, http=config.http,
                      components=lambda: components(config))


def components(config: PbxConfig) -> list[Component]:
    parts: list[Component] = []
    if config.media.embedded:
        parts.append(MediaWorker(config=config.media))
    parts += callmanager.components(config)
    return parts


def list_embedded_media_server(sessions: sessionmaker[Session], config: PbxConfig) -> None:
    """The all-in-one's own media server is a row like any other (so it can be watched and
    disabled), kept at its configured address; without it, the row goes."""
    servers = ServerService(sessions=sessions)
    if config.media.embedded:
        servers.ensure_server(EMBEDDED_MEDIA_SERVER, role=ServerRole.MEDIA, host=config.media.control_host,
                              port=config.media.control_port)
    elif any(server.name == EMBEDDED_MEDIA_SERVER for server in servers.list_servers()):
        servers.delete_server(EMBEDDED_MEDIA_SERVER)
