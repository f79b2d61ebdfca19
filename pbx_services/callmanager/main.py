"""`pbx callmanager`: the runtime runs the Call Manager (one in-process, or supervised workers)."""

from __future__ import annotations

from collections.abc import Sequence

from ..cluster.config import PbxConfig
from ..runtime import daemon
from ..runtime.daemon import Component
from ..runtime.descriptors import DescriptorNeed
from ..runtime.file_modes import database_paths
from ..runtime.supervisor import worker_count
from .controller import CallManagerController
from .supervisor import CallManagerSupervisor

ROLE = "callmanager"


def run(config: PbxConfig) -> int:
    """Run the Call Manager in the foreground until SIGINT/SIGTERM; the exit status."""
    return daemon.run(role=ROLE, log_level=config.log.level, http=config.http, auth=config.auth,
                      components=lambda: components(config),
                      private_paths=[*database_paths(config.database.url),
                                     config.callmanager.cdr_journal_dir])


def components(config: PbxConfig, *, colocated: Sequence[DescriptorNeed] = ()) -> list[Component]:
    """The Call Manager's part of a daemon: itself, or the supervisor of its workers.

    `colocated`: the descriptors the daemon's other parts hold (the all-in-one's media and IVR).
    """
    workers = worker_count(config.callmanager.workers)
    if workers == 1:
        return [CallManagerController(config=config, colocated=colocated)]
    return [CallManagerSupervisor(config=config, workers=workers, colocated=colocated)]

