"""Tests for pbx_services/media/negotiation.py, on the phones' SDP in tests/data/sdp/."""

from __future__ import annotations

from pathlib import Path

import pytest

from pbx_services.media.negotiation import (
    NegotiationError,
    answer_ourselves,
    audio_stream_index,
    pick_codec,
    rewrite_answer,
    rewrite_offer,
    stream_info,
)
from pbx_services.sip.sdp import Direction, SessionDescription

DATA = Path(__file__).resolve().parents[2] / "data" / "sdp"
RELAY = "203.0.113.5"
G711 = frozenset({("PCMU", 8000, 1), ("PCMA", 8000, 1)})
WITH_G722 = G711 | {("G722", 8000, 1)}
WITH_OPUS = WITH_G722 | {("OPUS", 48000, 2)}
"""What a media server with the G722 and Opus libraries transcodes."""
EVERY_CODEC = ("PCMU", "PCMA", "G722", "opus")
"""The `transcode` list such a server uses by default."""


def fixture(name: str) -> SessionDescription:
    return SessionDescription.parse((DATA / name).read_bytes())


def sdp(*lines: str) -> SessionDescription:
    head = ["v=0", "o=- 7 7 IN IP4 10.0.0.9", "s=-", "c=IN IP4 10.0.0.9", "t=0 0"]
    return SessionDescription.parse("\r\n".join([*head, *lines]) + "\r\n")


def offer_of(
    name: str,
    *,
    port: int = 30000,
    transcode: tuple[str, ...] = ("PCMU", "PCMA"),
    transcodable: frozenset[tuple[str, int, int]] = G711,
) -> SessionDescription:
    return rewrite_offer(
        fixture(name), address=RELAY, port=port, transcode=transcode, transcodable=transcodable
    )


def test_offer_points_the_stream_at_the_relay_and_keeps_the_rest() -> None:
    original = fixture("baresip_1.0_offer.sdp")
    relayed = offer_of("baresip_1.0_offer.sdp", transcodable=WITH_OPUS)
    media = relayed.media[0]
    assert str(relayed.connection) == f"IN IP4 {RELAY}"
    assert media.port == 30000
    assert media.formats == ["96", "0", "8", "101"]  # baresip offers both G.711 codecs already
    assert relayed.origin == original.origin
    assert media.direction is Direction.SENDRECV
    assert ("ssrc", "1820330542 cname:sip:alice@example.com") in media.attributes
    assert media.fmtp()[101] == "0-15"


def test_offer_appends_the_transcodable_codecs_the_phone_lacks() -> None:
    relayed = rewrite_offer(
        sdp("m=audio 4000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000"),
        address=RELAY,
        port=30000,
        transcode=["PCMU", "PCMA"],
        transcodable=G711,
    )
    media = relayed.media[0]
    assert media.formats == ["0", "101", "8"]
    assert ("rtpmap", "8 PCMA/8000") in media.attributes
    assert relayed.serialize().endswith(b"a=rtpmap:101 telephone-event/8000\r\na=rtpmap:8 PCMA/8000\r\n")


def test_an_appended_codec_takes_a_dynamic_number_when_its_static_one_is_taken() -> None:
    relayed = rewrite_offer(
        sdp("m=audio 4000 RTP/AVP 8 0", "a=rtpmap:8 G722/8000", "a=rtpmap:0 PCMU/8000"),
        address=RELAY,
        port=30000,
        transcode=["PCMA"],
        transcodable=WITH_G722,
    )
    assert relayed.media[0].formats == ["8", "0", "96"]
    assert ("rtpmap", "96 PCMA/8000") in relayed.media[0].attributes


def test_nothing_is_appended_to_an_offer_without_a_codec_we_decode() -> None:
    relayed = rewrite_offer(
        sdp("m=audio 4000 RTP/AVP 96", "a=rtpmap:96 opus/48000/2"),
        address=RELAY,
        port=30000,
        transcode=["PCMU", "PCMA"],
        transcodable=G711,
    )
    assert relayed.media[0].formats == ["96"]


# -- phones as they come: what each one's offer gives the other phone -----------------------


