"""What `pbx ivr` (later `pbx queue`, `pbx meeting`) run: a role's workers on the frame, supervised.

A role gives its config section and a worker factory; this checks the section's ports, then
the runtime runs the supervisor of the workers, worker i on `sip_port + i` with an equal
share of the RTP ports.
"""

from __future__ import annotations

import sys

from ..cluster.config import AppServerConfig, PbxConfig
from ..rtp.ports import worker_port_ranges, worker_ports_problem
from ..runtime import daemon
from ..runtime.descriptors import worker_descriptors_problem
from ..runtime.file_modes import database_paths
from ..runtime.supervisor import WorkerFactory, worker_count
from .supervisor import AppServerSupervisor


def run(*, role: str, name: str, config: PbxConfig, section: AppServerConfig, factory: WorkerFactory,
        control_paths: tuple[str, ...] = ()) -> int:
    """Run the role's server in the foreground until SIGINT/SIGTERM; the exit status.

    `control_paths`: the control API's resources its workers' application answers ("meetings")."""
    workers = worker_count(section.workers)
    problem = (worker_ports_problem(section=role, first_port_key="sip_port", first_port=section.sip_port,
                                    workers=workers, port_min=section.port_min, port_max=section.port_max)
               or worker_descriptors_problem(section=role, ports=(section.port_min, section.port_max),
                                             workers=workers, http=config.http, database=True))
    if problem is not None:
        print(f"pbx {role}: config error: {problem}", file=sys.stderr)
        return 1
    return daemon.run(role=role, log_level=config.log.level, http=config.http, auth=config.auth,
                      components=lambda: [AppServerSupervisor(role=role, name=name, config=config,
                                                              section=section, workers=workers,
                                                              factory=factory, control_paths=control_paths)],
                      private_paths=[*database_paths(config.database.url), section.recording_dir])


def worker_port_range(section: AppServerConfig, index: int) -> tuple[int, int]:
    """Worker `index`'s share of the section's RTP ports."""
    return worker_port_ranges(section.port_min, section.port_max, worker_count(section.workers))[index]
