"""`pbx media`: argv -> config -> logging -> supervisor (and its worker processes) -> signals."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

import uvloop

from ..cluster.config import PbxConfig
from ..transport.ports import PortInUseError
from .ports import worker_port_ranges
from .supervisor import MediaSupervisor, WorkerStartError, worker_count

log = logging.getLogger("pbx")

ROLE = "media"


def run(config: PbxConfig) -> int:
    """Run the media server in the foreground until SIGINT/SIGTERM; the exit status."""
    logging.basicConfig(
        level=config.log.level, format=f"%(asctime)s {ROLE} %(levelname)s %(name)s: %(message)s"
    )
    media = config.media
    workers = worker_count(config)
    try:
        port_ranges = worker_port_ranges(media.port_min, media.port_max, workers)
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
    return uvloop.run(_serve(config, workers, port_ranges))


async def _serve(config: PbxConfig, workers: int, port_ranges: list[tuple[int, int]]) -> int:
    supervisor = MediaSupervisor(config=config, workers=workers, port_ranges=port_ranges)
    try:
        await supervisor.start()
    except (PortInUseError, WorkerStartError) as exc:
        print(f"pbx {ROLE}: {exc.strerror if isinstance(exc, PortInUseError) else exc}", file=sys.stderr)
        await supervisor.stop()
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    print(f"pbx {ROLE}: media server listening on {supervisor.listening_on()}", flush=True)
    await stopping.wait()
    print(f"pbx {ROLE}: stopping", flush=True)
    await supervisor.stop()
    return 0
