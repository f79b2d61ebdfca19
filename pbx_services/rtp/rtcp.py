"""RTCP (RFC 3550 section 6): compound packets from bytes and back, and reception statistics.

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |V=2|P|  count  |      PT       |   length (32-bit words - 1)   |

`parse_compound` reads every packet of a datagram: SR, RR, SDES, BYE and APP into
their dataclasses, any other type (RTPFB, PSFB, XR, ...) into `RtcpUnknown` so that it
can be relayed untouched. It checks each packet's version, length and contents but
not the compound rules of RFC 3550 6.1 (SR or RR first, a CNAME), which reduced-size
RTCP (RFC 5506) lifts. Padding is removed while parsing; `serialize` adds it back only
where a packet's contents need it to reach a 32-bit boundary (RtcpApp, RtcpUnknown).

`ReceptionStatistics` keeps what a receiver reports about one source (appendix A.1,
A.3 and A.8), fed with the clock passed in.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import ClassVar

from .errors import RtpParseError
from .packet import MAX_DROPOUT, MAX_MISORDER, RTP_SEQ_MOD

RTCP_VERSION = 2
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204

SDES_END = 0
SDES_CNAME = 1
SDES_NAME = 2
SDES_EMAIL = 3
SDES_PHONE = 4
SDES_LOC = 5
SDES_TOOL = 6
SDES_NOTE = 7
SDES_PRIV = 8

RTCP_HEADER_SIZE = 4
REPORT_BLOCK_SIZE = 24
MAX_COUNT = 31  # the 5-bit count field: report blocks, SDES chunks or BYE sources
NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)

_HEADER = struct.Struct("!BBH")
_REPORT_BLOCK = struct.Struct("!IIIIII")
_SENDER_INFO = struct.Struct("!IQIII")
_SSRC = struct.Struct("!I")
_PACKETS_LOST_MAX = 0x7FFFFF
_PACKETS_LOST_MIN = -0x800000


def _header(count: int, packet_type: int, body: bytes) -> bytes:
    """The common header before `body`, with padding added when the body is not word-aligned."""
    if not 0 <= count <= MAX_COUNT:
        raise ValueError(f"RTCP count {count} is out of range 0..31")
    first = (RTCP_VERSION << 6) | count
    if len(body) % 4:
        padding_size = 4 - len(body) % 4
        body += bytes(padding_size - 1) + bytes((padding_size,))
        first |= 0x20
    return _HEADER.pack(first, packet_type, len(body) // 4) + body


@dataclass(frozen=True, slots=True)
class RtcpReportBlock:
    """What a receiver tells about one source (RFC 3550 6.4.1)."""

    ssrc: int
    fraction_lost: int
    """Lost since the previous report, in 1/256 (0..255)."""
    packets_lost: int
    """Cumulative, signed 24 bits: duplicates can make it negative."""
    highest_sequence: int
    """Extended highest sequence number received: cycles << 16 | sequence number."""
    jitter: int
    """Interarrival jitter in timestamp units."""
    lsr: int
    """Middle 32 bits of the NTP timestamp of the last SR received from the source; 0 if none."""
    dlsr: int
    """Delay since that SR, in 1/65536 s; 0 if none."""

    @classmethod
    def parse(cls, data: bytes, offset: int = 0) -> RtcpReportBlock:
        ssrc, lost_word, highest_sequence, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, offset)
        packets_lost = lost_word & 0xFFFFFF
        if packets_lost & 0x800000:
            packets_lost -= 0x1000000
        return cls(ssrc, lost_word >> 24, packets_lost, highest_sequence, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        if not 0 <= self.fraction_lost <= 255:
            raise ValueError(f"fraction lost {self.fraction_lost} is out of range 0..255")
        if not _PACKETS_LOST_MIN <= self.packets_lost <= _PACKETS_LOST_MAX:
            raise ValueError(f"packets lost {self.packets_lost} does not fit in 24 signed bits")
        lost_word = (self.fraction_lost << 24) | (self.packets_lost & 0xFFFFFF)
        return _REPORT_BLOCK.pack(self.ssrc, lost_word, self.highest_sequence, self.jitter, self.lsr,
                                  self.dlsr)


def _parse_report_blocks(name: str, count: int, body: bytes,
                         offset: int) -> tuple[list[RtcpReportBlock], int]:
    end = offset + count * REPORT_BLOCK_SIZE
    if end > len(body):
        raise RtpParseError(f"RTCP {name} is too short for {count} report blocks")
    reports = [RtcpReportBlock.parse(body, at) for at in range(offset, end, REPORT_BLOCK_SIZE)]
    return reports, end


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """SR (RFC 3550 6.4.1): a sender's clocks and counts, and its reception reports."""

    PACKET_TYPE: ClassVar[int] = RTCP_SR

    ssrc: int
    ntp_timestamp: int
    """64-bit NTP time: seconds since 1900 in the high 32 bits, the fraction in the low 32."""
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: list[RtcpReportBlock] = field(default_factory=list)
    extension: bytes = b""
    """Profile-specific extension after the report blocks, kept as it came."""

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpSenderReport:
        if len(body) < _SENDER_INFO.size:
            raise RtpParseError(f"RTCP SR is too short: {len(body)} bytes after the header, 24 needed")
        ssrc, ntp_timestamp, rtp_timestamp, packet_count, octet_count = _SENDER_INFO.unpack_from(body)
        reports, end = _parse_report_blocks("SR", count, body, _SENDER_INFO.size)
        return cls(ssrc, ntp_timestamp, rtp_timestamp, packet_count, octet_count, reports, body[end:])

    def serialize(self) -> bytes:
        body = _SENDER_INFO.pack(self.ssrc, self.ntp_timestamp, self.rtp_timestamp, self.packet_count,
                                 self.octet_count)
        body += b"".join(report.serialize() for report in self.reports) + self.extension
        return _header(len(self.reports), RTCP_SR, body)


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport:
    """RR (RFC 3550 6.4.2): the reception reports of a participant that does not send."""

    PACKET_TYPE: ClassVar[int] = RTCP_RR

    ssrc: int
    reports: list[RtcpReportBlock] = field(default_factory=list)
    extension: bytes = b""
    """Profile-specific extension after the report blocks, kept as it came."""

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpReceiverReport:
        if len(body) < 4:
            raise RtpParseError(f"RTCP RR is too short: {len(body)} bytes after the header, 4 needed")
        reports, end = _parse_report_blocks("RR", count, body, 4)
        return cls(_SSRC.unpack_from(body)[0], reports, body[end:])

    def serialize(self) -> bytes:
        body = _SSRC.pack(self.ssrc) + b"".join(report.serialize() for report in self.reports)
        return _header(len(self.reports), RTCP_RR, body + self.extension)


