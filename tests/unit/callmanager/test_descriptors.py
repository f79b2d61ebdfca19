"""A Call Manager process's SIP TCP connections: as many as fit beside what the process holds."""

from __future__ import annotations

import resource

from pbx_services.allinone import embedded_descriptors
from pbx_services.callmanager.descriptors import tcp_connection_table
from pbx_services.cluster.config import build_config

SECRET = "0123456789abcdef" * 4


def test_the_call_manager_of_the_allinone_reserves_the_embedded_ports() -> None:
    config = build_config({"auth": {"secret": SECRET}, "sip": {"tcp_max_connections": 1_000_000},
                           "media": {"port_min": 20000, "port_max": 20999},
                           "ivr": {"port_min": 30000, "port_max": 30499},
                           "meeting": {"port_min": 32000, "port_max": 32499},
                           "queue": {"port_min": 34000, "port_max": 34499}}, env={})
    needs = embedded_descriptors(config)
    portal = 48 + 32 + 32  # its database pool, browsers, probes of the servers
    assert sum(need.count for need in needs) == 1000 + 500 + 48 + 500 + 48 + 500 + 48 + portal
    table = tcp_connection_table(config, serves_http=True, colocated=needs)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert table.limits.max_connections == min(1_000_000, soft - (64 + 48 + 16 + 64 + 2644 + portal + 64))
    assert table.limits.max_per_source == config.sip.tcp_max_connections_per_source
    assert table.limits.first_message_timeout == 10.0


def test_the_allinones_portal_and_alert_sender_are_counted_and_no_portal_costs_nothing() -> None:
    base = {"auth": {"secret": SECRET}, "media": {"embedded": False}, "ivr": {"embedded": False},
            "meeting": {"embedded": False}, "queue": {"embedded": False}}
    alerting = build_config({**base, "state": {"url": "redis://127.0.0.1:6379/0"},
                             "smtp": {"host": "127.0.0.1"}, "alerts": {"recipients": ["ops@example.com"]}},
                            env={})
    without_portal = build_config({**base, "portal": {"port": 0}}, env={})

    assert [str(need) for need in embedded_descriptors(alerting)] == [
        "48 for the portal's database pool",
        "64 for the portal's browsers and probes of the servers (portal.port)",
        "48 for the alert sender's database pool",
        "16 for the alert sender's Redis (state.url)"]
    assert embedded_descriptors(without_portal) == []
