"""A role's worker processes: started, watched, restarted when one dies, reporting once a second.

Each worker is a process of its own (spawned: a fresh interpreter with its own uvloop)
running one `WorkerComponent` made by a module-level factory `(config, index)`. It says
"ready" (or why it could not start) over a pipe, then sends its `report()` every
`REPORT_INTERVAL` seconds; the supervisor keeps the latest one for /health and /metrics,
and a worker that has not reported for `WORKER_STALE_AFTER` seconds is down. A worker that
dies is restarted, after a growing delay when it keeps dying young. The supervisor also asks
the workers control requests (`ask`) over the same channel, each answered with its id.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

import uvloop

from ..cluster.config import PbxConfig
from ..transport.ports import PortInUseError
from .control import NOT_FOUND, ControlledComponent, ControlReply, ControlRequest
from .daemon import Component, StartError, configure_logging, freeze_startup_objects

log = logging.getLogger(__name__)

REPORT_INTERVAL = 1.0
WORKER_STALE_AFTER = 3.0
START_TIMEOUT = 30.0
RESTART_DELAY_MIN = 0.1
RESTART_DELAY_MAX = 30.0
QUICK_DEATH = 5.0
"""A worker that dies sooner than this after its start is restarted after a growing delay."""
STOP_TIMEOUT = 10.0
ASK_TIMEOUT = 2.0
"""Seconds a worker has to answer a control request."""


class WorkerComponent(Component, Protocol):
    def report(self) -> dict[str, Any]:
        """What the supervisor shows of this worker: counters and gauges, JSON-like values."""


WorkerFactory = Callable[[PbxConfig, int], WorkerComponent]
"""(config, worker index) -> the worker; a module-level function, as spawned processes import it."""


class WorkerProcess:
    """What the supervisor knows of one worker."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self.channel: multiprocessing.connection.Connection | None = None
        self.started_at = 0.0
        self.restarts = 0
        self.restart_delay = RESTART_DELAY_MIN
        self.ready: asyncio.Future[str] | None = None
        self.report: dict[str, Any] | None = None
        self.reported_at = float("-inf")

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


class WorkerSupervisor:
    def __init__(self, *, role: str, config: PbxConfig, count: int, factory: WorkerFactory) -> None:
        self.role = role
        self.config = config
        self.factory = factory
        self.workers = [WorkerProcess(index) for index in range(count)]
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        self._asked = 0
        self._answers: dict[int, asyncio.Future[ControlReply]] = {}

    async def ask(self, request: ControlRequest, timeout: float = ASK_TIMEOUT) -> list[ControlReply]:
        """Every live worker's reply to `request`; a 504 for each that did not answer in time."""
        loop = asyncio.get_running_loop()
        asked: dict[int, tuple[int, asyncio.Future[ControlReply]]] = {}
        for worker in self.workers:
            if worker.channel is None or not self.up(worker):
                continue
            self._asked += 1
            future = self._answers[self._asked] = loop.create_future()
            asked[self._asked] = (worker.index, future)
            try:
                worker.channel.send(("control", (self._asked, request)))
            except OSError:
                future.set_result(ControlReply.error(503, f"{self.role} worker {worker.index} is gone"))
        if asked:
            await asyncio.wait([future for _, future in asked.values()], timeout=timeout)
        replies = []
        for ident, (index, future) in asked.items():
            self._answers.pop(ident, None)
            replies.append(future.result() if future.done() else ControlReply.error(
                504, f"{self.role} worker {index} did not answer within {timeout:.0f} s"))
        return replies

    async def start(self) -> None:
        """Start every worker and wait until each is ready; StartError says why one is not."""
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            worker.ready = loop.create_future()
            self._spawn(worker)
        readiness = [worker.ready for worker in self.workers if worker.ready is not None]
        _, pending = await asyncio.wait(readiness, timeout=START_TIMEOUT)
        for worker in self.workers:
            assert worker.ready is not None
            if worker.ready in pending:
                raise StartError(f"{self.role} worker {worker.index} did not start within "
                                 f"{START_TIMEOUT:.0f} s")
        # Every worker's failure is read, so that none is reported as never retrieved.
        errors = [error for worker in self.workers if worker.ready is not None
                  and (error := worker.ready.exception()) is not None]
        if errors:
            raise errors[0]

    async def stop(self) -> None:
        self._stopping = True
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            self._forget_channel(worker)
            if worker.process is not None:
                loop.remove_reader(worker.process.sentinel)
                if worker.process.is_alive():
                    worker.process.terminate()
        for worker in self.workers:
            if worker.process is not None:
                await loop.run_in_executor(None, worker.process.join, STOP_TIMEOUT)
                if worker.process.is_alive():
                    worker.process.kill()

    def up(self, worker: WorkerProcess) -> bool:
        return asyncio.get_running_loop().time() - worker.reported_at < WORKER_STALE_AFTER

    def _spawn(self, worker: WorkerProcess) -> None:
        loop = asyncio.get_running_loop()
        self._forget_channel(worker)
        channel, child_channel = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=run_worker_process, name=f"pbx-{self.role}-worker-{worker.index}",
            args=(self.role, self.factory, self.config, worker.index, child_channel, os.getpid()),
            daemon=True)
        process.start()
        child_channel.close()
        worker.process, worker.channel, worker.started_at = process, channel, loop.time()
        loop.add_reader(channel.fileno(), self._on_channel, worker)
        loop.add_reader(process.sentinel, self._on_exit, worker)

    def _forget_channel(self, worker: WorkerProcess) -> None:
        if worker.channel is not None:
            asyncio.get_running_loop().remove_reader(worker.channel.fileno())
            worker.channel.close()
            worker.channel = None

    def _on_channel(self, worker: WorkerProcess) -> None:
        channel = worker.channel
        assert channel is not None
        try:
            while channel.poll():
                kind, payload = channel.recv()
                if kind == "report":
                    worker.report, worker.reported_at = payload, asyncio.get_running_loop().time()
                elif kind == "ready":
                    log.info("%s worker %d (pid %s) listening on %s",
                             self.role, worker.index, worker.pid, payload)
                    worker.reported_at = asyncio.get_running_loop().time()
                    if worker.ready is not None and not worker.ready.done():
                        worker.ready.set_result(payload)
                elif kind == "reply":
                    ident, reply = payload
                    answer = self._answers.pop(ident, None)
                    if answer is not None and not answer.done():
                        answer.set_result(reply)
                elif kind == "error" and worker.ready is not None and not worker.ready.done():
                    worker.ready.set_exception(StartError(payload))
                elif kind == "error":
                    log.error("%s worker %d could not start again: %s", self.role, worker.index, payload)
        except (EOFError, OSError):
            self._forget_channel(worker)

    def _on_exit(self, worker: WorkerProcess) -> None:
        loop = asyncio.get_running_loop()
        assert worker.process is not None
        loop.remove_reader(worker.process.sentinel)
        worker.process.join()
        if worker.channel is not None:
            self._on_channel(worker)  # its last words: an "error" that explains the exit
        if worker.ready is not None and not worker.ready.done():
            worker.ready.set_exception(StartError(
                f"{self.role} worker {worker.index} exited while starting (its log says why)"))
        if self._stopping:
            return
        lived = loop.time() - worker.started_at
        delay = worker.restart_delay if lived < QUICK_DEATH else RESTART_DELAY_MIN
        worker.restart_delay = min(delay * 2, RESTART_DELAY_MAX)
        log.warning("%s worker %d (pid %s) exited with code %s after %.1f s; restarting in %.1f s",
                    self.role, worker.index, worker.process.pid, worker.process.exitcode, lived, delay)
        worker.restarts += 1
        loop.call_later(delay, self._restart, worker)

    def _restart(self, worker: WorkerProcess) -> None:
        if not self._stopping:
            self._spawn(worker)


