"""RTP packets: pjsua2 captures, round trips, the exact errors, the header fast path, RTCP demux.

Captures are in tests/data/rtp/<device>_<what>.hex (hex of the UDP payload, one packet
a line); broken variants in tests/data/rtp/invalid/, each with the parser's exact reason.
"""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbx_services.rtp.errors import RtpParseError
from pbx_services.rtp.packet import RTP_HEADER_SIZE, RTP_VERSION, RtpPacket, is_rtcp, rtp_header_fields

DATA = Path(__file__).resolve().parents[2] / "data" / "rtp"

INVALID = {
    "rtp_too_short": "RTP packet is too short: 11 bytes, the header needs 12",
    "rtp_version_1": "RTP packet has version 1, not 2",
    "rtp_truncated_csrc": "RTP packet has truncated CSRC list",
    "rtp_truncated_extension_header": "RTP packet has truncated extension header",
    "rtp_truncated_extension": "RTP packet has truncated extension: 8 bytes announced, 4 left",
    "rtp_padding_zero": "RTP packet has bad padding length 0 for 160 bytes after the header",
    "rtp_padding_too_long": "RTP packet has bad padding length 255 for 160 bytes after the header",
}


def capture(name: str) -> list[bytes]:
    return [bytes.fromhex(line) for line in (DATA / name).read_text().split()]


def test_constants() -> None:
    assert (RTP_VERSION, RTP_HEADER_SIZE) == (2, 12)


def test_pjsua2_first_pcmu_packet() -> None:
    [data] = capture("pjsua2_pcmu_first.hex")
    packet = RtpPacket.parse(data)
    assert (packet.version, packet.padding, packet.extension, packet.marker) == (2, False, False, True)
    assert (packet.payload_type, packet.sequence_number, packet.timestamp, packet.ssrc) == (0, 0x4F1C, 160,
                                                                                            0x62633B0C)
    assert packet.csrc == []
    assert (packet.extension_profile, packet.extension_data, packet.padding_size) == (0, b"", 0)
    assert len(packet.payload) == 160
    # The call starts with µ-law silence (0xFF), then the 1 kHz tone pjsua2 was playing.
    assert packet.payload[:4] == b"\xff\xff\xff\xff"
    assert packet.serialize() == data


def test_pjsua2_next_pcmu_packet() -> None:
    [data] = capture("pjsua2_pcmu.hex")
    packet = RtpPacket.parse(data)
    assert (packet.marker, packet.sequence_number, packet.timestamp) == (False, 0x4F1D, 320)
    assert packet.serialize() == data


@pytest.mark.parametrize("name", ["pjsua2_pcmu_first.hex", "pjsua2_pcmu.hex", "pjsua2_dtmf_1.hex"])
def test_captures_round_trip(name: str) -> None:
    for data in capture(name):
        assert RtpPacket.parse(data).serialize() == data


def test_header_fields_fast_path_agrees_with_parse() -> None:
    for data in capture("pjsua2_pcmu_first.hex") + capture("pjsua2_dtmf_1.hex"):
        packet = RtpPacket.parse(data)
        assert rtp_header_fields(data) == (packet.payload_type, packet.sequence_number, packet.timestamp,
                                           packet.ssrc)
    assert rtp_header_fields(capture("pjsua2_dtmf_1.hex")[0]) == (101, 0x4F80, 0x3F20, 0x62633B0C)


@pytest.mark.parametrize(("name", "reason"), sorted(INVALID.items()))
def test_invalid_packets_raise_the_exact_reason(name: str, reason: str) -> None:
    data = bytes.fromhex((DATA / "invalid" / f"{name}.hex").read_text())
    with pytest.raises(RtpParseError) as caught:
        RtpPacket.parse(data)
    assert str(caught.value) == reason


def test_header_fields_refuse_what_parse_refuses() -> None:
    with pytest.raises(RtpParseError, match=r"^RTP packet is too short: 11 bytes, the header needs 12$"):
        rtp_header_fields(bytes(11))
    with pytest.raises(RtpParseError, match=r"^RTP packet has version 0, not 2$"):
        rtp_header_fields(bytes(12))


