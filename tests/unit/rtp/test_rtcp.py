"""RTCP: pjsua2 compound packets, round trips, exact errors, and the reception statistics."""

from pathlib import Path

import pytest

from pbx_services.rtp.errors import RtpParseError
from pbx_services.rtp.rtcp import (
    RTCP_APP,
    RTCP_BYE,
    RTCP_RR,
    RTCP_SDES,
    RTCP_SR,
    SDES_CNAME,
    SDES_TOOL,
    ReceptionStatistics,
    RtcpApp,
    RtcpBye,
    RtcpReceiverReport,
    RtcpReportBlock,
    RtcpSdes,
    RtcpSenderReport,
    RtcpUnknown,
    ntp_from_unix,
    ntp_short,
    parse_compound,
    round_trip_time,
    serialize_compound,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "rtp"
PJSUA2_SSRC = 0x62633B0C
PJSUA2_CNAME = b"69821359509c226f"
# pjsua2 reports on a source it has not heard from yet with an all-zero block.
EMPTY_BLOCK = RtcpReportBlock(0, 0, 0, 0, 0, 0, 0)

INVALID = {
    "rtcp_too_short": "RTCP packet is too short: 3 bytes, the header needs 4",
    "rtcp_version_1": "RTCP packet has version 1, not 2",
    "rtcp_truncated": "RTCP packet is truncated: its length says 28 bytes, 24 left",
    "rtcp_trailing_bytes": "RTCP packet is too short: 2 bytes, the header needs 4",
    "rtcp_sr_too_short": "RTCP SR is too short: 4 bytes after the header, 24 needed",
    "rtcp_sr_missing_report_block": "RTCP SR is too short for 2 report blocks",
    "rtcp_sdes_no_end": "RTCP SDES chunk has no end item",
    "rtcp_sdes_item_truncated": "RTCP SDES item 1 is truncated",
    "rtcp_bye_reason_truncated": "RTCP BYE reason is truncated: 10 bytes announced, 3 left",
    "rtcp_bad_padding": "RTCP packet has bad padding length 64 for 28 bytes after the header",
}


def capture(name: str) -> bytes:
    return bytes.fromhex((DATA / name).read_text())


def test_packet_type_constants() -> None:
    assert (RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_APP) == (200, 201, 202, 203, 204)


def test_pjsua2_sender_report_and_sdes() -> None:
    packets = parse_compound(capture("pjsua2_rtcp_sr_sdes.hex"))
    assert packets == [
        RtcpSenderReport(ssrc=PJSUA2_SSRC, ntp_timestamp=0xEEB1B35E967A41FF, rtp_timestamp=36696,
                         packet_count=229, octet_count=34768, reports=[EMPTY_BLOCK]),
        RtcpSdes([(PJSUA2_SSRC, [(SDES_CNAME, PJSUA2_CNAME)])]),
    ]
    sdes = packets[1]
    assert isinstance(sdes, RtcpSdes)
    assert sdes.cname(PJSUA2_SSRC) == PJSUA2_CNAME
    assert sdes.cname(1) is None


def test_pjsua2_receiver_report_and_sdes() -> None:
    assert parse_compound(capture("pjsua2_rtcp_rr_sdes.hex")) == [
        RtcpReceiverReport(PJSUA2_SSRC, [EMPTY_BLOCK]),
        RtcpSdes([(PJSUA2_SSRC, [(SDES_CNAME, PJSUA2_CNAME)])]),
    ]


def test_pjsua2_hangs_up_with_a_bye() -> None:
    packets = parse_compound(capture("pjsua2_rtcp_sr_sdes_bye.hex"))
    assert [type(packet) for packet in packets] == [RtcpSenderReport, RtcpSdes, RtcpBye]
    assert packets[2] == RtcpBye([PJSUA2_SSRC], b"")


@pytest.mark.parametrize("name", ["pjsua2_rtcp_sr_sdes.hex", "pjsua2_rtcp_rr_sdes.hex",
                                  "pjsua2_rtcp_sr_sdes_bye.hex", "pjsua2_rtcp_rr_sdes_bye.hex"])
def test_captures_round_trip(name: str) -> None:
    data = capture(name)
    assert serialize_compound(parse_compound(data)) == data


@pytest.mark.parametrize(("name", "reason"), sorted(INVALID.items()))
def test_invalid_compounds_raise_the_exact_reason(name: str, reason: str) -> None:
    with pytest.raises(RtpParseError) as caught:
        parse_compound(capture(f"invalid/{name}.hex"))
    assert str(caught.value) == reason


def test_empty_datagram() -> None:
    with pytest.raises(RtpParseError, match=r"^RTCP packet is too short: 0 bytes, the header needs 4$"):
        parse_compound(b"")


def test_packets_lost_is_signed_24_bits() -> None:
    block = RtcpReportBlock(ssrc=1, fraction_lost=0, packets_lost=-2, highest_sequence=0x1_0005, jitter=7,
                            lsr=0xB7052000, dlsr=0x54000)
    data = block.serialize()
    assert data.hex() == "00000001" "00fffffe" "00010005" "00000007" "b7052000" "00054000"
    assert RtcpReportBlock.parse(data) == block
    assert RtcpReportBlock.parse(bytes.fromhex("00000001" "197fffff") + bytes(16)).packets_lost == 0x7FFFFF
    assert RtcpReportBlock.parse(bytes.fromhex("00000001" "19800000") + bytes(16)).packets_lost == -0x800000
    assert RtcpReportBlock.parse(bytes.fromhex("00000001" "19800000") + bytes(16)).fraction_lost == 0x19


@pytest.mark.parametrize(("block", "message"), [
    (RtcpReportBlock(1, 256, 0, 0, 0, 0, 0), "fraction lost 256 is out of range 0..255"),
    (RtcpReportBlock(1, 0, 0x800000, 0, 0, 0, 0), "packets lost 8388608 does not fit in 24 signed bits"),
])
def test_report_block_refuses_what_does_not_fit(block: RtcpReportBlock, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        block.serialize()
    assert str(caught.value) == message


def test_bye_with_a_reason_is_padded_to_a_word() -> None:
    bye = RtcpBye([0x1234], b"bye")
    assert bye.serialize().hex() == "81cb0002" "00001234" "03627965"
    bye = RtcpBye([1, 2], b"hangup")
    data = bye.serialize()
    assert data.hex() == "82cb0004" "00000001" "00000002" "0668616e677570" "00"
    assert parse_compound(data) == [bye]


def test_sdes_with_several_items_and_chunks() -> None:
    sdes = RtcpSdes([(1, [(SDES_CNAME, b"a@b"), (SDES_TOOL, b"pbx")]), (2, [])])
    data = sdes.serialize()
    assert data.hex() == "82ca0006" "00000001" "0103614062" "0603706278" "0000" "00000002" "00000000"
    assert parse_compound(data) == [sdes]


def test_app_round_trip() -> None:
    app = RtcpApp(subtype=3, ssrc=9, name=b"PBX1", data=b"\x00\x01\x02\x03")
    data = app.serialize()
    assert data.hex() == "83cc0003" "00000009" "50425831" "00010203"
    assert parse_compound(data) == [app]


def test_app_data_that_is_not_whole_words_gets_rtcp_padding() -> None:
    app = RtcpApp(subtype=0, ssrc=9, name=b"PBX1", data=b"\x07")
    data = app.serialize()
    assert data.hex() == "a0cc0003" "00000009" "50425831" "07000003"
    assert parse_compound(data) == [app]


def test_unknown_types_are_kept_to_be_relayed() -> None:
    # A generic NACK (RFC 4585: RTPFB, FMT 1) for sequence number 0x4f1d and the 2 after it.
    data = bytes.fromhex("81cd0003" "62633b0c" "00000001" "4f1d0003")
    assert parse_compound(data) == [RtcpUnknown(packet_type=205, data=data[4:], count=1)]
    assert serialize_compound(parse_compound(data)) == data


def test_serialize_refuses_what_cannot_be_written() -> None:
    with pytest.raises(ValueError, match=r"^RTCP count 32 is out of range 0\.\.31$"):
        RtcpReceiverReport(1, [EMPTY_BLOCK] * 32).serialize()
    with pytest.raises(ValueError, match=r"^an RTCP APP name is 4 bytes, not 3$"):
        RtcpApp(0, 1, b"PBX").serialize()


def test_ntp_helpers() -> None:
    assert ntp_from_unix(0.0) == 2_208_988_800 << 32
    assert ntp_from_unix(1.5) == (2_208_988_801 << 32) | 0x8000_0000
    assert ntp_short(0xEEB1B35E967A41FF) == 0xB35E967A


def test_round_trip_time_of_the_rfc_3550_example() -> None:
    # RFC 3550 6.4.1: A = 0xb710:8000, LSR = 0xb705:2000, DLSR = 0x0005:4000; 6.125 s.
    block = RtcpReportBlock(1, 0, 0, 0, 0, lsr=0xB7052000, dlsr=0x00054000)
    assert round_trip_time(block, 0xB7108000 << 16) == 6.125
    assert round_trip_time(RtcpReportBlock(1, 0, 0, 0, 0, 0, 0), 0xB7108000 << 16) is None


def feed(stats: ReceptionStatistics, sequence_numbers: list[int], *, transit: int = 1000) -> None:
    for sequence_number in sequence_numbers:
        timestamp = sequence_number * 160
        stats.update(sequence_number, timestamp, timestamp + transit)


def test_statistics_of_a_clean_stream() -> None:
    stats = ReceptionStatistics(ssrc=7)
    feed(stats, list(range(100, 200)))
    assert (stats.expected, stats.received, stats.lost) == (100, 100, 0)
    assert (stats.fraction_lost, stats.jitter) == (0, 0)
    assert stats.report_block(lsr=5, dlsr=6) == RtcpReportBlock(7, 0, 0, 199, 0, 5, 6)


def test_fraction_lost_is_per_report_interval_and_lost_is_cumulative() -> None:
    stats = ReceptionStatistics(ssrc=7)
    feed(stats, [n for n in range(100) if n % 10 != 5])  # 10 of 100 lost
    assert (stats.expected, stats.received, stats.lost) == (100, 90, 10)
    assert stats.fraction_lost == (10 << 8) // 100 == 25
    assert stats.report_block() == RtcpReportBlock(7, 25, 10, 99, 0, 0, 0)
    feed(stats, list(range(100, 200)))
    assert stats.fraction_lost == 0
    assert stats.report_block() == RtcpReportBlock(7, 0, 10, 199, 0, 0, 0)


def test_sequence_wraparound_counts_a_cycle() -> None:
    stats = ReceptionStatistics()
    feed(stats, [65530 + n for n in range(6)] + list(range(14)))
    assert stats.extended_max_sequence == (1 << 16) + 13
    assert (stats.expected, stats.received, stats.lost) == (20, 20, 0)
    assert stats.report_block().highest_sequence == 0x1_000D


def test_reordering_is_not_loss_and_duplicates_make_loss_negative() -> None:
    stats = ReceptionStatistics()
    feed(stats, [1, 2, 4, 3, 5])
    assert (stats.expected, stats.lost) == (5, 0)
    feed(stats, [5, 5])
    assert (stats.received, stats.lost, stats.fraction_lost) == (7, -2, 0)


def test_a_big_jump_is_a_restart_once_confirmed() -> None:
    stats = ReceptionStatistics()
    feed(stats, list(range(1, 11)))
    assert stats.update(20000, 0, 0) is False  # a stray, maybe: not counted
    assert stats.received == 10
    assert stats.update(20001, 160, 160) is True  # in sequence after it: the source restarted
    assert (stats.expected, stats.received, stats.extended_max_sequence) == (1, 1, 20001)


def test_jitter_follows_rfc_3550_appendix_a8() -> None:
    stats = ReceptionStatistics()
    stats.update(0, 0, 1000)
    stats.update(1, 160, 1000 + 160 + 160)  # 160 units late: J = 160 / 16
    assert stats.jitter == 10
    # Arrivals alternately 0 and 80 units late: J converges to |D| = 80.
    expected = 10.0
    for n in range(2, 200):
        late = 80 if n % 2 else 0
        stats.update(n, n * 160, 1000 + n * 160 + late)
        previous_late = 160 if n == 2 else (0 if late else 80)
        expected += (abs(late - previous_late) - expected) / 16
    assert abs(stats.jitter - expected) <= 1
    assert stats.jitter == 79


def test_jitter_across_the_rtp_timestamp_wraparound() -> None:
    stats = ReceptionStatistics()
    for n in range(10):
        timestamp = (0xFFFF_FE00 + n * 160) % (1 << 32)
        stats.update(n, timestamp, 5_000_000 + n * 160)
    assert stats.jitter == 0
