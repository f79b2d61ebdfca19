"""The descriptors of a Call Manager process: what it holds besides SIP TCP connections, and
the table of those connections, as many as fit under its limit and no more than configured."""

from __future__ import annotations

from collections.abc import Sequence

from ..cluster.config import PbxConfig
from ..runtime.descriptors import (
    BASE_NEED,
    DATABASE_NEED,
    STATE_STORE_NEED,
    DescriptorNeed,
    fit_descriptors,
    http_need,
)
from ..transport.connections import ConnectionLimits, ConnectionTable
from ..transport.sip import TCP_OUTBOUND_HEADROOM, TcpConnection

OUTBOUND_NEED = DescriptorNeed("SIP TCP connections opened past the cap", TCP_OUTBOUND_HEADROOM)


def tcp_connection_table(config: PbxConfig, *, serves_http: bool,
                         colocated: Sequence[DescriptorNeed]) -> ConnectionTable[TcpConnection]:
    """The SIP TCP connections of a Call Manager process (shared by its SIP addresses).

    `serves_http`: /health is in this process; `colocated`: what the other parts of the
    process hold (the all-in-one's media and IVR workers). Raises DescriptorLimitError.
    """
    sip = config.sip
    needs = [BASE_NEED, DATABASE_NEED, STATE_STORE_NEED, OUTBOUND_NEED, *colocated]
    if serves_http:
        needs.append(http_need(config.http.max_connections))
    cap = fit_descriptors(needs, connections=sip.tcp_max_connections if "tcp" in sip.transports else 0,
                          connections_key="sip.tcp_max_connections")
    return ConnectionTable(ConnectionLimits(
        max_connections=cap, max_per_source=sip.tcp_max_connections_per_source,
        first_message_timeout=sip.tcp_first_message_timeout, idle_timeout=sip.tcp_idle_timeout,
        outbound_headroom=TCP_OUTBOUND_HEADROOM))


def fit_supervisor(config: PbxConfig, *, colocated: Sequence[DescriptorNeed]) -> None:
    """The parent of Call Manager workers: /health, the state store and `colocated` (each worker
    fits its own connections). Raises DescriptorLimitError."""
    needs = [BASE_NEED, STATE_STORE_NEED, *colocated]
    if config.http.port:
        needs.append(http_need(config.http.max_connections))
    fit_descriptors(needs)