def test_csrc_extension_and_padding() -> None:
    data = bytes.fromhex(
        "b2e1" "0007" "00000140" "deadbeef"  # V=2 P X CC=2, M, PT 97, seq 7, ts 320, SSRC
        "00000001" "00000002"  # CSRCs
        "bede0001" "10ff0000"  # RFC 8285 one-byte extension: id 1, one byte 0xff, padding
        "c0ffee"  # payload
        "000003"  # 3 bytes of padding
    )
    packet = RtpPacket.parse(data)
    assert packet == RtpPacket(version=2, padding=True, extension=True, marker=True, payload_type=97,
                               sequence_number=7, timestamp=320, ssrc=0xDEADBEEF, csrc=[1, 2],
                               extension_profile=0xBEDE, extension_data=bytes.fromhex("10ff0000"),
                               payload=bytes.fromhex("c0ffee"), padding_size=3)
    assert packet.serialize() == data


def test_a_relay_rewrites_fields_in_place() -> None:
    [data] = capture("pjsua2_pcmu.hex")
    packet = RtpPacket.parse(data)
    packet.ssrc, packet.sequence_number = 0x01020304, 9
    rewritten = data[:2] + bytes.fromhex("0009") + data[4:8] + bytes.fromhex("01020304") + data[12:]
    assert packet.serialize() == rewritten


def test_a_new_packet_has_the_defaults_of_a_plain_one() -> None:
    packet = RtpPacket(payload_type=8, sequence_number=1, timestamp=160, ssrc=5, payload=b"\xd5" * 160)
    assert packet.serialize() == bytes.fromhex("80080001000000a000000005") + b"\xd5" * 160


@pytest.mark.parametrize(("packet", "message"), [
    (RtpPacket(csrc=list(range(16))), "an RTP packet holds at most 15 CSRCs, not 16"),
    (RtpPacket(payload_type=128), "RTP payload type 128 is out of range 0..127"),
    (RtpPacket(padding_size=256), "RTP padding size 256 is out of range 0..255"),
    (RtpPacket(extension=True, extension_data=b"abc"),
     "RTP extension data must be a multiple of 4 bytes, not 3"),
])
def test_serialize_refuses_what_cannot_be_written(packet: RtpPacket, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        packet.serialize()
    assert str(caught.value) == message


@given(
    marker=st.booleans(), payload_type=st.integers(0, 127), sequence_number=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF), ssrc=st.integers(0, 0xFFFFFFFF),
    csrc=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15), extension=st.booleans(),
    extension_profile=st.integers(0, 0xFFFF),
    extension_words=st.binary(max_size=12).map(lambda b: b[:len(b) // 4 * 4]),
    payload=st.binary(max_size=64), padding_size=st.integers(0, 255),
)
def test_any_packet_round_trips(marker: bool, payload_type: int, sequence_number: int, timestamp: int,
                                ssrc: int, csrc: list[int], extension: bool, extension_profile: int,
                                extension_words: bytes, payload: bytes, padding_size: int) -> None:
    packet = RtpPacket(
        padding=padding_size > 0, extension=extension, marker=marker, payload_type=payload_type,
        sequence_number=sequence_number, timestamp=timestamp, ssrc=ssrc, csrc=csrc,
        extension_profile=extension_profile if extension else 0,
        extension_data=extension_words if extension else b"", payload=payload, padding_size=padding_size,
    )
    assert RtpPacket.parse(packet.serialize()) == packet


@pytest.mark.parametrize(("data", "expected"), [
    (capture("pjsua2_rtcp_sr_sdes.hex")[0], True),
    (capture("pjsua2_rtcp_rr_sdes.hex")[0], True),
    (capture("pjsua2_pcmu_first.hex")[0], False),  # PT 0 with the marker: 0x80
    (capture("pjsua2_dtmf_1.hex")[0], False),  # PT 101 with the marker: 0xe5
    (bytes.fromhex("80df"), True),  # 223: the last value RFC 5761 keeps for RTCP
    (bytes.fromhex("80e0"), False),  # 224: RTP payload type 96 with the marker
    (bytes.fromhex("80bf"), False),  # 191: RTP payload type 63 with the marker
    (b"\x80", False),
    (b"", False),
])
def test_rtcp_demultiplexing(data: bytes, expected: bool) -> None:
    assert is_rtcp(data) is expected