def test_a_stock_pjsua2_offer_loses_the_codecs_the_server_cannot_bridge() -> None:
    """pjsua2 offers speex at three rates, iLBC and GSM before G.711: a callee answering one of
    them could neither be transcoded nor, once the caller has our own answer for ringback, be
    relayed unchanged. Opus, which the caller lacks, is added."""
    relayed = offer_of("pjsua2_2.15_stock_offer.sdp", transcode=EVERY_CODEC, transcodable=WITH_OPUS)
    assert relayed.serialize() == (
        b"v=0\r\n"
        b"o=- 4005194172 4005194172 IN IP4 127.0.0.1\r\n"
        b"s=pjmedia\r\n"
        b"b=AS:84\r\n"
        b"t=0 0\r\n"
        b"a=X-nat:0\r\n"
        b"m=audio 30000 RTP/AVP 0 8 9 120 121 122 96\r\n"
        b"c=IN IP4 203.0.113.5\r\n"
        b"b=TIAS:64000\r\n"
        b"a=sendrecv\r\n"
        b"a=rtpmap:0 PCMU/8000\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:9 G722/8000\r\n"
        b"a=rtpmap:120 telephone-event/16000\r\n"
        b"a=fmtp:120 0-16\r\n"
        b"a=rtpmap:121 telephone-event/8000\r\n"
        b"a=fmtp:121 0-16\r\n"
        b"a=rtpmap:122 telephone-event/32000\r\n"
        b"a=fmtp:122 0-16\r\n"
        b"a=rtpmap:96 opus/48000/2\r\n"
        b"a=ssrc:1375561853 cname:712d725f1968cae9\r\n"
    )


def test_a_stock_pjsua2_offer_to_a_server_with_g711_alone() -> None:
    relayed = offer_of("pjsua2_2.15_stock_offer.sdp", transcode=("PCMU", "PCMA"), transcodable=G711)
    assert relayed.media[0].formats == ["0", "8", "120", "121", "122"]


def test_a_stock_baresip_offer_gets_the_other_transcodable_codecs_appended() -> None:
    relayed = offer_of("baresip_1.0_default_offer.sdp", transcode=EVERY_CODEC, transcodable=WITH_OPUS)
    media = relayed.media[0]
    assert media.formats == ["0", "8", "101", "9", "96"]
    assert relayed.serialize().split(b"a=rtpmap:0 ", 1)[1] == (
        b"PCMU/8000\r\n"
        b"a=rtpmap:8 PCMA/8000\r\n"
        b"a=rtpmap:101 telephone-event/8000\r\n"
        b"a=fmtp:101 0-15\r\n"
        b"a=rtpmap:9 G722/8000\r\n"
        b"a=rtpmap:96 opus/48000/2\r\n"
        b"a=sendrecv\r\n"
        b"a=label:1\r\n"
        b"a=rtcp-rsize\r\n"
        b"a=ssrc:783635213 cname:sip:1001@127.0.0.1:54947\r\n"
        b"a=minptime:20\r\n"
        b"a=ptime:20\r\n"
    )


def test_a_g722_only_phone_lets_a_g711_or_opus_phone_answer() -> None:
    relayed = offer_of("pjsua2_2.15_g722_offer.sdp", transcode=EVERY_CODEC, transcodable=WITH_OPUS)
    assert relayed.media[0].formats == ["9", "120", "0", "8", "96"]


def test_an_opus_only_phone_lets_a_g711_or_g722_phone_answer() -> None:
    relayed = offer_of("baresip_1.0_opus_offer.sdp", transcode=EVERY_CODEC, transcodable=WITH_OPUS)
    media = relayed.media[0]
    assert media.formats == ["96", "101", "0", "8", "9"]
    assert media.fmtp()[96] == "stereo=1;sprop-stereo=1"


def test_an_opus_only_offer_stays_as_it_is_without_an_opus_library() -> None:
    """Nothing in it can be transcoded: only a callee with Opus can take it, relayed unchanged."""
    relayed = offer_of("baresip_1.0_opus_offer.sdp", transcode=EVERY_CODEC, transcodable=WITH_G722)
    assert relayed.media[0].formats == ["96", "101"]


def test_the_lines_of_a_codec_left_out_go_with_it() -> None:
    relayed = offer_of("linphone_offer.sdp")  # opus, speex at 16 and 8 kHz, G.729 annex B: no library
    media = relayed.media[0]
    assert media.formats == ["0", "8", "101", "99", "100"]
    assert [value for name, value in media.attributes if name in ("rtpmap", "fmtp")] == [
        "101 telephone-event/48000", "99 telephone-event/16000", "100 telephone-event/8000"]
    assert ("rtcp-fb", "* trr-int 1000") in media.attributes


def test_only_the_codecs_of_the_request_are_appended() -> None:
    relayed = offer_of("pjsua2_2.15_g722_offer.sdp", transcode=("PCMA",), transcodable=WITH_OPUS)
    assert relayed.media[0].formats == ["9", "120", "8"]


def test_offer_drops_what_would_lead_past_the_relay() -> None:
    relayed = rewrite_offer(
        sdp(
            "a=ice-lite",
            "m=audio 4000 RTP/AVP 0",
            "a=rtcp:4001 IN IP4 10.0.0.9",
            "a=rtcp-mux",
            "a=ice-ufrag:abcd",
            "a=ice-pwd:secretsecretsecretsecret",
            "a=candidate:1 1 UDP 2130706431 10.0.0.9 4000 typ host",
            "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
            "a=sendonly",
        ),
        address=RELAY,
        port=30000,
        transcode=[],
        transcodable=G711,
    )
    assert relayed.attributes == []
    assert relayed.media[0].attributes == [("sendonly", None)]