SdesItem = tuple[int, bytes]
"""(item type such as SDES_CNAME, value)."""
SdesChunk = tuple[int, list[SdesItem]]
"""(SSRC or CSRC, its items)."""


@dataclass(frozen=True, slots=True)
class RtcpSdes:
    """SDES (RFC 3550 6.5): items (CNAME, NAME, TOOL, ...) describing each source."""

    PACKET_TYPE: ClassVar[int] = RTCP_SDES

    chunks: list[SdesChunk] = field(default_factory=list)

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpSdes:
        chunks: list[SdesChunk] = []
        offset = 0
        for _ in range(count):
            if offset + 4 > len(body):
                raise RtpParseError("RTCP SDES chunk is truncated")
            ssrc = _SSRC.unpack_from(body, offset)[0]
            offset += 4
            items: list[SdesItem] = []
            while True:
                if offset >= len(body):
                    raise RtpParseError("RTCP SDES chunk has no end item")
                item_type = body[offset]
                if item_type == SDES_END:
                    # The list ends with one null octet, then nulls up to the next word boundary.
                    offset = (offset + 4) & ~3
                    break
                if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                    raise RtpParseError(f"RTCP SDES item {item_type} is truncated")
                length = body[offset + 1]
                items.append((item_type, body[offset + 2:offset + 2 + length]))
                offset += 2 + length
            chunks.append((ssrc, items))
        return cls(chunks)

    def serialize(self) -> bytes:
        parts = []
        for ssrc, items in self.chunks:
            chunk = _SSRC.pack(ssrc)
            for item_type, value in items:
                if not 1 <= item_type <= 255 or len(value) > 255:
                    raise ValueError(f"bad SDES item {item_type}: {len(value)} bytes")
                chunk += bytes((item_type, len(value))) + value
            # At least one null octet ends the items; more pad the chunk to a word boundary.
            parts.append(chunk + bytes(4 - len(chunk) % 4))
        return _header(len(self.chunks), RTCP_SDES, b"".join(parts))

    def cname(self, ssrc: int) -> bytes | None:
        """The CNAME of a source, if this packet has one."""
        for chunk_ssrc, items in self.chunks:
            if chunk_ssrc == ssrc:
                for item_type, value in items:
                    if item_type == SDES_CNAME:
                        return value
        return None


