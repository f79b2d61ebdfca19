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
    assert sum(need.count for need in needs) == 1000 + 500 + 48 + 500 + 48 + 500 + 48
    table = tcp_connection_table(config, serves_http=True, colocated=needs)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert table.limits.max_connections == min(1_000_000, soft - (64 + 48 + 16 + 64 + 2644 + 64))
    assert table.limits.max_per_source == config.sip.tcp_max_connections_per_source
    assert table.limits.first_message_timeout == 10.0
