"""Tests for pbx_services/rtp/ports.py."""

from __future__ import annotations

import pytest

from pbx_services.rtp.ports import PortAllocator, worker_port_ranges


def test_allocator_hands_out_even_ports_until_none_is_left() -> None:
    ports = PortAllocator(20001, 20009)  # an odd start is rounded up; 20009 is RTCP of 20008
    assert ports.capacity == 4
    assert [ports.allocate() for _ in range(4)] == [20002, 20004, 20006, 20008]
    assert ports.allocate() is None
    assert ports.free == 0


def test_a_released_port_goes_to_the_back_of_the_line() -> None:
    ports = PortAllocator(20000, 20007)
    first = ports.allocate()
    assert first == 20000
    ports.release(first)
    assert [ports.allocate() for _ in range(4)] == [20002, 20004, 20006, 20000]


def test_releasing_a_port_not_allocated_is_a_bug() -> None:
    with pytest.raises(ValueError, match="not allocated"):
        PortAllocator(20000, 20007).release(20000)


def test_worker_slices_are_whole_pairs_and_as_equal_as_can_be() -> None:
    assert worker_port_ranges(20000, 20019, 2) == [(20000, 20009), (20010, 20019)]
    assert worker_port_ranges(20000, 20013, 3) == [(20000, 20005), (20006, 20009), (20010, 20013)]
    assert worker_port_ranges(20001, 20010, 1) == [(20002, 20009)]


def test_a_range_too_small_for_the_workers_is_an_error() -> None:
    with pytest.raises(ValueError, match="2 RTP/RTCP pairs, fewer than the 3 workers"):
        worker_port_ranges(20000, 20003, 3)
