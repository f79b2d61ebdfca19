"""An application server's parent process: its workers (runtime's WorkerSupervisor), /health, /metrics
and the role's control API.

Each worker reports once a second; /health and /metrics show the latest reports. A control
request (`runtime.control`) goes to every worker and their replies are merged: what it
names (a meeting) lives on one of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client import Metric
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..cluster.config import AppServerConfig, PbxConfig
from ..runtime.control import ControlReply, ControlRequest, merge_replies
from ..runtime.supervisor import WorkerFactory, WorkerSupervisor


class AppServerSupervisor:
    def __init__(self, *, role: str, name: str, config: PbxConfig, section: AppServerConfig, workers: int,
                 factory: WorkerFactory, control_paths: tuple[str, ...] = ()) -> None:
        self.role = role
        self.name = name
        self.section = section
        self.control_paths = control_paths
        self.workers = WorkerSupervisor(role=role, config=config, count=workers, factory=factory)

    async def control(self, request: ControlRequest) -> ControlReply:
        return merge_replies(await self.workers.ask(request))

    async def start(self) -> None:
        await self.workers.start()

    async def stop(self) -> None:
        await self.workers.stop()

    def listening_on(self) -> str:
        section = self.section
        count = len(self.workers.workers)
        return (f"sip udp:{section.sip_host}:{section.sip_port}-{section.sip_port + count - 1} "
                f"({count} workers), rtp {section.rtp_host}:{section.port_min}-{section.port_max}")

    def health(self) -> dict[str, object]:
        workers = []
        for worker in self.workers.workers:
            report = worker.report or {}
            workers.append({"worker": worker.index, "sip_port": self.section.sip_port + worker.index,
                            "pid": worker.pid, "up": self.workers.up(worker), "calls": report.get("calls"),
                            "ports_free": report.get("ports_free"), "restarts": worker.restarts,
                            **report.get("gauges", {})})
        status = "ok" if all(worker["up"] for worker in workers) else "degraded"
        return {"status": status, "calls": sum(w["calls"] or 0 for w in workers),  # type: ignore[misc]
                "workers": workers}

    def collectors(self) -> Sequence[Collector]:
        return (_AppServerCollector(self.role, self.workers),)


class _AppServerCollector(Collector):
    COUNTERS = ("calls_answered", "calls_refused", "transfers", "transfers_failed", "rtp_timeouts", "digits",
                "late_ticks")

    def __init__(self, role: str, workers: WorkerSupervisor) -> None:
        self._role = role
        self._workers = workers

    def collect(self) -> Iterator[Metric]:
        prefix = f"pbx_{self._role}"
        labels = ["worker"]
        up = GaugeMetricFamily(f"{prefix}_worker_up", "1 when the worker reported within 3 s", labels=labels)
        restarts = CounterMetricFamily(f"{prefix}_worker_restarts", "Times the worker was restarted",
                                       labels=labels)
        calls = GaugeMetricFamily(f"{prefix}_calls", "Calls on the worker", labels=labels)
        ports = GaugeMetricFamily(f"{prefix}_rtp_ports_free", "RTP ports free", labels=labels)
        counters = {name: CounterMetricFamily(f"{prefix}_{name}", name.replace("_", " "), labels=labels)
                    for name in self.COUNTERS}
        messages = CounterMetricFamily(f"{prefix}_sip_messages", "SIP messages by what became of them",
                                       labels=[*labels, "outcome"])
        role_gauges: dict[str, GaugeMetricFamily] = {}
        role_counters: dict[str, CounterMetricFamily] = {}
        for worker in self._workers.workers:
            label = [str(worker.index)]
            up.add_metric(label, 1 if self._workers.up(worker) else 0)
            restarts.add_metric(label, worker.restarts)
            report = worker.report
            if report is None:
                continue
            calls.add_metric(label, report.get("calls", 0))
            ports.add_metric(label, report.get("ports_free", 0))
            for name, family in counters.items():
                family.add_metric(label, report.get(name, 0))
            for outcome, count in sorted(report.get("messages", {}).items()):
                messages.add_metric([*label, outcome], count)
            for name, value in report.get("gauges", {}).items():
                role_gauges.setdefault(name, GaugeMetricFamily(f"{prefix}_{name}", name.replace("_", " "),
                                                               labels=labels)).add_metric(label, value)
            for name, value in report.get("role_counters", {}).items():
                role_counters.setdefault(name, CounterMetricFamily(f"{prefix}_{name}", name.replace("_", " "),
                                                                   labels=labels)).add_metric(label, value)
        yield from (up, restarts, calls, ports, *counters.values(), messages, *role_gauges.values(),
                    *role_counters.values(), *self._labelled(prefix))

    def _labelled(self, prefix: str) -> Iterator[Metric]:
        """The application's metrics per thing (`pbx_queue_waiting{worker="0",queue="pbx.local/700"}`)."""
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        for worker in self._workers.workers:
            labelled = (worker.report or {}).get("labelled")
            if not labelled:
                continue
            for label_name, gauges, counters in labelled:
                for kind, values in ((GaugeMetricFamily, gauges), (CounterMetricFamily, counters)):
                    for name, by_label in values.items():
                        family = families.get(name)
                        if family is None:
                            family = families[name] = kind(f"{prefix}_{name}", name.replace("_", " "),
                                                           labels=["worker", label_name])
                        for label, value in by_label.items():
                            family.add_metric([str(worker.index), label], value)
        yield from families.values()
