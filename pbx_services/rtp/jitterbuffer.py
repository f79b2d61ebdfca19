"""A fixed-depth jitter buffer: RTP packets in, the same packets out in sequence order.

The receiver puts packets as they arrive and gets one per packet interval (its
playout clock). Playout starts once `prefetch` packets are buffered, which is the
delay the buffer adds. Sequence numbers are compared modulo 2**16, so wraparound is
seamless. What `get` returns:

- the next packet in sequence when it is there;
- None once for a packet that is missing while later ones are buffered: it is lost,
  and the caller conceals it (repeats or fades the last frame, or PLC);
- None while buffering (before playout starts, or after the buffer ran dry: with
  silence suppression a sender stops sending, and playout waits for `prefetch` again).

A packet that comes after its turn is dropped as late; a copy of a buffered one as a
duplicate. A new SSRC or a sequence jump of more than MAX_DROPOUT (a restarted
sender) starts the buffer over.
"""

from __future__ import annotations

from dataclasses import dataclass

from .packet import MAX_DROPOUT, MAX_MISORDER, RTP_SEQ_MOD, RtpPacket


def _sequence_offset(sequence_number: int, reference: int) -> int:
    """How far `sequence_number` is after `reference`, modulo 2**16, in -32768..32767."""
    return (sequence_number - reference + RTP_SEQ_MOD // 2) % RTP_SEQ_MOD - RTP_SEQ_MOD // 2


@dataclass
class JitterBufferStats:
    received: int = 0
    """Packets given to `put`."""
    duplicates: int = 0
    """Dropped: the same sequence number was already buffered."""
    late: int = 0
    """Dropped: their turn had passed (played, or given up as lost)."""
    lost: int = 0
    """Sequence numbers that never came in time: a None from `get` each."""
    overflows: int = 0
    """Dropped unplayed: the sender ran more than `capacity_packets` ahead of playout."""
    underruns: int = 0
    """Times playout found the buffer empty and went back to buffering."""
    resets: int = 0
    """Times a new SSRC or a sequence jump started the buffer over."""


class JitterBuffer:
    """Reorders one RTP stream and absorbs its jitter; one `get` per packet interval."""

    def __init__(self, capacity_packets: int = 50, prefetch: int = 3) -> None:
        if not 1 <= prefetch <= capacity_packets:
            raise ValueError(f"prefetch {prefetch} must be between 1 and the capacity {capacity_packets}")
        self.capacity_packets = capacity_packets
        self.prefetch = prefetch
        self.stats = JitterBufferStats()
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None  # the sequence number to play next, once known
        self._playing = False
        self._ssrc: int | None = None

    def __len__(self) -> int:
        return len(self._packets)

    def _reset(self) -> None:
        self.stats.resets += 1
        self._packets.clear()
        self._next = None
        self._playing = False

    def put(self, packet: RtpPacket) -> bool:
        """Buffer a received packet; False when it is dropped (duplicate, late or out of range)."""
        self.stats.received += 1
        if self._ssrc is not None and packet.ssrc != self._ssrc:
            self._reset()
        self._ssrc = packet.ssrc
        sequence_number = packet.sequence_number
        if self._next is not None:
            offset = _sequence_offset(sequence_number, self._next)
            if offset < -MAX_MISORDER or offset >= MAX_DROPOUT:
                self._reset()
            elif offset < 0:
                self.stats.late += 1
                return False
            elif offset >= self.capacity_packets:
                self._skip_to(sequence_number - self.capacity_packets + 1)
        elif len(self._packets) >= self.capacity_packets and sequence_number not in self._packets:
            # Nobody is playing yet (no `get`): hold no more than the capacity.
            self.stats.overflows += 1
            return False
        if sequence_number in self._packets:
            self.stats.duplicates += 1
            return False
        self._packets[sequence_number] = packet
        return True

    def _skip_to(self, sequence_number: int) -> None:
        """Give up on everything before `sequence_number`, to make room for what comes after."""
        assert self._next is not None
        sequence_number %= RTP_SEQ_MOD
        while self._next != sequence_number:
            if self._packets.pop(self._next, None) is None:
                self.stats.lost += 1
            else:
                self.stats.overflows += 1
            self._next = (self._next + 1) % RTP_SEQ_MOD

    def get(self) -> RtpPacket | None:
        """The next packet to play, or None for a lost packet or while buffering (see the module doc)."""
        if not self._playing:
            if len(self._packets) < self.prefetch:
                return None
            self._start()
        assert self._next is not None
        packet = self._packets.pop(self._next, None)
        if packet is None:
            if not self._packets:
                self.stats.underruns += 1
                self._playing = False
                return None
            self.stats.lost += 1
        self._next = (self._next + 1) % RTP_SEQ_MOD
        return packet

    def _start(self) -> None:
        reference = self._next if self._next is not None else next(iter(self._packets))
        earliest = min(self._packets, key=lambda number: _sequence_offset(number, reference))
        if self._next is None:
            self._next = earliest
        else:
            # Back from an underrun: what never came before the earliest buffered packet is lost.
            self._skip_to(earliest)
        self._playing = True
