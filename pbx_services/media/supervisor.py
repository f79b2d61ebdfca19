"""`pbx media`'s parent process: starts the workers, restarts one that dies, serves /health and /metrics.

Each worker is a process of its own (spawned: a fresh interpreter with its own uvloop),
with control port `control_port + i` and an equal slice of the RTP port range. The
supervisor asks every worker for `statistics` over the control protocol once a second;
/health and /metrics report the latest answers, and a worker that has not answered for
`WORKER_STALE_AFTER` seconds is down.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Iterator
from multiprocessing.process import BaseProcess
from typing import Any

import uvloop
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..cluster.config import PbxConfig
from ..transport.http import HttpEndpoint
from ..transport.ports import PortInUseError
from ..transport.rtp import ControlSocket
from .control import ControlMessage, ControlProtocolError, request
from .session import Address
from .worker import MediaWorker

log = logging.getLogger(__name__)

POLL_INTERVAL = 1.0
WORKER_STALE_AFTER = 3.0
START_TIMEOUT = 30.0
RESTART_DELAY_MIN = 0.1
RESTART_DELAY_MAX = 30.0
QUICK_DEATH = 5.0
"""A worker that dies sooner than this after its start is restarted after a growing delay."""
STOP_TIMEOUT = 10.0
GC_YOUNG_THRESHOLD = 50_000
"""Allocations between collections of the youngest generation in a worker (CPython's default is 700)."""


class WorkerStartError(Exception):
    """A worker could not start; the message says why, in one line."""


class _WorkerProcess:
    """What the supervisor knows of one worker."""

    def __init__(self, index: int, port_range: tuple[int, int], control_address: Address) -> None:
        self.index = index
        self.port_range = port_range
        self.control_address = control_address
        self.process: BaseProcess | None = None
        self.ready: multiprocessing.connection.Connection | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.restart_delay = RESTART_DELAY_MIN
        self.statistics: dict[str, Any] | None = None
        self.answered_at = float("-inf")


class MediaSupervisor:
    def __init__(self, *, config: PbxConfig, workers: int, port_ranges: list[tuple[int, int]]) -> None:
        self.config = config
        media = config.media
        self._workers = [
            _WorkerProcess(index, port_ranges[index], (media.control_host, media.control_port + index))
            for index in range(workers)
        ]
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._client: ControlSocket | None = None
        self._http: HttpEndpoint | None = None
        self._poller: asyncio.Task[None] | None = None
        self._cookie = 0

    async def start(self) -> None:
        """Start every worker and wait until each listens.

        PortInUseError when the HTTP port is taken, WorkerStartError when a worker cannot start.
        """
        loop = asyncio.get_running_loop()
        self._client = ControlSocket(on_datagram=self._on_reply)
        await self._client.start(self.config.media.control_host, 0)
        if self.config.http.port:
            registry = CollectorRegistry()
            registry.register(_MediaCollector(self))
            self._http = HttpEndpoint(registry=registry, health=self._health)
            await self._http.start(self.config.http.host, self.config.http.port)
        for worker in self._workers:
            self._spawn(worker)
        for worker in self._workers:
            assert worker.ready is not None
            message = await loop.run_in_executor(None, _start_report, worker)
            if message[0] != "ready":
                raise WorkerStartError(message[1])
        self._poller = loop.create_task(self._poll())

    def listening_on(self) -> str:
        media, http = self.config.media, self.config.http
        first, last = media.control_port, media.control_port + len(self._workers) - 1
        where = [
            f"control udp:{media.control_host}:{first}-{last} ({len(self._workers)} workers)",
            f"rtp {media.rtp_host}:{media.port_min}-{media.port_max}",
        ]
        if http.port:
            where.append(f"http://{http.host}:{http.port}/health")
        return ", ".join(where)

    async def stop(self) -> None:
        self._stopping = True
        if self._poller is not None:
            self._poller.cancel()
        loop = asyncio.get_running_loop()
        for worker in self._workers:
            if worker.process is not None:
                loop.remove_reader(worker.process.sentinel)
                if worker.process.is_alive():
                    worker.process.terminate()
        for worker in self._workers:
            if worker.process is not None:
                await loop.run_in_executor(None, worker.process.join, STOP_TIMEOUT)
                if worker.process.is_alive():
                    worker.process.kill()
        if self._client is not None:
            self._client.close()
        if self._http is not None:
            self._http.close()

    def _spawn(self, worker: _WorkerProcess) -> None:
        loop = asyncio.get_running_loop()
        if worker.ready is not None:
            worker.ready.close()
        receiver, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_worker_process,
            name=f"pbx-media-worker-{worker.index}",
            args=(self.config, worker.index, worker.port_range, sender, os.getpid()),
            daemon=True,
        )
        process.start()
        sender.close()
        worker.process, worker.ready, worker.started_at = process, receiver, loop.time()
        loop.add_reader(process.sentinel, self._on_exit, worker)

    def _on_exit(self, worker: _WorkerProcess) -> None:
        loop = asyncio.get_running_loop()
        assert worker.process is not None
        loop.remove_reader(worker.process.sentinel)
        worker.process.join()
        if self._stopping:
            return
        lived = loop.time() - worker.started_at
        delay = worker.restart_delay if lived < QUICK_DEATH else RESTART_DELAY_MIN
        worker.restart_delay = min(delay * 2, RESTART_DELAY_MAX)
        log.warning(
            "media worker %d (pid %s) exited with code %s after %.1f s; restarting in %.1f s",
            worker.index,
            worker.process.pid,
            worker.process.exitcode,
            lived,
            delay,
        )
        worker.restarts += 1
        loop.call_later(delay, self._restart, worker)

    def _restart(self, worker: _WorkerProcess) -> None:
        if not self._stopping:
            self._spawn(worker)

    async def _poll(self) -> None:
        while True:
            for worker in self._workers:
                self._cookie += 1
                message = request(f"stats-{worker.index}-{self._cookie}", "statistics")
                assert self._client is not None
                self._client.sendto(message.serialize(), worker.control_address)
            await asyncio.sleep(POLL_INTERVAL)

    def _on_reply(self, data: bytes, source: Address) -> None:
        try:
            message = ControlMessage.parse(data)
        except ControlProtocolError:
            return
        for worker in self._workers:
            if worker.control_address == source[:2] and message.cookie.startswith(f"stats-{worker.index}-"):
                worker.statistics = message.body
                worker.answered_at = asyncio.get_running_loop().time()

    def worker_up(self, worker: _WorkerProcess) -> bool:
        return asyncio.get_running_loop().time() - worker.answered_at < WORKER_STALE_AFTER

    def _health(self) -> dict[str, object]:
        workers = []
        for worker in self._workers:
            statistics = worker.statistics or {}
            workers.append(
                {
                    "worker": worker.index,
                    "control_port": worker.control_address[1],
                    "pid": worker.process.pid if worker.process is not None else None,
                    "up": self.worker_up(worker),
                    "boot_id": statistics.get("boot_id"),
                    "calls": statistics.get("calls"),
                    "ports_free": statistics.get("ports_free"),
                    "restarts": worker.restarts,
                }
            )
        status = "ok" if all(worker["up"] for worker in workers) else "degraded"
        return {"status": status, "role": "media", "workers": workers}


