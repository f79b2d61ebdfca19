"""Whether this host holds an address: how a Call Manager knows keepalived gave it the VIP.

The Call Managers bind the VIP whether they hold it or not (`ip_nonlocal_bind`), so binding
tells nothing, and the source address the kernel picks toward a local address is the
interface's primary one, not a secondary such as the VIP. The kernel's local routing table
does tell: on Linux, /proc/net/fib_trie lists every IPv4 address of this network namespace
as a "/32 host LOCAL" leaf, and /proc/net/if_inet6 every IPv6 address. Reading them costs
microseconds and sends nothing.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")


def local_ipv4_addresses(fib_trie: str) -> set[ipaddress.IPv4Address]:
    """The addresses /proc/net/fib_trie lists as this host's own ("/32 host LOCAL")."""
    found: set[ipaddress.IPv4Address] = set()
    leaf: str | None = None
    for line in fib_trie.splitlines():
        text = line.strip()
        if text.startswith("|--"):
            leaf = text[3:].strip()
        elif leaf is not None and text.startswith("/32 host LOCAL"):
            found.add(ipaddress.IPv4Address(leaf))
    return found


def local_ipv6_addresses(if_inet6: str) -> set[ipaddress.IPv6Address]:
    """The addresses of /proc/net/if_inet6 (32 hex digits first on each line)."""
    found: set[ipaddress.IPv6Address] = set()
    for line in if_inet6.splitlines():
        fields = line.split()
        if fields and len(fields[0]) == 32:
            found.add(ipaddress.IPv6Address(int(fields[0], 16)))
    return found


def holds_address(host: str) -> bool:
    """Whether `host` (an IP address) is one of this host's addresses now; true for a wildcard,
    a loopback address or a name (no VIP keepalived moves)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    if address.is_unspecified or address.is_loopback:
        return True
    if address.version == 4:
        return address in local_ipv4_addresses(FIB_TRIE.read_text())
    return address in local_ipv6_addresses(IF_INET6.read_text())
