"""`pbx callmanager` and `pbx allinone`: argv -> config -> logging -> controller -> signals."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path

import uvloop

from ..cluster.config import PbxConfig, load_config
from ..media.worker import MediaWorker
from ..transport.ports import PortInUseError
from .controller import CallManagerController

log = logging.getLogger("pbx")

GC_YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation (CPython's default is 700)."""


def run(config: PbxConfig, *, role: str, with_media: bool = False) -> int:
    """Run the Call Manager (and, `with_media`, a media worker in the same process) in the
    foreground until SIGINT/SIGTERM; the exit status."""
    logging.basicConfig(level=config.log.level,
                        format=f"%(asctime)s {role} %(levelname)s %(name)s: %(message)s")
    return uvloop.run(_serve(config, role=role, with_media=with_media))


async def _serve(config: PbxConfig, *, role: str, with_media: bool) -> int:
    controller = CallManagerController(config=config)
    media = MediaWorker(config=config.media) if with_media else None
    try:
        if media is not None:
            await media.start()
        await controller.start()
    except PortInUseError as exc:
        print(f"pbx {role}: {exc.strerror}", file=sys.stderr)
        await controller.stop()
        if media is not None:
            await media.stop()
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    # What start-up built lives as long as the process: keep it out of every collection, and
    # collect the young generation less often, so that a registrar holding 100,000 bindings
    # does not pause for a full traversal every few thousand allocations.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)
    print(f"pbx {role}: Call Manager listening on {controller.listening_on()}", flush=True)
    if media is not None:
        print(f"pbx {role}: media server listening on {media.listening_on()}", flush=True)
    await stopping.wait()
    print(f"pbx {role}: stopping", flush=True)
    await controller.stop()
    if media is not None:
        await media.stop()
    return 0


def load(config_path: Path, *, data_dir: Path | None = None,
         overrides: dict[str, str] | None = None, needs_auth: bool = True) -> PbxConfig:
    """The config file, then the environment, then command-line `overrides` ({"sip.port": "5070"}).

    Overrides go through the same validation as the environment, so a bad value is
    reported with its key like any other.
    """
    env = dict(os.environ)
    for dotted, value in (overrides or {}).items():
        section, key = dotted.split(".", 1)
        env[f"PBX_{section.upper()}__{key.upper()}"] = value
    return load_config(config_path, env=env, data_dir=data_dir, needs_auth=needs_auth)
