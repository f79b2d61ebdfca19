"""One media worker: its control socket, its RTP ports, and the media core they drive.

A worker runs in a process of its own under `pbx media` (see `make_worker`), or inside
another daemon's event loop (`pbx allinone`). The runtime's `CoreDriver` reads the
clock and arms the core's timer.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Sequence
from typing import Any

from prometheus_client.registry import Collector

from ..cluster.config import MediaConfig, PbxConfig
from ..rtp.ports import worker_port_ranges
from ..runtime.driver import CoreDriver
from ..runtime.supervisor import worker_count
from ..transport.rtp import ControlSocket, RtpPorts
from .server import MediaServer
from .session import Address, Leg


class MediaWorker:
    """One worker: control on `config.control_port + index`, RTP on the ports of `port_range`."""

    name = "media server"
    role = "media"

    def __init__(
        self, *, config: MediaConfig, index: int = 0, port_range: tuple[int, int] | None = None
    ) -> None:
        self.config = config
        self.index = index
        self.port_range = port_range or (config.port_min, config.port_max)
        self.control_port = config.control_port + index
        self.boot_id = secrets.token_hex(8)
        self.core: MediaServer | None = None
        self._driver: CoreDriver | None = None
        self._control: ControlSocket | None = None
        self._ports: RtpPorts | None = None

    async def start(self) -> None:
        config = self.config
        self._ports = RtpPorts(
            host=config.rtp_host, on_rtp=self._on_rtp, on_rtcp=self._on_rtcp, on_ready=self._on_leg_ready
        )
        now = asyncio.get_running_loop().time()
        core = self.core = MediaServer(
            worker=self.index,
            boot_id=self.boot_id,
            process_id=os.getpid(),
            port_min=self.port_range[0],
            port_max=self.port_range[1],
            sdp_address=config.public_address or config.rtp_host,
            recording_dir=config.recording_dir,
            tone_plan=config.tone_plan,
            rtp_timeout=float(config.rtp_timeout),
            hold_timeout=float(config.hold_timeout),
            bind_ports=self._ports.open,
            unbind_ports=self._ports.close,
            wall_offset=time.time() - now,
            now=now,
        )
        self._driver = CoreDriver(core=core, flush=self._flush)
        self._control = ControlSocket(on_datagram=self._on_control)
        await self._control.start(config.control_host, self.control_port)
        self._driver.after_core_ran()

    def listening_on(self) -> str:
        return (
            f"control udp:{self.config.control_host}:{self.control_port}, "
            f"rtp {self.config.rtp_host}:{self.port_range[0]}-{self.port_range[1]}"
        )

    def health(self) -> dict[str, object]:
        return {"status": "ok", "media_calls": len(self.core.calls) if self.core is not None else 0}

    def collectors(self) -> Sequence[Collector]:
        return ()

    def report(self) -> dict[str, Any]:
        assert self.core is not None
        return self.core.statistics()

    async def stop(self) -> None:
        if self._driver is not None:
            self._driver.close()
        if self.core is not None:
            self.core.close()
            self._flush()
        if self._control is not None:
            self._control.close()
        if self._ports is not None:
            self._ports.close_all()

    def _on_control(self, data: bytes, source: Address) -> None:
        assert self.core is not None and self._driver is not None
        self.core.receive_control(data, source, self._driver.now())
        self._driver.after_core_ran()

    def _on_rtp(self, leg: Leg, data: bytes, source: Address) -> None:
        assert self.core is not None and self._driver is not None
        self.core.receive_rtp(leg, data, source, self._driver.now())
        self._flush()

    def _on_rtcp(self, leg: Leg, data: bytes, source: Address) -> None:
        assert self.core is not None
        self.core.receive_rtcp(leg, data, source)
        self._flush()

    def _on_leg_ready(self, leg: Leg) -> None:
        assert self.core is not None
        self.core.leg_ready(leg)

    def _flush(self) -> None:
        assert self.core is not None and self._ports is not None
        for port, data, destination in self.core.take_rtp_datagrams():
            self._ports.sendto(port, data, destination)
        if self._control is not None:
            for data, destination in self.core.take_control_datagrams():
                self._control.sendto(data, destination)


def make_worker(config: PbxConfig, index: int) -> MediaWorker:
    """Worker `index` of `pbx media`: its control port and its share of the RTP port range."""
    media = config.media
    port_ranges = worker_port_ranges(media.port_min, media.port_max, worker_count(media.workers))
    return MediaWorker(config=media, index=index, port_range=port_ranges[index])
