"""Tests for pbx_services/sip/sdp.py.

The device fixtures under tests/data/sdp/ are hand-written in the shape each device sends
(stored with CRLF line ends), not packet captures.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_services.sip.errors import LocalProtocolError, RemoteProtocolError
from pbx_services.sip.sdp import (
    STATIC_PAYLOAD_TYPES,
    Bandwidth,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    Timing,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "sdp"
VALID_FIXTURES = sorted(path.name for path in DATA.glob("*.sdp"))

# Fixture name -> (status code, exact reason).
INVALID_FIXTURES = {
    "bad_rtpmap_clock_rate.sdp": (400, "SDP line 7: a=rtpmap has non-numeric clock rate 'fast'"),
    "conflicting_directions.sdp": (400, "SDP line 8: a=recvonly conflicts with the earlier a=sendonly"),
    "duplicate_rtpmap.sdp": (400, "SDP line 8: a=rtpmap repeats payload type 96"),
    "empty_line.sdp": (400, "SDP line 3: empty line"),
    "media_without_connection.sdp": (
        400,
        "SDP line 7: media section has no c= line and there is no session-level c=",
    ),
    "missing_version.sdp": (400, "SDP line 1: expected v= line, got 'o=- 1 1 IN IP4 10.0.0.1'"),
    "no_equals.sdp": (400, "SDP line 6: expected '<type>=<value>', got 'm audio 4000 RTP/AVP 0'"),
    "no_timing.sdp": (400, "SDP has no t= line"),
    "non_numeric_port.sdp": (400, "SDP line 4: m= line has non-numeric port 'abc'"),
    "non_numeric_session_id.sdp": (400, "SDP line 2: o= line has non-numeric session id 'abc'"),
    "port_out_of_range.sdp": (400, "SDP line 6: m= line has port 70000 out of range"),
    "short_origin.sdp": (400, "SDP line 2: o= line needs 6 fields, got 5"),
    "timing_in_media.sdp": (400, "SDP line 6: t= line is not allowed in a media section"),
    "truncated_after_origin.sdp": (400, "SDP ends before the s= line"),
    "two_media_connections.sdp": (
        488,
        "SDP line 7: more than one c= line in the media section (layered multicast)",
    ),
    "two_session_connections.sdp": (400, "SDP line 5: more than one c= line in the session"),
    "unknown_type_letter.sdp": (400, "SDP line 6: unknown type letter 'x'"),
    "version_1.sdp": (400, "SDP line 1: unsupported SDP version '1'"),
}

MINIMAL = (
    b"v=0\r\n"
    b"o=- 1 1 IN IP4 10.0.0.1\r\n"
    b"s=-\r\n"
    b"c=IN IP4 10.0.0.1\r\n"
    b"t=0 0\r\n"
    b"m=audio 4000 RTP/AVP 0 96\r\n"
    b"a=rtpmap:96 opus/48000/2\r\n"
)


def load(name: str) -> bytes:
    return (DATA / name).read_bytes()


def parse_fixture(name: str) -> SessionDescription:
    return SessionDescription.parse(load(name))


# Round trips and corpus


@pytest.mark.parametrize("name", VALID_FIXTURES)
def test_fixture_round_trips_byte_exact(name: str) -> None:
    data = load(name)
    assert data.endswith(b"\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    assert SessionDescription.parse(data).serialize() == data


@pytest.mark.parametrize("name", VALID_FIXTURES)
def test_fixture_with_bare_lf_parses_the_same(name: str) -> None:
    data = load(name)
    assert SessionDescription.parse(data.replace(b"\r\n", b"\n")) == SessionDescription.parse(data)
    assert SessionDescription.parse(data.replace(b"\r\n", b"\n")).serialize() == data


@pytest.mark.parametrize("name", VALID_FIXTURES)
def test_fixture_parses_from_str(name: str) -> None:
    data = load(name)
    assert SessionDescription.parse(data.decode()) == SessionDescription.parse(data)


def test_every_invalid_fixture_has_an_expected_error() -> None:
    assert sorted(path.name for path in (DATA / "invalid").glob("*.sdp")) == sorted(INVALID_FIXTURES)


@pytest.mark.parametrize(("name", "expected"), sorted(INVALID_FIXTURES.items()))
def test_invalid_fixture_error(name: str, expected: tuple[int, str]) -> None:
    with pytest.raises(RemoteProtocolError) as excinfo:
        SessionDescription.parse(load(f"invalid/{name}"))
    assert (excinfo.value.status_code, excinfo.value.reason) == expected
    assert str(excinfo.value) == expected[1]


# Fields of each device's offer


def test_pjsua2_offer_fields() -> None:
    sdp = parse_fixture("pjsua2_2.15_offer.sdp")
    assert sdp.version == 0
    assert sdp.origin == Origin("-", "3913539394", "3913539394", "IN", "IP4", "192.168.1.20")
    assert sdp.session_name == "pjmedia"
    assert sdp.connection is None
    assert sdp.bandwidths == [Bandwidth("AS", 117)]
    assert sdp.timing == [Timing(0, 0)]
    assert sdp.attributes == [("X-nat", "0")]
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.port_count, audio.proto) == ("audio", 4000, None, "RTP/AVP")
    assert audio.formats == ["96", "9", "8", "0", "101", "102"]
    assert audio.connection == Connection("IN", "IP4", "192.168.1.20")
    assert audio.bandwidths == [Bandwidth("TIAS", 96000)]
    assert audio.attributes[:2] == [("rtcp", "4001 IN IP4 192.168.1.20"), ("sendrecv", None)]
    assert list(audio.rtpmap()) == [96, 9, 8, 0, 101, 102]
    assert audio.rtpmap()[96] == RtpMap(96, "opus", 48000, 2)
    assert audio.rtpmap()[102] == RtpMap(102, "telephone-event", 8000)
    assert audio.fmtp() == {96: "useinbandfec=1", 101: "0-16", 102: "0-16"}
    assert audio.direction is Direction.SENDRECV
    assert sdp.media_connection(0) == Connection("IN", "IP4", "192.168.1.20")


def test_baresip_offer_fields() -> None:
    sdp = parse_fixture("baresip_1.0_offer.sdp")
    assert sdp.session_name == "-"
    assert sdp.connection == Connection("IN", "IP4", "192.168.1.30")
    assert sdp.attributes == [("tool", "baresip 1.0.0")]
    (audio,) = sdp.media
    assert audio.connection is None
    assert audio.bandwidths == [Bandwidth("AS", 96)]
    assert audio.fmtp()[96] == "stereo=1;sprop-stereo=1"
    assert ("rtcp-rsize", None) in audio.attributes
    assert ("ssrc", "1820330542 cname:sip:alice@example.com") in audio.attributes
    assert sdp.media_connection(0) == Connection("IN", "IP4", "192.168.1.30")
    assert sdp.media_direction(0) is Direction.SENDRECV


def test_sipp_default_offer_fields() -> None:
    sdp = parse_fixture("sipp_uac_default_offer.sdp")
    assert sdp.origin == Origin("user1", "53655765", "2353687637", "IN", "IP4", "127.0.0.1")
    assert sdp.media[0].rtpmap() == {0: RtpMap(0, "PCMU", 8000)}
    assert sdp.media[0].direction is None
    assert sdp.media_direction(0) is Direction.SENDRECV
    assert not sdp.is_hold()


def test_linphone_offer_static_payload_types_and_video() -> None:
    sdp = parse_fixture("linphone_offer.sdp")
    audio, video = sdp.media
    codecs = audio.rtpmap()
    # 0, 8 and 18 come without a=rtpmap: the RFC 3551 static assignments fill in.
    assert codecs[0] == STATIC_PAYLOAD_TYPES[0] == RtpMap(0, "PCMU", 8000)
    assert codecs[8] == RtpMap(8, "PCMA", 8000)
    assert codecs[18] == RtpMap(18, "G729", 8000)
    assert list(codecs) == [96, 97, 98, 0, 8, 18, 101, 99, 100]
    assert audio.fmtp()[18] == "annexb=yes"
    assert sdp.attributes[0] == ("rtcp-xr", "rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics")
    assert (video.media, video.port) == ("video", 9078)
    assert video.rtpmap() == {96: RtpMap(96, "VP8", 90000), 97: RtpMap(97, "H264", 90000)}
    assert video.fmtp() == {97: "profile-level-id=42801F"}


def test_polycom_session_level_direction_is_the_fallback() -> None:
    sdp = parse_fixture("polycom_vvx_offer.sdp")
    assert sdp.direction is Direction.SENDRECV
    assert sdp.media[0].direction is None
    assert sdp.media_direction(0) is Direction.SENDRECV
    assert sdp.media[0].rtpmap()[102] == RtpMap(102, "G7221", 16000)
    assert not sdp.is_hold()


def test_polycom_hold_is_session_level_sendonly() -> None:
    sdp = parse_fixture("polycom_vvx_hold.sdp")
    assert sdp.origin.session_version == "1626781938"
    assert sdp.media_direction(0) is Direction.SENDONLY
    assert sdp.is_hold()


def test_rfc2543_hold_with_zero_connection_address() -> None:
    sdp = parse_fixture("rfc2543_hold_c0.sdp")
    assert sdp.connection == Connection("IN", "IP4", "0.0.0.0")
    assert sdp.media_direction(0) is Direction.SENDRECV
    assert sdp.is_hold()


def test_rfc8866_example_media_level_ipv6_connection() -> None:
    sdp = parse_fixture("rfc8866_example.sdp")
    assert sdp.info == "SDP Offer #1"
    assert sdp.uri == "http://www.jdoe.example.com/home.html"
    assert sdp.emails == ["Jane Doe <jane@jdoe.example.com>"]
    assert sdp.phones == ["+1 617 555-6011"]
    assert [media.port for media in sdp.media] == [49170, 49180, 51372]
    assert sdp.media_connection(1) == Connection("IN", "IP4", "198.51.100.1")
    assert sdp.media_connection(2) == Connection("IN", "IP6", "2001:db8::2")
    assert sdp.media[2].rtpmap() == {99: RtpMap(99, "h263-1998", 90000)}


def test_rfc4566_every_field() -> None:
    sdp = parse_fixture("rfc4566_all_fields.sdp")
    assert sdp.emails == ["j.doe@example.com (Jane Doe)", "Jane Doe <j.doe@example.com>"]
    assert sdp.connection == Connection("IN", "IP4", "224.2.17.12/127")
    assert sdp.bandwidths == [Bandwidth("CT", 128)]
    assert sdp.timing == [
        Timing(2873397496, 2873404696, ("7d 1h 0 25h", "604800 3600 0 90000")),
        Timing(3034423619, 3042462419),
    ]
    assert sdp.time_zones == "2882844526 -1h 2898848070 0"
    assert sdp.encryption_key == "prompt"
    assert sdp.direction is Direction.RECVONLY
    audio, video, application = sdp.media
    assert (audio.port, audio.port_count, audio.info) == (49170, 2, "Audio channel")
    assert audio.encryption_key == "clear:secret"
    assert audio.bandwidths == [Bandwidth("AS", 64)]
    assert sdp.media_direction(1) is Direction.RECVONLY
    assert (application.port, application.proto, application.formats) == (0, "udp", ["wb"])
    assert application.rtpmap() == {}


def test_t38_image_stream_has_no_rtp_formats() -> None:
    sdp = parse_fixture("t38_reinvite.sdp")
    (image,) = sdp.media
    assert (image.media, image.proto, image.formats) == ("image", "udptl", ["t38"])
    assert image.rtpmap() == {} and image.fmtp() == {}
    assert image.attributes[0] == ("T38FaxVersion", "0")
    assert sdp.origin.addrtype == "IP6"


# Leniency on input, normalization on output


def test_missing_final_line_end_and_trailing_blank_lines_are_accepted() -> None:
    assert SessionDescription.parse(MINIMAL[:-2]).serialize() == MINIMAL
    assert SessionDescription.parse(MINIMAL + b"\r\n\r\n").serialize() == MINIMAL


def test_session_fields_out_of_order_come_back_in_rfc_order() -> None:
    data = MINIMAL.replace(b"c=IN IP4 10.0.0.1\r\nt=0 0\r\n", b"t=0 0\r\na=tool:x\r\nc=IN IP4 10.0.0.1\r\n")
    expected = MINIMAL.replace(b"t=0 0\r\n", b"t=0 0\r\na=tool:x\r\n")
    assert SessionDescription.parse(data).serialize() == expected


def test_extra_spaces_between_fields_are_normalized() -> None:
    data = MINIMAL.replace(b"m=audio 4000 RTP/AVP 0 96", b"m=audio  4000 RTP/AVP   0 96")
    assert SessionDescription.parse(data).serialize() == MINIMAL


def test_non_utf8_text_round_trips_byte_exact() -> None:
    data = MINIMAL.replace(b"s=-", b"s=Caf\xe9 T\xe9l\xe9phone")  # Latin-1 from an old phone
    sdp = SessionDescription.parse(data)
    assert sdp.serialize() == data


def test_attribute_with_empty_value_keeps_its_colon() -> None:
    data = MINIMAL + b"a=foo:\r\na=bar\r\n"
    sdp = SessionDescription.parse(data)
    assert sdp.media[0].attributes[-2:] == [("foo", ""), ("bar", None)]
    assert sdp.serialize() == data


# Errors on single lines


def with_line(line: bytes) -> bytes:
    return MINIMAL + line + b"\r\n"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "SDP is empty"),
        (b"\r\n\r\n", "SDP is empty"),
        (b"v=0\r\n", "SDP ends before the o= line"),
        (MINIMAL.replace(b"s=-", b"i=x"), "SDP line 3: expected s= line, got 'i=x'"),
        (with_line(b"a=x\rb"), "SDP line 8: bare CR inside the line"),
        (with_line(b"a=x\0"), "SDP line 8: NUL inside the line"),
        (with_line(b"="), "SDP line 8: expected '<type>=<value>', got '='"),
        (with_line(b"M=audio 1 RTP/AVP 0"), "SDP line 8: unknown type letter 'M'"),
        (with_line(b"o=- 1 1 IN IP4 10.0.0.1"), "SDP line 8: o= line is only allowed as line 2"),
        (with_line(b"u=http://example.com"), "SDP line 8: u= line is not allowed in a media section"),
        (with_line(b"i=one\r\ni=two"), "SDP line 9: more than one i= line in the media section"),
        (with_line(b"b=AS"), "SDP line 8: b= line needs '<bwtype>:<bandwidth>', got 'AS'"),
        (with_line(b"b=AS:lots"), "SDP line 8: b= line has non-numeric bandwidth 'lots'"),
        (with_line(b"a="), "SDP line 8: a= line has an empty attribute name"),
        (with_line(b"a=:x"), "SDP line 8: a= line has an empty attribute name"),
        (with_line(b"a=sendonly:yes"), "SDP line 8: a=sendonly takes no value"),
        (
            with_line(b"a=rtpmap"),
            "SDP line 8: a=rtpmap needs '<payload type> <encoding>/<clock rate>', got ''",
        ),
        (
            with_line(b"a=rtpmap:96 opus"),
            "SDP line 8: a=rtpmap needs '<payload type> <encoding>/<clock rate>', got '96 opus'",
        ),
        (with_line(b"a=rtpmap:128 opus/48000"), "SDP line 8: a=rtpmap has invalid payload type '128'"),
        (
            with_line(b"a=rtpmap:97 opus/48000/two"),
            "SDP line 8: a=rtpmap has non-numeric encoding parameters 'two'",
        ),
        (with_line(b"a=fmtp:101"), "SDP line 8: a=fmtp needs '<format> <parameters>', got '101'"),
        (with_line(b"m=audio"), "SDP line 8: m= line needs at least 4 fields, got 1"),
        (with_line(b"m=audio 4000 RTP/AVP"), "SDP line 8: m= line needs at least 4 fields, got 3"),
        (with_line(b"m=audio 4000/0 RTP/AVP 0"), "SDP line 8: m= line has invalid port count '0'"),
        (with_line(b"m=audio -1 RTP/AVP 0"), "SDP line 8: m= line has non-numeric port '-1'"),
        (with_line(b"m=audio \xd9\xa1 RTP/AVP 0"), "SDP line 8: m= line has non-numeric port '\\u0661'"),
        (MINIMAL.replace(b"t=0 0", b"r=1d 1h 0"), "SDP line 5: r= line without a preceding t= line"),
        (MINIMAL.replace(b"t=0 0", b"t=0"), "SDP line 5: t= line needs 2 fields, got 1"),
        (MINIMAL.replace(b"t=0 0", b"t=now 0"), "SDP line 5: t= line has non-numeric start time 'now'"),
        (MINIMAL.replace(b"t=0 0", b"t=0 never"), "SDP line 5: t= line has non-numeric stop time 'never'"),
        (MINIMAL.replace(b"c=IN IP4 10.0.0.1", b"c=IN IP4"), "SDP line 4: c= line needs 3 fields, got 2"),
        (
            MINIMAL.replace(b"o=- 1 1", b"o=- 1 v2"),
            "SDP line 2: o= line has non-numeric session version 'v2'",
        ),
    ],
)
def test_line_error(data: bytes, reason: str) -> None:
    with pytest.raises(RemoteProtocolError) as excinfo:
        SessionDescription.parse(data)
    assert excinfo.value.reason == reason
    assert excinfo.value.status_code == 400


def test_long_bad_value_is_cut_short_in_the_error() -> None:
    with pytest.raises(RemoteProtocolError) as excinfo:
        SessionDescription.parse(with_line(b"b=AS:" + b"x" * 100))
    assert excinfo.value.reason == "SDP line 8: b= line has non-numeric bandwidth '" + "x" * 40 + "...'"


# Helpers for a B2BUA and media relay


def test_direction_setter_replaces_in_place_appends_and_removes() -> None:
    sdp = parse_fixture("pjsua2_2.15_offer.sdp")
    audio = sdp.media[0]
    audio.direction = Direction.SENDONLY
    assert audio.attributes[1] == ("sendonly", None)
    assert sum(name in {"sendrecv", "sendonly"} for name, _ in audio.attributes) == 1
    audio.direction = None
    assert audio.direction is None and ("sendonly", None) not in audio.attributes
    audio.direction = Direction.INACTIVE
    assert audio.attributes[-1] == ("inactive", None)
    assert sdp.is_hold()
    assert b"a=inactive\r\n" in sdp.serialize()


def test_session_direction_setter() -> None:
    sdp = parse_fixture("polycom_vvx_offer.sdp")
    sdp.direction = Direction.INACTIVE
    assert sdp.attributes == [("inactive", None)]
    assert sdp.media_direction(0) is Direction.INACTIVE
    sdp.media[0].direction = Direction.RECVONLY  # media level wins over session level
    assert sdp.media_direction(0) is Direction.RECVONLY


def test_recvonly_is_not_hold_and_disabled_streams_are_ignored() -> None:
    sdp = parse_fixture("linphone_offer.sdp")
    sdp.media[0].direction = Direction.RECVONLY
    assert not sdp.is_hold()
    sdp.media[0].direction = Direction.SENDONLY
    assert not sdp.is_hold()  # video still flows both ways: one held stream is not a held call
    sdp.media[1].port = 0
    assert sdp.is_hold()
    sdp.media[0].port = 0
    assert not sdp.is_hold()  # no active stream at all


def test_with_connection_address_session_level() -> None:
    original = parse_fixture("baresip_1.0_offer.sdp")
    snapshot = copy.deepcopy(original)
    relayed = original.with_connection_address("203.0.113.5", {0: 30000})
    assert original == snapshot
    assert relayed.connection == Connection("IN", "IP4", "203.0.113.5")
    assert relayed.media[0].connection is None
    assert relayed.media[0].port == 30000
    assert relayed.origin == original.origin
    expected = load("baresip_1.0_offer.sdp").replace(b"c=IN IP4 192.168.1.30", b"c=IN IP4 203.0.113.5")
    assert relayed.serialize() == expected.replace(b"m=audio 10484", b"m=audio 30000")


def test_with_connection_address_media_level_drops_rtcp_of_moved_stream() -> None:
    relayed = parse_fixture("pjsua2_2.15_offer.sdp").with_connection_address("2001:db8::5", {0: 30000})
    audio = relayed.media[0]
    assert audio.connection == Connection("IN", "IP6", "2001:db8::5")
    assert all(name != "rtcp" for name, _ in audio.attributes)
    assert relayed.connection is None


def test_with_connection_address_rewrites_rtcp_address_of_unmoved_stream() -> None:
    relayed = parse_fixture("pjsua2_2.15_offer.sdp").with_connection_address("203.0.113.5")
    assert relayed.media[0].port == 4000
    assert relayed.media[0].attributes[0] == ("rtcp", "4001 IN IP4 203.0.113.5")


def test_with_connection_address_keeps_rfc2543_hold() -> None:
    relayed = parse_fixture("rfc2543_hold_c0.sdp").with_connection_address("203.0.113.5", {0: 30000})
    assert relayed.connection == Connection("IN", "IP4", "0.0.0.0")
    assert relayed.is_hold()


def test_with_connection_address_when_only_some_media_have_their_own() -> None:
    relayed = parse_fixture("rfc8866_example.sdp").with_connection_address("203.0.113.5", {2: 30004})
    assert relayed.connection == Connection("IN", "IP4", "203.0.113.5")
    assert [media.connection for media in relayed.media][:2] == [None, None]
    assert relayed.media[2].connection == Connection("IN", "IP4", "203.0.113.5")
    assert [media.port for media in relayed.media] == [49170, 49180, 30004]


@pytest.mark.parametrize(
    ("ports", "reason"),
    [
        ({3: 30000}, "SDP has no media section 3 (it has 3)"),
        ({-1: 30000}, "SDP has no media section -1 (it has 3)"),
        ({2: 0}, "SDP port 0 for media section 2 is out of range"),
        ({2: 65536}, "SDP port 65536 for media section 2 is out of range"),
    ],
)
def test_with_connection_address_rejects_bad_ports(ports: dict[int, int], reason: str) -> None:
    with pytest.raises(LocalProtocolError, match=f"^{re.escape(reason)}$"):
        parse_fixture("rfc8866_example.sdp").with_connection_address("203.0.113.5", ports)


def test_with_connection_address_will_not_enable_a_disabled_stream() -> None:
    sdp = parse_fixture("rfc4566_all_fields.sdp")
    with pytest.raises(
        LocalProtocolError, match=r"^SDP media section 2 is disabled \(port 0\); it keeps port 0$"
    ):
        sdp.with_connection_address("203.0.113.5", {2: 30000})


def test_origin_next_version() -> None:
    origin = parse_fixture("sipp_uac_default_offer.sdp").origin
    assert origin.next_version() == Origin("user1", "53655765", "2353687638", "IN", "IP4", "127.0.0.1")


def test_built_description_serializes() -> None:
    sdp = SessionDescription(
        origin=Origin("pbx", "42", "1", "IN", "IP4", "203.0.113.5"),
        session_name="pbx",
        connection=Connection.for_address("203.0.113.5"),
        media=[
            MediaDescription(
                media="audio",
                port=30000,
                proto="RTP/AVP",
                formats=["8", "101"],
                attributes=[("rtpmap", "101 telephone-event/8000"), ("fmtp", "101 0-16")],
            )
        ],
    )
    sdp.media[0].direction = Direction.SENDRECV
    assert sdp.serialize() == (
        b"v=0\r\no=pbx 42 1 IN IP4 203.0.113.5\r\ns=pbx\r\nc=IN IP4 203.0.113.5\r\nt=0 0\r\n"
        b"m=audio 30000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n"
        b"a=sendrecv\r\n"
    )
    assert SessionDescription.parse(sdp.serialize()) == sdp


def test_serialize_refuses_line_injection() -> None:
    sdp = SessionDescription.parse(MINIMAL)
    sdp.session_name = "x\r\nm=audio 1 RTP/AVP 0"
    with pytest.raises(LocalProtocolError, match=r"^SDP s= line contains a line break or NUL: "):
        sdp.serialize()


def test_rtpmap_of_a_hand_built_bad_attribute_is_our_bug() -> None:
    media = MediaDescription(
        media="audio", port=1, proto="RTP/AVP", formats=["96"], attributes=[("rtpmap", "x")]
    )
    with pytest.raises(LocalProtocolError, match=r"^SDP a=rtpmap needs"):
        media.rtpmap()


def test_media_connection_of_a_hand_built_description_without_one() -> None:
    sdp = SessionDescription(
        origin=Origin("-", "1", "1", "IN", "IP4", "x"),
        session_name="-",
        media=[MediaDescription(media="audio", port=1, proto="RTP/AVP", formats=["0"])],
    )
    with pytest.raises(LocalProtocolError, match=r"^SDP media section 0 has no c= line"):
        sdp.media_connection(0)


# Property tests

_TOKEN = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
_DIGITS = st.integers(min_value=0, max_value=2**64).map(str)
_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0"), max_size=20)
_RESERVED_ATTRIBUTES = {"rtpmap", "fmtp", *Direction}
_ATTRIBUTE = st.tuples(
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
        min_size=1,
        max_size=10,
    ).filter(lambda name: name not in _RESERVED_ATTRIBUTES),
    st.none() | _TEXT,
)
_CONNECTION = st.builds(Connection, _TOKEN, _TOKEN, _TOKEN)
_BANDWIDTH = st.builds(
    Bandwidth,
    st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
        min_size=1,
        max_size=6,
    ),
    st.integers(min_value=0, max_value=10**9),
)
_MEDIA = st.builds(
    MediaDescription,
    media=_TOKEN,
    port=st.integers(min_value=0, max_value=65535),
    port_count=st.none() | st.integers(min_value=1, max_value=8),
    proto=_TOKEN,
    formats=st.lists(_TOKEN, min_size=1, max_size=4),
    info=st.none() | _TEXT,
    connection=_CONNECTION,
    bandwidths=st.lists(_BANDWIDTH, max_size=2),
    encryption_key=st.none() | _TEXT,
    attributes=st.lists(_ATTRIBUTE, max_size=4),
)
_DESCRIPTION = st.builds(
    SessionDescription,
    origin=st.builds(Origin, _TOKEN, _DIGITS, _DIGITS, _TOKEN, _TOKEN, _TOKEN),
    session_name=_TEXT,
    info=st.none() | _TEXT,
    uri=st.none() | _TEXT,
    emails=st.lists(_TEXT, max_size=2),
    phones=st.lists(_TEXT, max_size=2),
    connection=st.none() | _CONNECTION,
    bandwidths=st.lists(_BANDWIDTH, max_size=2),
    timing=st.lists(
        st.builds(
            Timing,
            st.integers(min_value=0, max_value=2**40),
            st.integers(min_value=0, max_value=2**40),
            st.lists(_TEXT, max_size=2).map(tuple),
        ),
        min_size=1,
        max_size=2,
    ),
    time_zones=st.none() | _TEXT,
    encryption_key=st.none() | _TEXT,
    attributes=st.lists(_ATTRIBUTE, max_size=4),
    media=st.lists(_MEDIA, max_size=3),
)


@settings(max_examples=200)
@given(_DESCRIPTION)
def test_property_built_descriptions_round_trip(sdp: SessionDescription) -> None:
    data = sdp.serialize()
    parsed = SessionDescription.parse(data)
    assert parsed == sdp
    assert parsed.serialize() == data


_FUZZ_LINE = st.one_of(
    st.sampled_from(MINIMAL.split(b"\r\n")[:-1]),
    st.builds(
        lambda letter, value: letter + b"=" + value,
        st.sampled_from([bytes([c]) for c in b"vosiuepcbtrzkamx"]),
        st.binary(max_size=20),
    ),
    st.sampled_from([b"a=sendonly", b"a=rtpmap:96 opus/48000/2", b"a=fmtp:96 x", b"m=video 0 RTP/AVP 96"]),
)


@settings(max_examples=500)
@given(
    st.lists(_FUZZ_LINE, max_size=12).map(lambda lines: b"v=0\r\n" + b"\r\n".join(lines))
    | st.binary(max_size=200)
)
def test_property_fuzz_only_remote_errors_and_stable_serialization(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(data)
    except RemoteProtocolError as exc:
        assert exc.reason.startswith("SDP ")
        assert exc.reason.isascii() and "\n" not in exc.reason
        return
    once = sdp.serialize()
    assert SessionDescription.parse(once).serialize() == once
