"""holds_address: the Call Manager's test of whether keepalived gave this host the VIP."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from pbx_services.transport.addresses import holds_address, local_ipv4_addresses, local_ipv6_addresses

# /proc/net/fib_trie of a lab Call Manager holding the VIP 198.18.0.10 as a secondary address
# of eth0 (its own address 198.18.0.12), as Linux 6.1 writes it.
FIB_TRIE_WITH_VIP = """Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 198.18.0.0/24 2 0 2
        +-- 198.18.0.0/28 2 0 2
           |-- 198.18.0.0
              /24 link UNICAST
           |-- 198.18.0.10
              /32 host LOCAL
           |-- 198.18.0.12
              /32 host LOCAL
        |-- 198.18.0.255
           /32 link BROADCAST
Local:
  +-- 0.0.0.0/0 3 0 5
     |-- 198.18.0.10
        /32 host LOCAL
"""

IF_INET6 = """00000000000000000000000000000001 01 80 10 80       lo
fe80000000000000b0c3d0fffe6f5a01 02 40 20 80     eth0
"""


def test_the_vip_held_as_a_secondary_address_is_found_among_the_local_ones() -> None:
    found = local_ipv4_addresses(FIB_TRIE_WITH_VIP)
    assert found == {ipaddress.IPv4Address(a) for a in ("127.0.0.1", "198.18.0.10", "198.18.0.12")}
    without_vip = FIB_TRIE_WITH_VIP.replace("|-- 198.18.0.10", "|-- 198.18.0.11")
    assert ipaddress.IPv4Address("198.18.0.10") not in local_ipv4_addresses(without_vip)


def test_ipv6_addresses_are_read_from_if_inet6() -> None:
    assert local_ipv6_addresses(IF_INET6) == {ipaddress.IPv6Address("::1"),
                                              ipaddress.IPv6Address("fe80::b0c3:d0ff:fe6f:5a01")}


def test_loopback_and_wildcards_are_held() -> None:
    assert holds_address("127.0.0.1")
    assert holds_address("127.0.0.42")
    assert holds_address("0.0.0.0")
    assert holds_address("::")


def test_an_address_of_another_host_is_not_held() -> None:
    assert not holds_address("198.51.100.200")  # TEST-NET-2: nobody's here


def test_this_hosts_own_address_is_held() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.77", 9))  # TEST-NET-1: routed by default, nothing is sent
        except OSError:
            pytest.skip("no route at all on this machine: no own address to look at")
        own = probe.getsockname()[0]
    assert holds_address(own)
