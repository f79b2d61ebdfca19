"""The Call Manager's Prometheus metrics, read from the live core when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from .service import CallManager


class CallManagerCollector(Collector):
    def __init__(self, core: CallManager, now: Callable[[], float]) -> None:
        self._core = core
        self._now = now

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        core = self._core
        messages = CounterMetricFamily("pbx_sip_messages", "SIP messages by what became of them",
                                       labels=["outcome"])
        for outcome, count in sorted(core.stack.counters.items()):
            messages.add_metric([outcome], count)
        yield messages
        yield GaugeMetricFamily("pbx_registered_aors", "Addresses of record with live bindings",
                                value=len(core.location))
        yield GaugeMetricFamily("pbx_registered_contacts", "Live registration bindings",
                                value=core.location.binding_count())
        yield GaugeMetricFamily("pbx_calls_active", "Calls being set up or in progress",
                                value=len(core.b2bua.calls))
        yield GaugeMetricFamily("pbx_sip_transactions", "Live SIP transactions", value=len(core.stack.layer))
        yield GaugeMetricFamily("pbx_auth_blocked_sources", "Source IPs blocked for failed authentication",
                                value=core.limiter.blocked_count(self._now()))
