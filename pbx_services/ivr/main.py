"""`pbx ivr`: the config checked, then the runtime runs the supervisor of the IVR workers.

Worker i answers SIP on `ivr.sip_port + i` with an equal share of the RTP ports; menus and
prompts come from the database (`MenuCatalog`).
"""

from __future__ import annotations

import asyncio
import sys
import time

from ..appserver.core import Application
from ..appserver.supervisor import AppServerSupervisor
from ..appserver.worker import AppServerWorker
from ..cluster.config import PbxConfig
from ..cluster.database import create_engine_for
from ..media.ports import worker_port_ranges
from ..runtime import daemon
from ..runtime.supervisor import worker_count
from .application import IvrApplication
from .catalog import MenuCatalog

ROLE = "ivr"
NAME = "IVR server"


def run(config: PbxConfig) -> int:
    """Run the IVR server in the foreground until SIGINT/SIGTERM; the exit status."""
    ivr = config.ivr
    workers = worker_count(ivr.workers)
    try:
        worker_port_ranges(ivr.port_min, ivr.port_max, workers)
    except ValueError as exc:
        print(f"pbx {ROLE}: config error: ivr.port_max: {exc}", file=sys.stderr)
        return 1
    if ivr.sip_port + workers - 1 > 65535:
        print(f"pbx {ROLE}: config error: ivr.sip_port: {ivr.sip_port} + {workers} workers goes past "
              "port 65535", file=sys.stderr)
        return 1
    return daemon.run(role=ROLE, log_level=config.log.level, http=config.http,
                      components=lambda: [AppServerSupervisor(role=ROLE, name=NAME, config=config,
                                                              section=ivr, workers=workers,
                                                              factory=make_worker)])


def make_worker(config: PbxConfig, index: int) -> AppServerWorker:
    """Worker `index` of `pbx ivr`: its SIP port and its share of the RTP ports."""
    ivr = config.ivr
    port_ranges = worker_port_ranges(ivr.port_min, ivr.port_max, worker_count(ivr.workers))
    return ivr_worker(config, index=index, port_range=port_ranges[index])


def ivr_worker(config: PbxConfig, *, index: int = 0,
               port_range: tuple[int, int] | None = None) -> AppServerWorker:
    """An IVR worker (also the all-in-one's, in its own loop)."""
    engine = create_engine_for(config.database.url)
    catalog = MenuCatalog(engine)

    def application() -> Application:
        wall_offset = time.time() - asyncio.get_running_loop().time()
        return IvrApplication(catalog=catalog, wall_offset=wall_offset)

    return AppServerWorker(name=NAME, config=config.ivr, application=application, index=index,
                           port_range=port_range, on_stop=engine.dispose)
