"""`pbx callmanager` with `callmanager.workers` > 1: the worker processes, /health and /metrics.

Each worker is a whole Call Manager (`CallManagerController` with its `WorkerPlace`) on the
shared SIP port; they share registrations, nonce-counts, blocks and calls through the state
store (Redis), which this parent reaches once at start-up to say early when it cannot.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..cluster.config import PbxConfig
from ..cluster.state import StateStore, StateStoreUnavailable, open_state_store
from ..runtime.control import NOT_FOUND, ControlReply, ControlRequest, merge_replies
from ..runtime.daemon import StartError
from ..runtime.descriptors import DescriptorLimitError, DescriptorNeed
from ..runtime.supervisor import WorkerSupervisor, worker_count
from .controller import CallManagerController
from .descriptors import fit_supervisor
from .live_view import CONTROL_PATHS as LIVE_PATHS
from .metrics import sip_tcp_families
from .trunks import merge_trunk_statuses
from .workers import WorkerPlace


def make_worker(config: PbxConfig, index: int) -> CallManagerController:
    """Worker `index` of `pbx callmanager`."""
    place = WorkerPlace(node=socket.gethostname(), index=index,
                        count=worker_count(config.callmanager.workers))
    return CallManagerController(config=config, place=place)


class CallManagerSupervisor:
    name = "Call Manager"
    role = "callmanager"

    def __init__(self, *, config: PbxConfig, workers: int, colocated: Sequence[DescriptorNeed] = ()) -> None:
        self.config = config
        self.colocated = tuple(colocated)
        """Descriptors the other parts of this process hold (the all-in-one's media and IVR)."""
        self.workers = WorkerSupervisor(role="callmanager", config=config, count=workers, factory=make_worker)
        self.state: StateStore | None = None

    async def start(self) -> None:
        config = self.config
        assert config.auth is not None, "load the config with needs_auth"
        try:
            fit_supervisor(config, colocated=self.colocated)
        except DescriptorLimitError as exc:
            raise StartError(str(exc)) from None
        try:
            self.state = open_state_store(config.state.url, nonce_ttl=float(config.auth.nonce_ttl),
                                          timeout=config.state.timeout)
        except StateStoreUnavailable as exc:
            raise StartError(f"state.url: {exc}") from None
        await self.workers.start()

    async def stop(self) -> None:
        await self.workers.stop()
        if self.state is not None:
            self.state.close()

    def listening_on(self) -> str:
        sip = self.config.sip
        where = ", ".join(f"sip:{sip.host}:{sip.port};transport={t}" for t in sip.transports)
        return f"{where} ({len(self.workers.workers)} workers)"

    def health(self) -> dict[str, object]:
        try:
            registered: int | None = self.state.location.binding_count() if self.state is not None else None
        except StateStoreUnavailable:
            registered = None
        workers = [{"worker": w.index, "pid": w.pid, "up": self.workers.up(w), "restarts": w.restarts,
                    "calls": (w.report or {}).get("calls")} for w in self.workers.workers]
        healthy = registered is not None and all(worker["up"] for worker in workers)
        reports = [w.report for w in self.workers.workers if self.workers.up(w) and w.report]
        # Every worker pings every media server: the first one up tells what they see.
        reporting = reports[0] if reports else {}
        return {"status": "ok" if healthy else "degraded",
                "state_store": self.state.description if self.state is not None else None,
                "registered_contacts": registered,
                "active_calls": sum(worker["calls"] or 0 for worker in workers),  # type: ignore[misc]
                "media_endpoints": _endpoints("media_endpoints", reporting, reports),
                "application_endpoints": _endpoints("application_endpoints", reporting, reports),
                # The workers look at the same host: the first one up tells whether it holds the VIP.
                "holds_sip_address": reporting.get("holds_sip_address"),
                "workers": workers}

    def collectors(self) -> Sequence[Collector]:
        return (_WorkersCollector(self),)

    @property
    def control_paths(self) -> tuple[str, ...]:
        return ("trunks", *LIVE_PATHS)

    async def control(self, request: ControlRequest) -> ControlReply:
        """GET /api/trunks: every worker's registrations and probes, merged (a registration is
        held by one worker; every worker probes every trunk)."""
        if request.path[:1] and request.path[0] in LIVE_PATHS:
            # Each worker's calls, joined; the registrations are the same in every worker's answer.
            return merge_replies(await self.workers.ask(request))
        if request.method != "GET" or request.path != ("trunks",):
            return NOT_FOUND
        replies = await self.workers.ask(request)
        bodies = [reply.body for reply in replies if reply.status == 200]
        if not bodies:
            return replies[0] if replies else ControlReply.error(503, "no Call Manager worker is up")
        return ControlReply(200, merge_trunk_statuses(bodies))


class _WorkersCollector(Collector):
    def __init__(self, supervisor: CallManagerSupervisor) -> None:
        self._supervisor = supervisor

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        workers = self._supervisor.workers
        up = GaugeMetricFamily("pbx_callmanager_worker_up", "1 when the worker reported within 3 s",
                               labels=["worker"])
        restarts = CounterMetricFamily("pbx_callmanager_worker_restarts", "Times the worker was restarted",
                                       labels=["worker"])
        messages = CounterMetricFamily("pbx_sip_messages", "SIP messages by what became of them",
                                       labels=["worker", "outcome"])
        forwarded = CounterMetricFamily("pbx_callmanager_forwarded",
                                        "Messages handed between workers (out: to their owner; in: from "
                                        "another; handled_for_absent_worker: the owner was away)",
                                        labels=["worker", "direction"])
        calls = GaugeMetricFamily("pbx_calls_active", "Calls being set up or in progress", labels=["worker"])
        transactions = GaugeMetricFamily("pbx_sip_transactions", "Live SIP transactions", labels=["worker"])
        for worker in workers.workers:
            label = str(worker.index)
            up.add_metric([label], 1 if workers.up(worker) else 0)
            restarts.add_metric([label], worker.restarts)
            report = worker.report
            if report is None:
                continue
            for outcome, count in sorted(report.get("messages", {}).items()):
                messages.add_metric([label, outcome], count)
            for direction, count in sorted(report.get("forwarded", {}).items()):
                forwarded.add_metric([label, direction], count)
            calls.add_metric([label], report.get("calls", 0))
            transactions.add_metric([label], report.get("transactions", 0))
        yield from (up, restarts, messages, forwarded, calls, transactions)
        yield from sip_tcp_families(["worker"], [([str(worker.index)], worker.report["tcp"])
                                                 for worker in workers.workers
                                                 if worker.report is not None and "tcp" in worker.report])
        state = self._supervisor.state
        if state is not None:
            try:
                yield GaugeMetricFamily("pbx_registered_contacts",
                                        "Registration bindings (expired ones go within a second)",
                                        value=state.location.binding_count())
            except StateStoreUnavailable:
                pass


def _endpoints(kind: str, reporting: dict[str, Any], reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The media or application endpoints (`kind`) as `reporting` sees them, each with the calls
    of every worker on it (a worker counts only the calls it holds)."""
    calls: dict[tuple[str, str], int] = {}
    for report in reports:
        for endpoint in report.get(kind, []):
            key = (endpoint["server"], endpoint["address"])
            calls[key] = calls.get(key, 0) + int(endpoint["calls"])
    return [{**endpoint, "calls": calls.get((endpoint["server"], endpoint["address"]), 0)}
            for endpoint in reporting.get(kind, [])]
