"""Whether this host holds an address: how a Call Manager knows keepalived gave it the VIP.

The Call Managers bind the VIP whether they hold it or not (`ip_nonlocal_bind`), so binding
tells nothing. Routing does: the kernel answers a datagram socket "connected" to one of the
host's own addresses with that very address as the source (the route is in the local
table); for an address held elsewhere it picks the outgoing interface's address. No packet
is sent.
"""

from __future__ import annotations

import ipaddress
import socket

DISCARD_PORT = 9


def holds_address(host: str) -> bool:
    """Whether `host` (an IP address) is one of this host's addresses now; true for a wildcard."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True  # a name: not a VIP keepalived moves, so served here
    if address.is_unspecified or address.is_loopback:
        return True  # (a loopback address other than 127.0.0.1 routes with 127.0.0.1 as source)
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, DISCARD_PORT))
        except OSError:
            return False  # no route at all: certainly not ours
        return ipaddress.ip_address(probe.getsockname()[0]) == address
