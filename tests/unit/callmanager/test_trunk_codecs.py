"""A trunk's codecs restrict and order an offer (`callmanager.trunk_codecs`), on the SDP a
stock pjsua2 sends as the media server relays it (PCMU, PCMA, G722 and telephone-events);
a trunk's leg of a call cuts every offer to it (a re-INVITE's too), and keeps its codecs
in the call's record (a takeover)."""

from __future__ import annotations

from pbx_services.callmanager.call import Leg
from pbx_services.callmanager.call_records import _describe_leg, _rebuild_leg
from pbx_services.callmanager.trunk_codecs import restrict_offer
from pbx_services.cluster.events import HangupBy
from pbx_services.sip.dialog import Dialog
from pbx_services.sip.message import SipRequest, make_response
from pbx_services.sip.sdp import SessionDescription
from pbx_services.sip.uri import parse_uri

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


def test_a_trunks_leg_cuts_every_offer_to_it_and_keeps_its_codecs_in_the_call_record() -> None:
    leg = Leg(HangupBy.CALLEE, ("192.0.2.10", 5060), "UDP", codecs=("PCMU",), trunk="pbx.example/provider")

    assert SessionDescription.parse(leg.offer_to(OFFER)).media[0].formats == ["0", "101", "13"]
    assert leg.offer_to(restrict_offer(OFFER, ["G722"]) or b"") == restrict_offer(OFFER, ["G722"])
    assert Leg(HangupBy.CALLER, ("192.0.2.20", 5060), "UDP").offer_to(OFFER) == OFFER

    request = SipRequest("INVITE", parse_uri("sip:0612345678@192.0.2.10"), [
        ("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1"), ("From", "<sip:1001@pbx.example>;tag=a"),
        ("To", "<sip:0612345678@192.0.2.10>"), ("Call-ID", "c1"), ("CSeq", "1 INVITE"),
        ("Contact", "<sip:192.0.2.1:5060>")], b"")
    response = make_response(request, 200, to_tag="b", headers=[("Contact", "<sip:192.0.2.10:5060>")])
    leg.dialog = Dialog.from_uac(request, response)
    rebuilt = _rebuild_leg(_describe_leg(leg))
    assert (rebuilt.codecs, rebuilt.trunk) == (("PCMU",), "pbx.example/provider")
    record = _describe_leg(leg)
    del record["codecs"], record["trunk"]  # a record saved before legs had them
    assert (_rebuild_leg(record).codecs, _rebuild_leg(record).trunk) == ((), None)
