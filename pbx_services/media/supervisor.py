"""`pbx media`'s parent process: the workers (runtime's WorkerSupervisor), /health and /metrics.

Worker i answers the control protocol on `control_port + i` with an equal slice of the
RTP port range (`worker.make_worker`); each reports its statistics once a second, and
/health and /metrics show the latest reports.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..cluster.config import PbxConfig
from ..runtime.supervisor import WorkerSupervisor
from .worker import make_worker


class MediaSupervisor:
    name = "media server"
    role = "media"

    def __init__(self, *, config: PbxConfig, workers: int) -> None:
        self.config = config
        self.workers = WorkerSupervisor(role="media", config=config, count=workers, factory=make_worker)

    async def start(self) -> None:
        await self.workers.start()

    async def stop(self) -> None:
        await self.workers.stop()

    def listening_on(self) -> str:
        media = self.config.media
        count = len(self.workers.workers)
        first, last = media.control_port, media.control_port + count - 1
        return (f"control udp:{media.control_host}:{first}-{last} ({count} workers), "
                f"rtp {media.rtp_host}:{media.port_min}-{media.port_max}")

    def health(self) -> dict[str, object]:
        workers = []
        for worker in self.workers.workers:
            statistics = worker.report or {}
            workers.append({
                "worker": worker.index,
                "control_port": self.config.media.control_port + worker.index,
                "pid": worker.pid,
                "up": self.workers.up(worker),
                "boot_id": statistics.get("boot_id"),
                "calls": statistics.get("calls"),
                "ports_free": statistics.get("ports_free"),
                "restarts": worker.restarts,
            })
        status = "ok" if all(worker["up"] for worker in workers) else "degraded"
        return {"status": status, "workers": workers}

    def collectors(self) -> Sequence[Collector]:
        return (_MediaCollector(self.workers),)


class _MediaCollector(Collector):
    def __init__(self, workers: WorkerSupervisor) -> None:
        self._workers = workers

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        labels = ["worker"]
        up = GaugeMetricFamily("pbx_media_worker_up", "1 when the worker reported within 3 s", labels=labels)
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
        for worker in self._workers.workers:
            label = [str(worker.index)]
            up.add_metric(label, 1 if self._workers.up(worker) else 0)
            restarts.add_metric(label, worker.restarts)
            statistics = worker.report
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