def test_pjsua2_rtcp_attribute_is_dropped_and_the_media_level_connection_rewritten() -> None:
    relayed = offer_of("pjsua2_2.15_offer.sdp", transcodable=WITH_G722)
    media = relayed.media[0]
    assert str(media.connection) == f"IN IP4 {RELAY}"
    assert all(name != "rtcp" for name, _ in media.attributes)
    assert media.formats == ["9", "8", "0", "101", "102"]  # no Opus library: Opus is left out


def test_only_the_first_audio_stream_is_relayed() -> None:
    relayed = offer_of("linphone_offer.sdp", transcodable=WITH_OPUS)
    assert [media.port for media in relayed.media] == [30000, 0]
    assert relayed.media[1].formats == fixture("linphone_offer.sdp").media[1].formats


def test_an_rfc2543_hold_stays_a_hold() -> None:
    relayed = offer_of("rfc2543_hold_c0.sdp")
    assert relayed.media_connection(0).address == "0.0.0.0"
    info = stream_info(fixture("rfc2543_hold_c0.sdp"), 0)
    assert info.on_hold and info.rtp_address is None


@pytest.mark.parametrize("name", ["polycom_vvx_hold.sdp", "rfc2543_hold_c0.sdp"])
def test_hold_is_recognised(name: str) -> None:
    description = fixture(name)
    assert stream_info(description, audio_stream_index(description)).on_hold


def test_recvonly_is_a_hold_for_the_timeout_too() -> None:
    assert stream_info(sdp("m=audio 4000 RTP/AVP 0", "a=recvonly"), 0).on_hold


def test_stream_info_reads_the_addresses() -> None:
    info = stream_info(fixture("pjsua2_2.15_offer.sdp"), 0)
    assert info.rtp_address == ("192.168.1.20", 4000)
    assert info.rtcp_address == ("192.168.1.20", 4001)
    assert not info.on_hold
    assert stream_info(fixture("polycom_vvx_offer.sdp"), 0).rtcp_address == ("10.0.0.50", 2223)


def test_an_offer_without_audio_is_refused() -> None:
    with pytest.raises(NegotiationError, match="bad sdp: no audio stream"):
        offer_of("t38_reinvite.sdp")


def test_answer_with_a_codec_the_offerer_has_is_passthrough_in_the_offerers_numbers() -> None:
    offer = sdp(
        "m=audio 4000 RTP/AVP 96 0 8 101",
        "a=rtpmap:96 opus/48000/2",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
    )
    answer = sdp(
        "m=audio 5000 RTP/AVP 8 100",
        "a=rtpmap:100 telephone-event/8000",
        "a=fmtp:100 0-15",
        "a=ptime:20",
        "a=sendrecv",
    )
    outcome = rewrite_answer(answer, offer, address=RELAY, port=31000, transcodable=G711)
    media = outcome.sdp.media[0]
    assert (outcome.offerer_payload_type, outcome.answerer_payload_type, outcome.transcoding) == (8, 8, False)
    assert media.port == 31000 and media.formats == ["8", "101"]
    assert media.rtpmap()[101].encoding == "telephone-event" and media.fmtp() == {101: "0-15"}
    assert ("ptime", "20") in media.attributes and media.direction is Direction.SENDRECV
    assert outcome.sdp.origin == answer.origin


def test_answer_with_a_codec_the_offerer_lacks_is_transcoded_from_the_offerers_first_codec() -> None:
    offer = sdp("m=audio 4000 RTP/AVP 18 0", "a=rtpmap:18 G729/8000")
    answer = sdp("m=audio 5000 RTP/AVP 8")
    outcome = rewrite_answer(answer, offer, address=RELAY, port=31000, transcodable=G711)
    assert (outcome.offerer_payload_type, outcome.answerer_payload_type, outcome.transcoding) == (0, 8, True)
    assert outcome.sdp.media[0].formats == ["0"]
    assert outcome.sdp.media[0].rtpmap()[0].encoding == "PCMU"


def test_answer_without_a_way_between_the_codecs_is_refused() -> None:
    offer = sdp("m=audio 4000 RTP/AVP 18", "a=rtpmap:18 G729/8000")
    with pytest.raises(NegotiationError, match="no common codec"):
        rewrite_answer(sdp("m=audio 5000 RTP/AVP 8"), offer, address=RELAY, port=31000, transcodable=G711)


