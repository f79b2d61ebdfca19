"""The Call Manager's Prometheus metrics, read from the live core when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ..cluster.state.errors import StateStoreUnavailable
from ..transport.connections import closed_connections_family
from ..transport.sip import TCP_CLOSED
from .service import CallManager

TCP_OPEN = "tcp_connections"
TCP_MAX = "tcp_max_connections"
TRANSPORT_ERRORS = ("tcp_framing_errors", "send_errors")


class CallManagerCollector(Collector):
    def __init__(self, core: CallManager, wall: Callable[[], float]) -> None:
        self._core = core
        self._wall = wall

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        core = self._core
        messages = CounterMetricFamily("pbx_sip_messages", "SIP messages by what became of them",
                                       labels=["outcome"])
        for outcome, count in sorted(core.stack.counters.items()):
            messages.add_metric([outcome], count)
        yield messages
        try:
            yield GaugeMetricFamily("pbx_registered_contacts",
                                    "Registration bindings (expired ones go within a second)",
                                    value=core.location.binding_count())
            yield GaugeMetricFamily("pbx_auth_blocked_sources",
                                    "Source IPs blocked for failed authentication",
                                    value=core.limiter.blocked_count(self._wall()))
        except StateStoreUnavailable:
            pass  # the store is away: what only it knows is left out of this scrape
        yield GaugeMetricFamily("pbx_calls_active", "Calls being set up or in progress",
                                value=len(core.b2bua.calls))
        yield GaugeMetricFamily("pbx_sip_transactions", "Live SIP transactions", value=len(core.stack.layer))
        if core.media is None:
            return
        up = GaugeMetricFamily("pbx_media_endpoint_up", "1 when the media endpoint answers its pings",
                               labels=["server", "address"])
        calls = GaugeMetricFamily("pbx_media_endpoint_calls", "Calls anchored on the media endpoint",
                                  labels=["server", "address"])
        for endpoint in core.media.endpoints.values():
            labels = [endpoint.server, f"{endpoint.address[0]}:{endpoint.address[1]}"]
            up.add_metric(labels, 1 if endpoint.up else 0)
            calls.add_metric(labels, len(endpoint.calls))
        yield up
        yield calls
        control = CounterMetricFamily("pbx_media_control_problems", "Media control datagrams gone wrong",
                                      labels=["problem"])
        for problem, count in sorted(core.media.counters.items()):
            control.add_metric([problem], count)
        yield control


class SipTcpCollector(Collector):
    """The SIP TCP connections of one Call Manager process: its `tcp_report()`."""

    def __init__(self, report: Callable[[], Mapping[str, int]]) -> None:
        self._report = report

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        yield from sip_tcp_families([], [([], self._report())])


def sip_tcp_families(labels: Sequence[str], rows: Sequence[tuple[Sequence[str], Mapping[str, int]]]
                     ) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
    """The SIP transport's metrics from `rows` of (label values, a process's `tcp_report()`)."""
    held = GaugeMetricFamily("pbx_sip_tcp_connections", "SIP TCP connections held now", labels=labels)
    cap = GaugeMetricFamily("pbx_sip_tcp_connections_max", "SIP TCP connections the process may hold: "
                            "sip.tcp_max_connections, less if its descriptor limit has no room",
                            labels=labels)
    errors = CounterMetricFamily("pbx_sip_transport_errors", "TCP streams that lost their framing, and "
                                 "messages that could not be sent", labels=[*labels, "error"])
    for values, report in rows:
        held.add_metric(values, report.get(TCP_OPEN, 0))
        cap.add_metric(values, report.get(TCP_MAX, 0))
        for error in TRANSPORT_ERRORS:
            errors.add_metric([*values, error], report.get(error, 0))
    yield from (held, cap, errors)
    yield closed_connections_family("pbx_sip_tcp_connections_closed", "SIP TCP connections refused or "
                                    "closed by the server, by reason", TCP_CLOSED, labels, rows)
