"""A trunk's codecs restrict and order an offer (`callmanager.trunk_codecs`), on the SDP a
stock pjsua2 sends as the media server relays it (PCMU, PCMA, G722 and telephone-events)."""

from __future__ import annotations

from pbx_services.callmanager.trunk_codecs import restrict_offer
from pbx_services.sip.sdp import SessionDescription

OFFER = (b"v=0\r\no=- 1 0 IN IP4 127.0.0.1\r\ns=pbx\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         b"m=audio 40000 RTP/AVP 0 8 9 101 13\r\n"
         b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\n"
         b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=rtcp-fb:* nack\r\na=sendrecv\r\n"
         b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n")


def test_only_the_trunks_codecs_stay_in_its_order_with_telephone_events() -> None:
    restricted = restrict_offer(OFFER, ["pcma", "PCMU"])
    assert restricted is not None
    audio = SessionDescription.parse(restricted).media[0]
    assert audio.formats == ["8", "0", "101", "13"]
    assert ("rtpmap", "9 G722/8000") not in audio.attributes
    assert ("fmtp", "101 0-16") in audio.attributes and ("rtcp-fb", "* nack") in audio.attributes
    assert ("sendrecv", None) in audio.attributes
    assert b"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" in restricted


def test_an_offer_without_any_of_them_gives_none_and_no_list_changes_nothing() -> None:
    assert restrict_offer(OFFER, ["G729"]) is None
    assert restrict_offer(OFFER, []) == OFFER
    assert restrict_offer(b"", ["PCMA"]) == b""
