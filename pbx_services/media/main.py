"""`pbx media`: the config checked, then the runtime runs the supervisor of the media workers."""

from __future__ import annotations

import sys

from ..cluster.config import PbxConfig
from ..rtp.ports import worker_ports_problem
from ..runtime import daemon
from ..runtime.descriptors import worker_descriptors_problem
from ..runtime.supervisor import worker_count
from .supervisor import MediaSupervisor

ROLE = "media"


def run(config: PbxConfig) -> int:
    """Run the media server in the foreground until SIGINT/SIGTERM; the exit status."""
    media = config.media
    workers = worker_count(media.workers)
    problem = (worker_ports_problem(section="media", first_port_key="control_port",
                                    first_port=media.control_port, workers=workers, port_min=media.port_min,
                                    port_max=media.port_max)
               or worker_descriptors_problem(section="media", ports=(media.port_min, media.port_max),
                                             workers=workers, http=config.http, database=False))
    if problem is not None:
        print(f"pbx {ROLE}: config error: {problem}", file=sys.stderr)
        return 1
    return daemon.run(role=ROLE, log_level=config.log.level, http=config.http, auth=config.auth,
                      components=lambda: [MediaSupervisor(config=config, workers=workers)],
                      private_paths=[media.recording_dir])
