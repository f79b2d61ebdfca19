"""`pbx media`: the config checked, then the runtime runs the supervisor of the media workers."""

from __future__ import annotations

import sys

from ..cluster.config import PbxConfig
from ..runtime import daemon
from ..runtime.supervisor import worker_count
from .ports import worker_port_ranges
from .supervisor import MediaSupervisor

ROLE = "media"


def run(config: PbxConfig) -> int:
    """Run the media server in the foreground until SIGINT/SIGTERM; the exit status."""
    media = config.media
    workers = worker_count(media.workers)
    try:
        worker_port_ranges(media.port_min, media.port_max, workers)
    except ValueError as exc:
        print(f"pbx {ROLE}: config error: media.port_max: {exc}", file=sys.stderr)
        return 1
    if media.control_port + workers - 1 > 65535:
        print(
            f"pbx {ROLE}: config error: media.control_port: {media.control_port} + {workers} workers "
            "goes past port 65535",
            file=sys.stderr,
        )
        return 1
    return daemon.run(role=ROLE, log_level=config.log.level, http=config.http,
                      components=lambda: [MediaSupervisor(config=config, workers=workers)])