class _MediaCollector(Collector):
    def __init__(self, supervisor: MediaSupervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = ["worker"]
        up = GaugeMetricFamily("pbx_media_worker_up", "1 when the worker answered within 3 s", labels=labels)
        restarts = CounterMetricFamily(
            "pbx_media_worker_restarts", "Times the worker was restarted", labels=labels
        )
        calls = GaugeMetricFamily("pbx_media_calls", "Calls on the worker", labels=labels)
        ports = GaugeMetricFamily("pbx_media_port_pairs_free", "RTP/RTCP port pairs free", labels=labels)
        relayed = CounterMetricFamily("pbx_media_packets_relayed", "RTP packets relayed", labels=labels)
        transcoded = CounterMetricFamily(
            "pbx_media_packets_transcoded", "RTP packets transcoded", labels=labels
        )
        dropped = CounterMetricFamily(
            "pbx_media_packets_dropped", "RTP/RTCP packets dropped, by reason", labels=["worker", "reason"]
        )
        timed_out = CounterMetricFamily(
            "pbx_media_sessions_timed_out", "Calls freed for want of RTP", labels=labels
        )
        for worker in self._supervisor._workers:
            label = [str(worker.index)]
            up.add_metric(label, 1 if self._supervisor.worker_up(worker) else 0)
            restarts.add_metric(label, worker.restarts)
            statistics = worker.statistics
            if statistics is None:
                continue
            calls.add_metric(label, statistics.get("calls", 0))
            ports.add_metric(label, statistics.get("ports_free", 0))
            relayed.add_metric(label, statistics.get("packets_relayed", 0))
            transcoded.add_metric(label, statistics.get("packets_transcoded", 0))
            for reason, count in sorted(statistics.get("packets_dropped", {}).items()):
                dropped.add_metric([label[0], reason], count)
            timed_out.add_metric(label, statistics.get("sessions_timed_out", 0))
        yield from (up, restarts, calls, ports, relayed, transcoded, dropped, timed_out)


def _start_report(worker: _WorkerProcess) -> tuple[str, str]:
    """What a starting worker says: ("ready", where it listens) or ("error", why not)."""
    assert worker.ready is not None
    try:
        if worker.ready.poll(START_TIMEOUT):
            report: tuple[str, str] = worker.ready.recv()
            return report
    except EOFError:
        return ("error", f"media worker {worker.index} exited while starting (its log says why)")
    return ("error", f"media worker {worker.index} did not start within {START_TIMEOUT:.0f} s")


def run_worker_process(
    config: PbxConfig,
    index: int,
    port_range: tuple[int, int],
    ready: multiprocessing.connection.Connection,
    supervisor_pid: int,
) -> None:
    """A worker process's main: serve until SIGTERM or until the supervisor is gone.

    SIGINT (Ctrl-C in a terminal reaches every process of the group) is left to the
    supervisor, which stops the workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=config.log.level, format=f"%(asctime)s media[{index}] %(levelname)s %(name)s: %(message)s"
    )
    sys.exit(uvloop.run(_serve_worker(config, index, port_range, ready, supervisor_pid)))


async def _serve_worker(
    config: PbxConfig,
    index: int,
    port_range: tuple[int, int],
    ready: multiprocessing.connection.Connection,
    supervisor_pid: int,
) -> int:
    worker = MediaWorker(config=config.media, index=index, port_range=port_range)
    try:
        await worker.start()
    except PortInUseError as exc:
        ready.send(("error", exc.strerror))
        await worker.stop()
        return 1
    ready.send(("ready", worker.listening_on()))
    ready.close()
    # What start-up built lives as long as the process: keep it out of every collection, and
    # collect the young generation less often, as every relayed packet allocates a tuple.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 50, 100)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    while not stopping.is_set() and os.getppid() == supervisor_pid:
        try:
            await asyncio.wait_for(stopping.wait(), POLL_INTERVAL)
        except TimeoutError:
            pass
    await worker.stop()
    return 0


def worker_count(config: PbxConfig) -> int:
    return config.media.workers or os.cpu_count() or 1