def test_answer_rejects_the_streams_that_are_not_relayed() -> None:
    offer = fixture("linphone_offer.sdp")
    answer = sdp(
        "m=audio 5000 RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/8000",
        "m=video 0 RTP/AVP 96",
        "a=rtpmap:96 VP8/90000",
    )
    outcome = rewrite_answer(answer, offer, address=RELAY, port=31000, transcodable=G711)
    assert [media.port for media in outcome.sdp.media] == [31000, 0]
    # linphone offers telephone-event at 48000, 16000 and 8000 (as 100): the answer's rate is kept
    assert outcome.sdp.media[0].formats == ["0", "100"]


# -- answers of phones as they come ---------------------------------------------------------


def test_a_stock_pjsua2_answer_to_a_stock_pjsua2_offer_is_passed_through() -> None:
    """The callee answers the first codec of our offer it has (PCMU, the caller's first one the
    server can bridge): the same codec both ways."""
    outcome = rewrite_answer(fixture("pjsua2_2.15_stock_answer.sdp"), fixture("pjsua2_2.15_stock_offer.sdp"),
                             address=RELAY, port=31000, transcodable=WITH_OPUS)
    assert (outcome.offerer_payload_type, outcome.answerer_payload_type, outcome.transcoding) == (0, 0, False)
    assert outcome.sdp.media[0].formats == ["0", "121"]
    assert outcome.sdp.media[0].rtpmap()[121].clock_rate == 8000


def test_an_opus_only_answer_is_transcoded_from_the_offerers_first_codec_the_server_has() -> None:
    """baresip lists telephone-event before Opus in its answer."""
    outcome = rewrite_answer(fixture("baresip_1.0_opus_answer.sdp"), fixture("pjsua2_2.15_stock_offer.sdp"),
                             address=RELAY, port=31000, transcodable=WITH_OPUS)
    assert (outcome.offerer_payload_type, outcome.answerer_payload_type, outcome.transcoding) == (0, 96, True)
    assert outcome.sdp.media[0].formats == ["0", "121"]


def test_of_the_codecs_an_answer_lists_the_one_the_offerer_has_is_used() -> None:
    offer = sdp("m=audio 4000 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000")
    answer = sdp("m=audio 5000 RTP/AVP 96 0 101", "a=rtpmap:96 opus/48000/2",
                 "a=rtpmap:101 telephone-event/8000")
    outcome = rewrite_answer(answer, offer, address=RELAY, port=31000, transcodable=WITH_OPUS)
    assert (outcome.offerer_payload_type, outcome.answerer_payload_type, outcome.transcoding) == (0, 0, False)


def test_an_answer_with_codecs_the_server_does_not_have_is_passed_through_when_offered() -> None:
    """Two phones sharing only a codec the server cannot decode: it is relayed unchanged."""
    offer = sdp("m=audio 4000 RTP/AVP 97", "a=rtpmap:97 speex/16000")
    answer = sdp("m=audio 5000 RTP/AVP 96", "a=rtpmap:96 speex/16000")
    outcome = rewrite_answer(answer, offer, address=RELAY, port=31000, transcodable=WITH_OPUS)
    assert (outcome.offerer_payload_type, outcome.answerer_payload_type) == (97, 96)
    assert not outcome.transcoding


def test_our_own_answer_to_a_stock_pjsua2_offer_is_its_first_codec_the_server_has() -> None:
    outcome = answer_ourselves(fixture("pjsua2_2.15_stock_offer.sdp"), address=RELAY, port=31000,
                               transcodable=WITH_OPUS)
    assert outcome.sdp.media[0].formats == ["0", "121"]
    outcome = answer_ourselves(fixture("baresip_1.0_opus_offer.sdp"), address=RELAY, port=31000,
                               transcodable=WITH_OPUS)
    assert outcome.sdp.media[0].formats == ["96"]  # its telephone-event is at 8000 Hz, not Opus's 48000
    with pytest.raises(NegotiationError, match="no common codec"):
        answer_ourselves(fixture("baresip_1.0_opus_offer.sdp"), address=RELAY, port=31000, transcodable=G711)


@pytest.mark.parametrize(
    ("payloads", "shared", "chosen"),
    [
        ("0 8", {("PCMA", 8000, 1)}, 8),  # the other phone's codec, though not first
        ("101 96 0", {("PCMU", 8000, 1)}, 0),  # telephone-event first, as baresip answers
        ("101 96 0", set(), 96),  # no codec in common: the first the server transcodes
        ("97 0", set(), 0),  # speex: not transcoded
        ("97 101", set(), None),
        ("97 101", {("SPEEX", 16000, 1)}, 97),
    ],
)
def test_pick_codec(payloads: str, shared: set[tuple[str, int, int]], chosen: int | None) -> None:
    media = sdp(f"m=audio 5000 RTP/AVP {payloads}", "a=rtpmap:96 opus/48000/2", "a=rtpmap:97 speex/16000",
                "a=rtpmap:101 telephone-event/8000").media[0]
    assert pick_codec(media.rtpmap(), shared=shared, transcodable=WITH_OPUS) == chosen