@dataclass(frozen=True, slots=True)
class RtcpBye:
    """BYE (RFC 3550 6.6): the sources are leaving; `reason` is UTF-8 text, b"" for none."""

    PACKET_TYPE: ClassVar[int] = RTCP_BYE

    sources: list[int] = field(default_factory=list)
    reason: bytes = b""

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpBye:
        end = 4 * count
        if end > len(body):
            raise RtpParseError(f"RTCP BYE is too short for {count} sources")
        sources = list(struct.unpack_from(f"!{count}I", body))
        reason = b""
        if end < len(body):
            length = body[end]
            if end + 1 + length > len(body):
                raise RtpParseError(f"RTCP BYE reason is truncated: {length} bytes announced, "
                                    f"{len(body) - end - 1} left")
            reason = body[end + 1:end + 1 + length]
        return cls(sources, reason)

    def serialize(self) -> bytes:
        body = struct.pack(f"!{len(self.sources)}I", *self.sources)
        if self.reason:
            if len(self.reason) > 255:
                raise ValueError(f"BYE reason is {len(self.reason)} bytes, at most 255 fit")
            reason = bytes((len(self.reason),)) + self.reason
            body += reason + bytes(-len(reason) % 4)
        return _header(len(self.sources), RTCP_BYE, body)


@dataclass(frozen=True, slots=True)
class RtcpApp:
    """APP (RFC 3550 6.7): application-defined, named by four ASCII characters."""

    PACKET_TYPE: ClassVar[int] = RTCP_APP

    subtype: int
    ssrc: int
    name: bytes
    data: bytes = b""

    @classmethod
    def _parse(cls, count: int, body: bytes) -> RtcpApp:
        if len(body) < 8:
            raise RtpParseError(f"RTCP APP is too short: {len(body)} bytes after the header, 8 needed")
        return cls(count, _SSRC.unpack_from(body)[0], body[4:8], body[8:])

    def serialize(self) -> bytes:
        if len(self.name) != 4:
            raise ValueError(f"an RTCP APP name is 4 bytes, not {len(self.name)}")
        return _header(self.subtype, RTCP_APP, _SSRC.pack(self.ssrc) + self.name + self.data)


@dataclass(frozen=True, slots=True)
class RtcpUnknown:
    """Any other packet type (RTPFB 205, PSFB 206, XR 207, ...), kept whole to be relayed."""

    packet_type: int
    data: bytes
    """The packet after its 4-byte header, without padding."""
    count: int = 0
    """The header's 5-bit count (or feedback message type) field."""

    def serialize(self) -> bytes:
        return _header(self.count, self.packet_type, self.data)


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpApp | RtcpUnknown

_PARSERS: dict[int, type[RtcpSenderReport | RtcpReceiverReport | RtcpSdes | RtcpBye | RtcpApp]] = {
    RTCP_SR: RtcpSenderReport, RTCP_RR: RtcpReceiverReport, RTCP_SDES: RtcpSdes, RTCP_BYE: RtcpBye,
    RTCP_APP: RtcpApp,
}


def parse_compound(data: bytes) -> list[RtcpPacket]:
    """Every RTCP packet of a datagram, in order; raises RtpParseError saying what is wrong."""
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < len(data) or not packets:
        if len(data) - offset < RTCP_HEADER_SIZE:
            raise RtpParseError(
                f"RTCP packet is too short: {len(data) - offset} bytes, the header needs 4")
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        if first >> 6 != RTCP_VERSION:
            raise RtpParseError(f"RTCP packet has version {first >> 6}, not 2")
        end = offset + RTCP_HEADER_SIZE + 4 * words
        if end > len(data):
            raise RtpParseError(
                f"RTCP packet is truncated: its length says {4 * words + 4} bytes, {len(data) - offset} left")
        body = bytes(data[offset + RTCP_HEADER_SIZE:end])
        if first & 0x20:
            padding_size = body[-1] if body else 0
            if padding_size == 0 or padding_size > len(body):
                raise RtpParseError(f"RTCP packet has bad padding length {padding_size} "
                                    f"for {len(body)} bytes after the header")
            body = body[:-padding_size]
        count = first & 0x1F
        parser = _PARSERS.get(packet_type)
        packets.append(parser._parse(count, body) if parser else RtcpUnknown(packet_type, body, count))
        offset = end
    return packets


def serialize_compound(packets: list[RtcpPacket]) -> bytes:
    """A compound packet: the packets one after the other (RFC 3550 6.1)."""
    return b"".join(packet.serialize() for packet in packets)


