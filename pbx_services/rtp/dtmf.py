"""DTMF: RFC 4733 telephone-events over RTP, and in-band detection in audio.

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |     event     |E|R| volume    |          duration             |

`DtmfSender` turns a digit into the RFC 4733 packet sequence (section 2.5.1): the
first packet marked, every packet of the event with the event's RTP timestamp and a
growing duration, the final one sent three times with the E bit. `DtmfReceiver` reads
that sequence back into one digit per event, whatever was lost or repeated.
`GoertzelDetector` finds digits in audio (a gateway or a phone that sends DTMF in-band).
All three are sans-IO: the caller owns the RTP stream, its clock and its sockets.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .errors import RtpParseError
from .tones import DBM0_PEAK

DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 section 3.2: event code i is DTMF_EVENTS[i]."""
TELEPHONE_EVENT_SIZE = 4
END_PACKET_REPEATS = 3  # RFC 4733 2.5.1.4: the final packet is sent three times
MAX_VOLUME = 63
MAX_DURATION = 0xFFFF

ROW_FREQUENCIES = (697.0, 770.0, 852.0, 941.0)
COLUMN_FREQUENCIES = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
"""KEYPAD[row][column]: the digit of a row and a column frequency."""

_EVENT = struct.Struct("!BBH")


def event_code(digit: str) -> int:
    """The RFC 4733 event code of a DTMF digit; ValueError for anything else."""
    code = DTMF_EVENTS.find(digit.upper()) if len(digit) == 1 else -1
    if code < 0:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    return code


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 named-event payload."""

    event: int
    end: bool
    volume: int
    """Power level of the tone, 0..63, as -dBm0."""
    duration: int
    """In RTP timestamp units, since the event's timestamp."""

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Read the event at the start of a payload; RtpParseError if it is too short."""
        if len(payload) < TELEPHONE_EVENT_SIZE:
            raise RtpParseError(f"telephone-event payload is too short: {len(payload)} bytes, 4 needed")
        event, flags, duration = _EVENT.unpack_from(payload)
        # The R bit is reserved: ignored on receipt (RFC 4733 2.3.4), written as 0.
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def serialize(self) -> bytes:
        if not 0 <= self.event <= 255:
            raise ValueError(f"telephone event {self.event} is out of range 0..255")
        if not 0 <= self.volume <= MAX_VOLUME:
            raise ValueError(f"telephone-event volume {self.volume} is out of range 0..63")
        if not 0 <= self.duration <= MAX_DURATION:
            raise ValueError(f"telephone-event duration {self.duration} is out of range 0..65535")
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF digit, or None for the other events (flash, line tones, ...)."""
        return DTMF_EVENTS[self.event] if self.event < len(DTMF_EVENTS) else None


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One telephone-event RTP packet to send: its payload and the header fields that vary."""

    payload: bytes
    marker: bool
    """Set on the first packet of an event only."""
    timestamp: int
    """The event's start: the same in every packet of the event."""
    end: bool


class DtmfSender:
    """The RFC 4733 packets of one digit after another, one packet per `tick` (one packet interval).

    `start` a digit, then call `tick` every `packet_interval_ms`: it returns the packet to
    send with the stream's next sequence number, or None once the event is over.
    """

    def __init__(self, clock_rate: int = 8000, packet_interval_ms: int = 20, volume: int = 10) -> None:
        self.clock_rate = clock_rate
        self.volume = volume
        self._interval = clock_rate * packet_interval_ms // 1000
        self._event = 0
        self._timestamp = 0
        self._total = 0  # the event's duration in timestamp units
        self._elapsed = 0
        self._ends_left = 0
        self._first = False

    @property
    def busy(self) -> bool:
        """Whether an event is still being sent: `start` waits until it is over."""
        return self._first or self._elapsed < self._total or self._ends_left > 0

    def start(self, digit: str, timestamp: int, duration_ms: int = 100) -> None:
        """Begin sending `digit` as an event starting at RTP `timestamp`."""
        code = event_code(digit)
        total = self.clock_rate * duration_ms // 1000
        if not 0 < total <= MAX_DURATION:
            raise ValueError(f"DTMF duration {duration_ms} ms is out of range for one event")
        if self.busy:
            raise ValueError("a DTMF event is already being sent")
        self._event, self._timestamp, self._total = code, timestamp, total
        self._elapsed = 0
        self._ends_left = END_PACKET_REPEATS
        self._first = True

    def tick(self) -> DtmfPacket | None:
        """The packet for this packet interval, or None when no event is being sent."""
        if not self.busy:
            return None
        marker, self._first = self._first, False
        self._elapsed = min(self._elapsed + self._interval, self._total)
        end = self._elapsed >= self._total
        if end:
            self._ends_left -= 1
        payload = TelephoneEvent(self._event, end, self.volume, self._elapsed).serialize()
        return DtmfPacket(payload, marker, self._timestamp, end)


