"""The jitter buffer: ordering, loss, duplicates, late packets, wraparound, underruns, restarts."""

import pytest

from pbx_services.rtp.jitterbuffer import JitterBuffer, JitterBufferStats
from pbx_services.rtp.packet import RtpPacket


def packet(sequence_number: int, ssrc: int = 1) -> RtpPacket:
    return RtpPacket(sequence_number=sequence_number % 65536, timestamp=sequence_number * 160 % (1 << 32),
                     ssrc=ssrc, payload=b"\xff" * 160)


def played(buffer: JitterBuffer, ticks: int) -> list[int | None]:
    """What `ticks` calls of `get` give: sequence numbers, None for a gap or while buffering."""
    return [None if (p := buffer.get()) is None else p.sequence_number for _ in range(ticks)]


def test_playout_starts_after_prefetch_packets() -> None:
    buffer = JitterBuffer(prefetch=3)
    buffer.put(packet(10))
    buffer.put(packet(11))
    assert played(buffer, 2) == [None, None]
    buffer.put(packet(12))
    assert len(buffer) == 3
    assert played(buffer, 3) == [10, 11, 12]


def test_reordered_packets_come_out_in_order() -> None:
    buffer = JitterBuffer(prefetch=3)
    for sequence_number in (2, 1, 3, 5, 4):
        buffer.put(packet(sequence_number))
    assert played(buffer, 5) == [1, 2, 3, 4, 5]
    assert buffer.stats == JitterBufferStats(received=5)


def test_a_lost_packet_is_one_none() -> None:
    buffer = JitterBuffer(prefetch=2)
    for sequence_number in (1, 2, 4, 5):
        buffer.put(packet(sequence_number))
    assert played(buffer, 4) == [1, 2, None, 4]
    assert buffer.stats.lost == 1
    buffer.put(packet(3))  # too late now
    assert played(buffer, 1) == [5]
    assert (buffer.stats.late, buffer.stats.received) == (1, 5)


def test_duplicates_are_dropped_and_counted() -> None:
    buffer = JitterBuffer(prefetch=2)
    assert buffer.put(packet(1)) is True
    assert buffer.put(packet(1)) is False
    buffer.put(packet(2))
    assert played(buffer, 2) == [1, 2]
    assert buffer.put(packet(1)) is False  # a copy of one already played is simply late
    assert (buffer.stats.duplicates, buffer.stats.late) == (1, 1)


def test_sequence_wraparound() -> None:
    buffer = JitterBuffer(prefetch=3)
    for sequence_number in (65535, 65534, 0, 1, 2):
        buffer.put(packet(sequence_number))
    assert played(buffer, 5) == [65534, 65535, 0, 1, 2]
    assert buffer.stats.lost == 0


def test_running_dry_goes_back_to_buffering() -> None:
    buffer = JitterBuffer(prefetch=2)
    for sequence_number in (1, 2):
        buffer.put(packet(sequence_number))
    assert played(buffer, 3) == [1, 2, None]
    assert buffer.stats.underruns == 1
    buffer.put(packet(3))
    assert played(buffer, 1) == [None]  # waiting for prefetch again
    buffer.put(packet(4))
    assert played(buffer, 3) == [3, 4, None]
    assert (buffer.stats.underruns, buffer.stats.lost) == (2, 0)


def test_after_an_underrun_what_never_came_is_lost() -> None:
    buffer = JitterBuffer(prefetch=1)
    buffer.put(packet(1))
    assert played(buffer, 2) == [1, None]
    buffer.put(packet(4))
    assert played(buffer, 1) == [4]
    assert buffer.stats.lost == 2
    buffer.put(packet(2))
    assert buffer.stats.late == 1


def test_a_new_ssrc_starts_over() -> None:
    buffer = JitterBuffer(prefetch=2)
    for sequence_number in (100, 101, 102):
        buffer.put(packet(sequence_number))
    assert played(buffer, 1) == [100]
    buffer.put(packet(7, ssrc=2))
    buffer.put(packet(8, ssrc=2))
    assert played(buffer, 2) == [7, 8]
    assert buffer.stats.resets == 1


@pytest.mark.parametrize("jump", [3000, -101])
def test_a_big_sequence_jump_starts_over(jump: int) -> None:
    buffer = JitterBuffer(prefetch=1)
    buffer.put(packet(1000))
    assert played(buffer, 1) == [1000]
    buffer.put(packet(1001 + jump))
    assert played(buffer, 1) == [(1001 + jump) % 65536]
    assert (buffer.stats.resets, buffer.stats.late) == (1, 0)


def test_a_sender_too_far_ahead_pushes_playout_forward() -> None:
    buffer = JitterBuffer(capacity_packets=5, prefetch=2)
    for sequence_number in (1, 2, 3):
        buffer.put(packet(sequence_number))
    assert played(buffer, 1) == [1]
    buffer.put(packet(10))  # 8 ahead of the next to play, the buffer holds 5: 2..5 are given up
    assert (buffer.stats.overflows, buffer.stats.lost) == (2, 2)
    assert played(buffer, 5) == [None, None, None, None, 10]
    assert buffer.stats.lost == 6


def test_the_buffer_holds_at_most_its_capacity_before_playout() -> None:
    buffer = JitterBuffer(capacity_packets=4, prefetch=4)
    assert [buffer.put(packet(sequence_number)) for sequence_number in range(6)] == [True] * 4 + [False] * 2
    assert (len(buffer), buffer.stats.overflows) == (4, 2)
    assert played(buffer, 5) == [0, 1, 2, 3, None]


def test_prefetch_must_fit_the_capacity() -> None:
    with pytest.raises(ValueError, match=r"^prefetch 6 must be between 1 and the capacity 5$"):
        JitterBuffer(capacity_packets=5, prefetch=6)
