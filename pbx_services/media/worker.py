"""Starts and stops one media worker: its control socket, its RTP ports, its timer.

The only media code that reads the clock and arms timers: the sans-IO core gets
`loop.time()` as `now` and says when it next needs to run. A worker runs in a process of
its own under `pbx media`, or inside another daemon's event loop (`pbx allinone`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time

from ..cluster.config import MediaConfig
from ..transport.rtp import ControlSocket, RtpPorts
from .server import MediaServer
from .session import Address, Leg

log = logging.getLogger(__name__)


class MediaWorker:
    """One worker: control on `config.control_port + index`, RTP on the ports of `port_range`."""

    def __init__(
        self, *, config: MediaConfig, index: int = 0, port_range: tuple[int, int] | None = None
    ) -> None:
        self.config = config
        self.index = index
        self.port_range = port_range or (config.port_min, config.port_max)
        self.control_port = config.control_port + index
        self.boot_id = secrets.token_hex(8)
        self.core: MediaServer | None = None
        self._control: ControlSocket | None = None
        self._ports: RtpPorts | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        self._ports = RtpPorts(
            host=config.rtp_host, on_rtp=self._on_rtp, on_rtcp=self._on_rtcp, on_ready=self._on_leg_ready
        )
        self.core = MediaServer(
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
            wall_offset=time.time() - loop.time(),
            now=loop.time(),
        )
        self._control = ControlSocket(on_datagram=self._on_control)
        await self._control.start(config.control_host, self.control_port)
        self._after_core_ran()
        log.info("media worker %d (pid %d) listening on %s", self.index, os.getpid(), self.listening_on())

    def listening_on(self) -> str:
        return (
            f"control udp:{self.config.control_host}:{self.control_port}, "
            f"rtp {self.config.rtp_host}:{self.port_range[0]}-{self.port_range[1]}"
        )

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.core is not None:
            self.core.close()
            self._flush()
        if self._control is not None:
            self._control.close()
        if self._ports is not None:
            self._ports.close_all()

    def _on_control(self, data: bytes, source: Address) -> None:
        assert self.core is not None
        self.core.receive_control(data, source, asyncio.get_running_loop().time())
        self._after_core_ran()

    def _on_rtp(self, leg: Leg, data: bytes, source: Address) -> None:
        assert self.core is not None
        self.core.receive_rtp(leg, data, source, asyncio.get_running_loop().time())
        self._flush()

    def _on_rtcp(self, leg: Leg, data: bytes, source: Address) -> None:
        assert self.core is not None
        self.core.receive_rtcp(leg, data, source)
        self._flush()

    def _on_leg_ready(self, leg: Leg) -> None:
        assert self.core is not None
        self.core.leg_ready(leg)

    def _on_timer(self) -> None:
        assert self.core is not None
        self._timer = self._timer_at = None
        self.core.handle_timer(asyncio.get_running_loop().time())
        self._after_core_ran()

    def _flush(self) -> None:
        assert self.core is not None and self._ports is not None
        for port, data, destination in self.core.take_rtp_datagrams():
            self._ports.sendto(port, data, destination)
        if self._control is not None:
            for data, destination in self.core.take_control_datagrams():
                self._control.sendto(data, destination)

    def _after_core_ran(self) -> None:
        assert self.core is not None
        self._flush()
        deadline = self.core.next_timer()
        if self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)