class DtmfReceiver:
    """Digits out of received telephone-event packets: each event once.

    An event is known by its RTP timestamp, so the repeated end packets and every
    update of an event count once, and an event whose first (marked) packets were lost
    still counts on the first packet that arrives. A packet older than the current
    event (reordered) is ignored, and so is the continuation of a long event that the
    sender split into segments (RFC 4733 2.5.1.3: same event, new timestamp, no marker,
    the previous segment not ended). The price: a repeated digit whose end packets and
    next start packets were all lost counts once.
    """

    def __init__(self) -> None:
        self._timestamp: int | None = None
        self._event = -1
        self._ended = True
        self.last_event: TelephoneEvent | None = None
        """The latest packet of the current event: its duration so far, whether it ended."""

    def feed(self, timestamp: int, payload: bytes, marker: bool = False) -> str | None:
        """The digit if this packet starts a new DTMF event, else None; RtpParseError if too short."""
        event = TelephoneEvent.parse(payload)
        previous = self._timestamp
        if previous is not None:
            if timestamp == previous:
                same_event = True
            elif (timestamp - previous) % (1 << 32) >= 1 << 31:
                return None  # a late packet of an earlier event
            else:
                same_event = not marker and not self._ended and event.event == self._event
            if same_event:
                self._timestamp = timestamp
                self._ended = self._ended or event.end
                self.last_event = event
                return None
        self._timestamp, self._event, self._ended, self.last_event = timestamp, event.event, event.end, event
        return event.digit


