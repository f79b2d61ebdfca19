"""holds_address: the Call Manager's test of whether keepalived gave this host the VIP."""

from __future__ import annotations

import socket

import pytest

from pbx_services.transport.addresses import holds_address


def own_address() -> str | None:
    """An address of this host other than loopback (the one its default route uses), if any."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.77", 9))  # TEST-NET-1: routed by default, nothing is sent
        except OSError:
            return None
        return probe.getsockname()[0]


def test_loopback_and_wildcards_are_held() -> None:
    assert holds_address("127.0.0.1")
    assert holds_address("127.0.0.42")
    assert holds_address("0.0.0.0")
    assert holds_address("::")


def test_an_address_of_another_host_is_not_held() -> None:
    assert not holds_address("198.51.100.200")  # TEST-NET-2: nobody's here


def test_this_hosts_own_address_is_held() -> None:
    address = own_address()
    if address is None:
        pytest.skip("no route at all on this machine: no own address to look at")
    assert holds_address(address)