def run_worker_process(role: str, factory: WorkerFactory, config: PbxConfig, index: int,
                       channel: multiprocessing.connection.Connection, supervisor_pid: int) -> None:
    """A worker process's main: serve until SIGTERM or until the supervisor is gone.

    SIGINT (Ctrl-C in a terminal reaches every process of the group) is left to the
    supervisor, which stops the workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(f"{role}[{index}]", config.log.level)
    sys.exit(uvloop.run(_serve_worker(factory, config, index, channel, supervisor_pid)))


async def _serve_worker(factory: WorkerFactory, config: PbxConfig, index: int,
                        channel: multiprocessing.connection.Connection, supervisor_pid: int) -> int:
    worker = factory(config, index)
    try:
        await worker.start()
    except (StartError, PortInUseError) as exc:
        channel.send(("error", exc.strerror if isinstance(exc, PortInUseError) else str(exc)))
        await worker.stop()
        return 1
    channel.send(("ready", worker.listening_on()))
    freeze_startup_objects()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_reader(channel.fileno(), _on_supervisor_request, worker, channel)
    while not stopping.is_set() and os.getppid() == supervisor_pid:
        try:
            channel.send(("report", worker.report()))
        except OSError:
            break  # the supervisor is gone
        try:
            await asyncio.wait_for(stopping.wait(), REPORT_INTERVAL)
        except TimeoutError:
            pass
    loop.remove_reader(channel.fileno())
    await worker.stop()
    return 0


def _on_supervisor_request(worker: WorkerComponent, channel: multiprocessing.connection.Connection) -> None:
    try:
        while channel.poll():
            kind, (ident, request) = channel.recv()
            if kind == "control":
                asyncio.ensure_future(_answer(worker, channel, ident, request))
    except (EOFError, OSError):
        asyncio.get_running_loop().remove_reader(channel.fileno())  # the supervisor is gone


async def _answer(worker: WorkerComponent, channel: multiprocessing.connection.Connection, ident: int,
                  request: ControlRequest) -> None:
    reply = await worker.control(request) if isinstance(worker, ControlledComponent) else NOT_FOUND
    try:
        channel.send(("reply", (ident, reply)))
    except OSError:
        pass  # the supervisor is gone


def worker_count(configured: int) -> int:
    """`workers: 0` means one per CPU."""
    return configured or os.cpu_count() or 1