def generate_dtmf(digit: str, duration_ms: int, sample_rate: int = 8000,
                  level_dbm0: float = -10.0) -> npt.NDArray[np.int16]:
    """The in-band tone of a digit: its row and column frequencies, each at `level_dbm0`."""
    key = DTMF_EVENTS[event_code(digit)]
    row, column = next((r, c) for r, keys in enumerate(KEYPAD) for c, k in enumerate(keys) if k == key)
    times = np.arange(sample_rate * duration_ms // 1000) / sample_rate
    amplitude = DBM0_PEAK * 10 ** (level_dbm0 / 20)
    signal = np.sin(2 * math.pi * ROW_FREQUENCIES[row] * times)
    signal += np.sin(2 * math.pi * COLUMN_FREQUENCIES[column] * times)
    return np.round(signal * amplitude).astype(np.int16)


class GoertzelDetector:
    """In-band DTMF digits in a stream of samples, each reported once.

    The audio is cut in blocks of 12.75 ms (102 samples at 8 kHz, spandsp's choice:
    short enough to see a 40 ms tone in two whole blocks wherever it starts). In each
    block the power at the eight DTMF frequencies is what the Goertzel recursion
    computes, done for all blocks and frequencies in one matrix product. A block holds a
    digit when:

    - its strongest row and column frequencies are both above `min_level_dbm0`;
    - their twist is within limits (row louder by at most 8 dB, column by at most 4 dB);
    - every other row and column frequency is `relative_peak_db` below the strongest one;
    - the second harmonics of both are `harmonic_db` below them (speech has harmonics;
      a DTMF generator does not), measured by a least-squares fit of the two tones and
      their harmonics together, so the leakage of one into another does not count;
    - the two tones make at least `min_tone_fraction` of the block's energy.

    A digit counts once it holds for two blocks in a row: a tone of 40 ms or more covers
    two whole blocks wherever it starts, and one of 20 ms cannot make 85 % of two blocks.
    The same digit counts again only after three blocks without it: a pause of 40 ms
    always gives three, an interruption of 10 ms at most two (ITU-T Q.24 asks that it be
    bridged).
    """

    HITS_TO_DETECT = 2
    MISSES_TO_RELEASE = 3

    def __init__(self, sample_rate: int = 8000, *, min_level_dbm0: float = -30.0,
                 normal_twist_db: float = 8.0, reverse_twist_db: float = 4.0, relative_peak_db: float = 8.0,
                 harmonic_db: float = 10.0, min_tone_fraction: float = 0.85) -> None:
        self.sample_rate = sample_rate
        self.block_size = round(102 * sample_rate / 8000)
        self._min_power = (DBM0_PEAK * 10 ** (min_level_dbm0 / 20)) ** 2
        self._normal_twist = 10 ** (normal_twist_db / 10)
        self._reverse_twist = 10 ** (reverse_twist_db / 10)
        self._relative_peak = 10 ** (relative_peak_db / 10)
        self._harmonic = 10 ** (harmonic_db / 10)
        self._min_tone_fraction = min_tone_fraction
        times = np.arange(self.block_size) / sample_rate
        frequencies = np.array(ROW_FREQUENCIES + COLUMN_FREQUENCIES)
        self._dft = np.exp(-2j * math.pi * np.outer(times, frequencies))  # (block, 8)
        # One least-squares fit per (row, column): cos and sin of row, column, 2*row, 2*column.
        bases = []
        for row in ROW_FREQUENCIES:
            for column in COLUMN_FREQUENCIES:
                angles = 2 * math.pi * np.outer(times, (row, column, 2 * row, 2 * column))
                bases.append(np.column_stack([np.cos(angles), np.sin(angles)]))
        # All 16 fits in one matrix: (block, 16 * 8), each block is fitted 16 ways in one product.
        self._fits = np.linalg.pinv(np.array(bases)).transpose(2, 0, 1).reshape(self.block_size, 128)
        self._pending = np.zeros(0)
        self._candidate: int | None = None
        self._hits = 0
        self._reported: int | None = None
        self._misses = 0

    def _classify(self, blocks: npt.NDArray[np.float64]) -> list[int | None]:
        """The digit (index into KEYPAD rows * 4 + column) each block holds, or None."""
        total = np.sum(blocks ** 2, axis=1)
        # Two tones of at least the minimum level carry at least min_power * block of energy:
        # quieter blocks (most of what a listening IVR hears) skip the products below.
        if not np.any(total >= self._min_power * self.block_size):
            return [None] * len(blocks)
        scale = 4 / self.block_size ** 2  # |X|^2 of a sine of amplitude A is (A * block / 2)^2
        powers = np.abs(blocks @ self._dft) ** 2 * scale
        rows, columns = powers[:, :4], powers[:, 4:]
        best_row, best_column = rows.argmax(axis=1), columns.argmax(axis=1)
        index = np.arange(len(blocks))
        row_power, column_power = rows[index, best_row], columns[index, best_column]
        rows_second = np.sort(rows, axis=1)[:, -2]
        columns_second = np.sort(columns, axis=1)[:, -2]
        combination = best_row * 4 + best_column
        # The DFT's tests first; the least-squares fit (the costly product) only for the blocks
        # that pass them: speech and music rarely do. Its level is checked with 3 dB to spare.
        candidate = np.flatnonzero(
            (rows_second * self._relative_peak <= row_power)
            & (columns_second * self._relative_peak <= column_power)
            & (row_power >= self._min_power / 2) & (column_power >= self._min_power / 2))
        found: list[int | None] = [None] * len(blocks)
        if not len(candidate):
            return found
        picked = combination[candidate]
        coefficients = (blocks[candidate] @ self._fits).reshape(-1, 16, 8)[np.arange(len(candidate)), picked]
        fitted_power = coefficients[:, :4] ** 2 + coefficients[:, 4:] ** 2  # squared amplitudes
        tones = (fitted_power[:, 0] + fitted_power[:, 1]) * self.block_size / 2
        accepted = (
            (fitted_power[:, 0] >= self._min_power) & (fitted_power[:, 1] >= self._min_power)
            & (fitted_power[:, 0] <= fitted_power[:, 1] * self._normal_twist)
            & (fitted_power[:, 1] <= fitted_power[:, 0] * self._reverse_twist)
            & (fitted_power[:, 2] * self._harmonic <= fitted_power[:, 0])
            & (fitted_power[:, 3] * self._harmonic <= fitted_power[:, 1])
            & (tones >= self._min_tone_fraction * total[candidate])
        )
        for position, combo, ok in zip(candidate, picked, accepted, strict=True):
            if ok:
                found[position] = int(combo)
        return found

    def feed(self, samples: npt.NDArray[np.int16]) -> list[str]:
        """The digits that start in these samples (and the ones before them)."""
        pending = np.concatenate([self._pending, samples.astype(np.float64)])
        whole = len(pending) // self.block_size * self.block_size
        self._pending = pending[whole:]
        if not whole:
            return []
        digits = []
        for found in self._classify(pending[:whole].reshape(-1, self.block_size)):
            if found == self._candidate:
                self._hits += 1
            else:
                self._candidate, self._hits = found, 1
            if found != self._reported:
                self._misses += 1
                if self._misses >= self.MISSES_TO_RELEASE:
                    self._reported = None
            else:
                self._misses = 0
            if found is not None and self._hits >= self.HITS_TO_DETECT and found != self._reported:
                self._reported, self._misses = found, 0
                digits.append(KEYPAD[found // 4][found % 4])
        return digits
