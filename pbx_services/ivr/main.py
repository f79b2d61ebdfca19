"""`pbx ivr`: the IVR workers on the application-server frame.

Menus and prompts come from the database (`MenuCatalog`); each worker runs an
`IvrApplication` for its calls.
"""

from __future__ import annotations

import asyncio
import time

from ..appserver import daemon
from ..appserver.core import Application
from ..appserver.worker import AppServerWorker
from ..cluster.config import PbxConfig
from ..cluster.database import create_engine_for
from .application import IvrApplication
from .catalog import MenuCatalog

ROLE = "ivr"
NAME = "IVR server"


def run(config: PbxConfig) -> int:
    """Run the IVR server in the foreground until SIGINT/SIGTERM; the exit status."""
    return daemon.run(role=ROLE, name=NAME, config=config, section=config.ivr, factory=make_worker)


def make_worker(config: PbxConfig, index: int) -> AppServerWorker:
    """Worker `index` of `pbx ivr`: its SIP port and its share of the RTP ports."""
    return ivr_worker(config, index=index, port_range=daemon.worker_port_range(config.ivr, index))


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
