"""One worker of an application server: its SIP socket, its RTP ports, the frame's core and the
role's application, on the running event loop.

Worker i answers SIP on `sip_port + i` with its share of the RTP port range. It runs in a
process of its own under the role's daemon (`AppServerSupervisor`), or inside another
daemon's loop (`pbx allinone`). Prompts are paced by a 20 ms tick, scheduled on absolute
times so that it does not drift.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client.registry import Collector

from ..cluster.config import AppServerConfig
from ..rtp.ports import PortAllocator
from ..runtime.control import NOT_FOUND, ControlReply, ControlRequest
from ..runtime.driver import CoreDriver
from ..sip.stack import SipStack
from ..sip.transaction import TransactionLayer
from ..transport.rtp import RtpPorts
from ..transport.sip import SipTransports
from .audio import FRAME_SECONDS, Address, CallAudio
from .core import Application, AppServerCore, Controlled, Labelled

MAX_MESSAGE_SIZE = 65535


class AppServerWorker:
    def __init__(self, *, role: str, name: str, config: AppServerConfig,
                 application: Callable[[], Application], index: int = 0,
                 port_range: tuple[int, int] | None = None,
                 on_stop: Callable[[], None] | None = None) -> None:
        self.role = role
        self.name = name
        self.config = config
        self.index = index
        self.sip_port = config.sip_port + index
        self.port_range = port_range or (config.port_min, config.port_max)
        self.boot_id = secrets.token_hex(8)
        self._application = application
        self._on_stop = on_stop
        self.core: AppServerCore | None = None
        self._driver: CoreDriver | None = None
        self._transports: SipTransports | None = None
        self._rtp: RtpPorts | None = None
        self._ports = PortAllocator(*self.port_range)
        self._tick: asyncio.TimerHandle | None = None
        self._tick_at = 0.0
        self.late_ticks = 0
        """Ticks that ran a whole frame late or more (the worker is overloaded)."""

    async def start(self) -> None:
        config = self.config
        loop = asyncio.get_running_loop()
        rtp = self._rtp = RtpPorts(host=config.rtp_host, on_rtp=self._on_rtp, on_rtcp=_ignore_rtcp,
                                   on_ready=_ignore_ready)
        address = config.public_address or config.sip_host
        stack = SipStack(host=address, port=self.sip_port, max_message_size=MAX_MESSAGE_SIZE,
                         layer=TransactionLayer())
        self.core = AppServerCore(
            stack=stack, application=self._application(),
            sdp_address=config.public_address or config.rtp_host,
            allocate_port=self._ports.allocate, open_rtp=rtp.open, close_rtp=rtp.close,
            release_port=self._ports.release, rtp_timeout=float(config.rtp_timeout),
            max_call_seconds=float(config.max_call_seconds), now=loop.time())
        self._driver = CoreDriver(core=self.core, flush=self._flush)
        self._transports = SipTransports(on_message=self._on_sip, max_message_size=MAX_MESSAGE_SIZE)
        await self._transports.start(config.sip_host, self.sip_port, ("udp",))
        self._tick_at = loop.time()
        self._schedule_tick(loop)
        self._driver.after_core_ran()

    def listening_on(self) -> str:
        return (f"sip:{self.config.sip_host}:{self.sip_port};transport=udp, "
                f"rtp {self.config.rtp_host}:{self.port_range[0]}-{self.port_range[1]}")

    def health(self) -> dict[str, object]:
        return {"status": "ok", "calls": len(self.core.calls) if self.core is not None else 0}

    def collectors(self) -> Sequence[Collector]:
        return ()

    @property
    def control_paths(self) -> tuple[str, ...]:
        application = self.core.application if self.core is not None else None
        return application.control_paths if isinstance(application, Controlled) else ()

    async def control(self, request: ControlRequest) -> ControlReply:
        """A control request for the application (a meeting's mute, kick, lock...), in the loop."""
        application = self.core.application if self.core is not None else None
        if not isinstance(application, Controlled) or self._driver is None:
            return NOT_FOUND
        reply = application.control(request, self._driver.now())
        self._driver.after_core_ran()  # what it started: an announcement, a hang-up
        return reply

    def report(self) -> dict[str, Any]:
        assert self.core is not None
        application = self.core.application
        return {"boot_id": self.boot_id, "calls": len(self.core.calls), "playing": self.core.playing,
                # The role's own numbers (the meeting server's rooms, participants, joins, ...).
                "gauges": getattr(application, "gauges", {}),
                "role_counters": getattr(application, "counters", {}),
                # Per queue (or other thing of the role): (label name, gauges, counters).
                "labelled": application.labelled(self._driver.now()) if isinstance(application, Labelled)
                and self._driver is not None else None,
                "ports_free": self._ports.free, "late_ticks": self.late_ticks, **self.core.counters,
                "messages": dict(self.core.stack.counters), "time": time.time()}

    async def stop(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
        if self.core is not None and self._driver is not None:
            self.core.close(self._driver.now())
            self._flush()
        if self._driver is not None:
            self._driver.close()
        if self._transports is not None:
            self._transports.close()
        if self._rtp is not None:
            self._rtp.close_all()
        if self._on_stop is not None:
            self._on_stop()

    # -- events -------------------------------------------------------------------------------

    def _on_sip(self, data: bytes, source: tuple[str, int], transport: str) -> None:
        assert self.core is not None and self._driver is not None
        self.core.receive(data, source, transport, self._driver.now())
        self._driver.after_core_ran()

    def _on_rtp(self, audio: CallAudio, data: bytes, source: Address) -> None:
        assert self.core is not None and self._driver is not None
        if self.core.receive_rtp(audio, data, source, self._driver.now()):
            self._driver.after_core_ran()

    def _schedule_tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._tick_at += FRAME_SECONDS
        now = loop.time()
        if now - self._tick_at > FRAME_SECONDS:
            self.late_ticks += 1
            self._tick_at = now + FRAME_SECONDS
        self._tick = loop.call_at(self._tick_at, self._on_tick)

    def _on_tick(self) -> None:
        assert self.core is not None and self._driver is not None
        loop = asyncio.get_running_loop()
        if self.core.ticking:
            self.core.tick_media(loop.time())
            self._driver.after_core_ran()
        self._schedule_tick(loop)

    def _flush(self) -> None:
        assert self.core is not None and self._transports is not None and self._rtp is not None
        for transmit in self.core.take_transmits():
            self._transports.send(transmit)
        for port, data, destination in self.core.take_datagrams():
            self._rtp.sendto(port, data, destination)


def _ignore_rtcp(audio: Any, data: bytes, source: Address) -> None:
    """RTCP from the media server: nothing here reads it."""


def _ignore_ready(audio: Any) -> None:
    """The call's sockets are attached: packets flow from now on, nothing to do."""