def ntp_from_unix(unix_time: float) -> int:
    """The 64-bit NTP timestamp of a Unix time in seconds, for an SR."""
    return round((unix_time + NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


def ntp_short(ntp_timestamp: int) -> int:
    """The middle 32 bits of an NTP timestamp: an SR's id in the LSR field of a report block."""
    return (ntp_timestamp >> 16) & 0xFFFF_FFFF


def round_trip_time(report: RtcpReportBlock, arrival_ntp: int) -> float | None:
    """Seconds of round trip from a report block on its arrival (RFC 3550 6.4.1); None without LSR."""
    if report.lsr == 0:
        return None
    units = (ntp_short(arrival_ntp) - report.lsr - report.dlsr) & 0xFFFF_FFFF
    return units / 65536 if units < 0x8000_0000 else 0.0


class ReceptionStatistics:
    """What the receiver of one source reports about it (RFC 3550 appendix A.1, A.3 and A.8).

    Sans-IO: `update` gets each packet's sequence number and timestamp and its arrival
    time, in the source's timestamp units, from the caller's clock. The source is known
    from signalling, so it is valid from its first packet (no probation); a jump of more
    than MAX_DROPOUT is taken as a restart once a second packet follows it in sequence.
    """

    def __init__(self, ssrc: int = 0) -> None:
        self.ssrc = ssrc
        self.received = 0
        """Packets counted, duplicates included (so `lost` can go negative, as the RFC says)."""
        self._started = False
        self._base_seq = 0
        self._max_seq = 0
        self._cycles = 0
        self._bad_seq = RTP_SEQ_MOD + 1
        self._expected_prior = 0
        self._received_prior = 0
        self._transit = 0
        self._jitter_q4 = 0  # the jitter scaled by 16, as appendix A.8 keeps it

    def _restart(self, sequence_number: int, transit: int) -> None:
        self._base_seq = self._max_seq = sequence_number
        self._bad_seq = RTP_SEQ_MOD + 1
        self._cycles = 0
        self.received = self._expected_prior = self._received_prior = 0
        self._transit = transit

    def update(self, sequence_number: int, timestamp: int, arrival_time_in_timestamp_units: int) -> bool:
        """Count one packet; False when it is dropped as a probable stray (a big sequence jump)."""
        arrival = arrival_time_in_timestamp_units
        if not self._started:
            self._started = True
            self._restart(sequence_number, arrival - timestamp)
        else:
            delta = (sequence_number - self._max_seq) % RTP_SEQ_MOD
            if delta < MAX_DROPOUT:
                if sequence_number < self._max_seq:
                    self._cycles += RTP_SEQ_MOD
                self._max_seq = sequence_number
                self._update_jitter(timestamp, arrival)
            elif delta <= RTP_SEQ_MOD - MAX_MISORDER:
                if sequence_number != self._bad_seq:
                    self._bad_seq = (sequence_number + 1) % RTP_SEQ_MOD
                    return False
                self._restart(sequence_number, arrival - timestamp)
            else:
                self._update_jitter(timestamp, arrival)  # reordered, or a duplicate
        self.received += 1
        return True

    def _update_jitter(self, timestamp: int, arrival: int) -> None:
        transit = arrival - timestamp
        # Both clocks wrap at 32 bits; the difference of transits is small and signed.
        difference = abs((transit - self._transit + (1 << 31)) % (1 << 32) - (1 << 31))
        self._transit = transit
        self._jitter_q4 += difference - ((self._jitter_q4 + 8) >> 4)

    @property
    def extended_max_sequence(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        return self.extended_max_sequence - self._base_seq + 1 if self._started else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost, clamped to the 24 signed bits of a report block."""
        return max(_PACKETS_LOST_MIN, min(_PACKETS_LOST_MAX, self.expected - self.received))

    @property
    def fraction_lost(self) -> int:
        """Lost since the last report block, in 1/256 (0..255); duplicates count as nothing lost."""
        expected_interval = self.expected - self._expected_prior
        lost_interval = expected_interval - (self.received - self._received_prior)
        if expected_interval == 0 or lost_interval <= 0:
            return 0
        return (lost_interval << 8) // expected_interval

    @property
    def jitter(self) -> int:
        """Interarrival jitter in timestamp units."""
        return self._jitter_q4 >> 4

    def report_block(self, lsr: int = 0, dlsr: int = 0) -> RtcpReportBlock:
        """The report block for this source, which starts the next interval of `fraction_lost`."""
        block = RtcpReportBlock(self.ssrc, self.fraction_lost, self.lost,
                                self.extended_max_sequence & 0xFFFF_FFFF, self.jitter, lsr, dlsr)
        self._expected_prior = self.expected
        self._received_prior = self.received
        return block
