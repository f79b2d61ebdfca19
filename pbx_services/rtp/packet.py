"""RTP packets (RFC 3550 section 5.1): parsing from bytes, serializing to bytes.

    0                   1                   2                   3
    0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
   |V=2|P|X|  CC   |M|     PT      |       sequence number         |
   |                           timestamp                           |
   |           synchronization source (SSRC) identifier            |
   |            contributing source (CSRC) identifiers             |  CC of them
   |  extension profile            |  extension length (words)     |  if X
   |                        extension data                         |
   |                            payload ...     | padding | count  |  if P

`RtpPacket.parse` checks what RFC 3550 appendix A.1 asks of every packet (version 2,
the CSRC list, the extension and the padding inside the datagram) and nothing more:
the payload type is the session's business. `rtp_header_fields` is the hot path for
a relay that only looks at the fixed header. `is_rtcp` demultiplexes RTP and RTCP on
one port (RFC 5761 section 4).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from .errors import RtpParseError

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
RTP_MAX_CSRC = 15
RTP_MAX_PAYLOAD_TYPE = 127
RTP_SEQ_MOD = 1 << 16
# RFC 3550 appendix A.1: how far a sequence number may jump before it means a restarted
# sender rather than loss (ahead) or a late packet (behind).
MAX_DROPOUT = 3000
MAX_MISORDER = 100

# RFC 5761 section 4: on a shared port, a second octet of 192..223 is an RTCP packet type
# (RTP payload types 64..95 with the marker set would collide, and are not to be used).
_RTCP_MUX_FIRST = 192
_RTCP_MUX_LAST = 223

_FIXED_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")


@dataclass(slots=True)
class RtpPacket:
    """One RTP packet.

    Mutable on purpose: a relay rewrites the SSRC, sequence number or timestamp of the
    packet it received and serializes it again. `serialize` writes the extension header
    when `extension` is set and `padding_size` bytes of padding when it is not 0 (the
    padding flag follows it); `parse(p.serialize())` gives `p` back.
    """

    version: int = RTP_VERSION
    padding: bool = False
    extension: bool = False
    marker: bool = False
    payload_type: int = 0
    sequence_number: int = 0
    timestamp: int = 0
    ssrc: int = 0
    csrc: list[int] = field(default_factory=list)
    extension_profile: int = 0
    """The 16 "defined by profile" bits of the header extension (0xBEDE for RFC 8285 one-byte)."""
    extension_data: bytes = b""
    """The extension's data, without its 4-byte header: a multiple of 4 bytes."""
    payload: bytes = b""
    padding_size: int = 0
    """Bytes of padding after the payload, counting the last one (which holds the count)."""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Read one RTP packet; raises RtpParseError saying what is wrong with it."""
        if len(data) < RTP_HEADER_SIZE:
            raise RtpParseError(f"RTP packet is too short: {len(data)} bytes, the header needs 12")
        first, second, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data)
        version = first >> 6
        if version != RTP_VERSION:
            raise RtpParseError(f"RTP packet has version {version}, not 2")
        offset = RTP_HEADER_SIZE
        csrc_count = first & 0x0F
        if csrc_count:
            end = offset + 4 * csrc_count
            if end > len(data):
                raise RtpParseError("RTP packet has truncated CSRC list")
            csrc = list(struct.unpack_from(f"!{csrc_count}I", data, offset))
            offset = end
        else:
            csrc = []
        extension = bool(first & 0x10)
        extension_profile = 0
        extension_data = b""
        if extension:
            if offset + 4 > len(data):
                raise RtpParseError("RTP packet has truncated extension header")
            extension_profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
            offset += 4
            end = offset + 4 * words
            if end > len(data):
                raise RtpParseError(
                    f"RTP packet has truncated extension: {words * 4} bytes announced, "
                    f"{len(data) - offset} left")
            extension_data = bytes(data[offset:end])
            offset = end
        padding = bool(first & 0x20)
        padding_size = 0
        end = len(data)
        if padding:
            padding_size = data[-1]
            if padding_size == 0 or padding_size > end - offset:
                raise RtpParseError(
                    f"RTP packet has bad padding length {padding_size} for {end - offset} bytes "
                    "after the header")
            end -= padding_size
        return cls(
            version=version, padding=padding, extension=extension, marker=bool(second & 0x80),
            payload_type=second & 0x7F, sequence_number=sequence_number, timestamp=timestamp, ssrc=ssrc,
            csrc=csrc, extension_profile=extension_profile, extension_data=extension_data,
            payload=bytes(data[offset:end]), padding_size=padding_size,
        )

    def serialize(self) -> bytes:
        """The packet as bytes; padding is zeros ending with its count (RFC 3550 5.1)."""
        if len(self.csrc) > RTP_MAX_CSRC:
            raise ValueError(f"an RTP packet holds at most 15 CSRCs, not {len(self.csrc)}")
        if not 0 <= self.payload_type <= RTP_MAX_PAYLOAD_TYPE:
            raise ValueError(f"RTP payload type {self.payload_type} is out of range 0..127")
        if not 0 <= self.padding_size <= 255:
            raise ValueError(f"RTP padding size {self.padding_size} is out of range 0..255")
        first = (self.version << 6) | len(self.csrc)
        if self.padding_size:
            first |= 0x20
        if self.extension:
            first |= 0x10
        second = self.payload_type | 0x80 if self.marker else self.payload_type
        parts = [_FIXED_HEADER.pack(first, second, self.sequence_number, self.timestamp, self.ssrc)]
        if self.csrc:
            parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        if self.extension:
            if len(self.extension_data) % 4:
                raise ValueError(
                    f"RTP extension data must be a multiple of 4 bytes, not {len(self.extension_data)}")
            parts.append(_EXTENSION_HEADER.pack(self.extension_profile, len(self.extension_data) // 4))
            parts.append(self.extension_data)
        parts.append(self.payload)
        if self.padding_size:
            parts.append(bytes(self.padding_size - 1) + bytes((self.padding_size,)))
        return b"".join(parts)


def rtp_header_fields(data: bytes) -> tuple[int, int, int, int]:
    """`(payload_type, sequence_number, timestamp, ssrc)` of an RTP packet, without parsing the rest.

    One `struct.unpack_from`, for the per-packet path of a relay; raises RtpParseError
    when the packet is shorter than the fixed header or not version 2.
    """
    try:
        first, second, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data)
    except struct.error:
        raise RtpParseError(f"RTP packet is too short: {len(data)} bytes, the header needs 12") from None
    if first >> 6 != RTP_VERSION:
        raise RtpParseError(f"RTP packet has version {first >> 6}, not 2")
    return second & 0x7F, sequence_number, timestamp, ssrc


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram on an rtcp-mux port is RTCP rather than RTP (RFC 5761 section 4)."""
    return len(data) > 1 and _RTCP_MUX_FIRST <= data[1] <= _RTCP_MUX_LAST
