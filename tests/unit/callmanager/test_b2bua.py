"""The B2BUA of a real Call Manager: two byte-level phones call each other through it.

Alice (100) calls Bob (200). Bob registers from behind a NAT: his Contact says
192.168.1.20:5062 but his REGISTER came from 203.0.113.7:40000, where requests to him go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from pbx_services.cluster.events import CallEnded, Disposition, HangupBy
from pbx_services.sip.message import SipRequest, SipResponse
from pbx_services.sip.transaction import T1, T2

from .conftest import (
    SDP_ANSWER,
    SDP_HOLD,
    SDP_OFFER,
    START,
    WALL_OFFSET,
    OutgoingCall,
    Pbx,
    Phone,
    PhoneDialog,
    crlf,
    redact,
)

BOB_CONTACT = "sip:200@192.168.1.20:5062"
BOB_NAT = ("203.0.113.7", 40000)


def wall(now: float) -> datetime:
    return datetime.fromtimestamp(now + WALL_OFFSET, UTC)


@pytest.fixture
def alice(pbx: Pbx) -> Phone:
    phone = pbx.phone("100", "10.0.0.1", 5062)
    assert phone.register().status_code == 200
    return phone


@pytest.fixture
def bob(pbx: Pbx) -> Phone:
    phone = pbx.phone("200", *BOB_NAT)
    assert phone.register(contacts=[f"<{BOB_CONTACT}>"]).status_code == 200
    return phone


@dataclass
class Call:
    """A call from Alice being set up or up: both phones' view of it."""

    outgoing: OutgoingCall
    b_invite: SipRequest
    b_tag: str = "bob-tag-1"
    a_dialog: PhoneDialog | None = None
    b_dialog: PhoneDialog | None = None


def start_call(alice: Phone, bob: Phone, *, body: bytes | None = None) -> Call:
    """Alice dials 200; Bob gets the INVITE. Alice's 100 Trying is checked and gone."""
    outgoing = alice.call("200", body=body)
    assert alice.pop_response(100).status_code == 100
    alice.assert_silent()
    return Call(outgoing, bob.pop_request("INVITE"))


def ring(alice: Phone, bob: Phone, call: Call) -> SipResponse:
    bob.send(bob.respond(call.b_invite, 180, to_tag=call.b_tag))
    return alice.pop_response(180)


def answer(alice: Phone, bob: Phone, call: Call, *, body: bytes = SDP_ANSWER) -> SipResponse:
    """Bob answers; the PBX ACKs him (offer in the INVITE); Alice gets the 200 and ACKs it."""
    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=body))
    call.b_dialog = bob.dialog_from_invite(call.b_invite, call.b_tag)
    ok = alice.pop_response(200)
    call.a_dialog = alice.dialog_from_answer(call.outgoing, ok)
    if call.b_invite.body:
        bob.pop_request("ACK")
    alice.ack_2xx(call.a_dialog, call.outgoing.cseq)
    return ok


def connected(alice: Phone, bob: Phone) -> Call:
    call = start_call(alice, bob)
    ring(alice, bob, call)
    answer(alice, bob, call)
    alice.assert_silent()
    bob.assert_silent()
    return call


def only_cdr(pbx: Pbx) -> CallEnded:
    [cdr] = pbx.cdrs
    return cdr


# -- setting up a call --------------------------------------------------------------------------


def test_an_invite_without_credentials_is_challenged_with_407(pbx: Pbx, alice: Phone) -> None:
    call = OutgoingCall(request_uri="sip:200@pbx.local", call_id="inv-1@10.0.0.1", tag="atag")

    alice.send(alice.invite_request(call, cseq=1))

    trying = alice.pop()
    assert redact(trying.data) == (
        "SIP/2.0 100 Trying\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>\r\n"
        "Call-ID: inv-1@10.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert redact(alice.pop().data) == (
        "SIP/2.0 407 Proxy Authentication Required\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>;tag=<tag>\r\n"
        "Call-ID: inv-1@10.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        'Proxy-Authenticate: Digest realm="pbx.local", nonce="<nonce>", algorithm=SHA-256, qop="auth"\r\n'
        'Proxy-Authenticate: Digest realm="pbx.local", nonce="<nonce>", algorithm=MD5, qop="auth"\r\n'
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert pbx.unrouted == []
    assert pbx.core.b2bua.calls == set()


def test_an_authenticated_invite_goes_to_the_callees_binding_with_a_new_call_id(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    outgoing = alice.call("200")

    trying = alice.pop_response(100)
    assert trying.cseq.seq == 2
    alice.assert_silent()
    received = bob.pop()
    invite = received.message
    assert isinstance(invite, SipRequest)
    assert received.transmit.destination == BOB_NAT
    assert invite.call_id != outgoing.call_id
    assert redact(received.data, call_id=invite.call_id) == (
        f"INVITE {BOB_CONTACT} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 69\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>\r\n"
        "Call-ID: <call-id>\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:192.0.2.10:5060>\r\n"
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY, SUBSCRIBE\r\n"
        "User-Agent: pbx-services\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP_OFFER)}\r\n\r\n" + SDP_OFFER.decode()
    )
    # The caller's own tag and Call-ID stay on its leg.
    assert invite.from_.tag != outgoing.tag
    assert len(pbx.core.b2bua.calls) == 1


def test_the_callees_ringing_is_relayed_with_our_to_tag(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)

    bob.send(bob.respond(call.b_invite, 180, to_tag=call.b_tag))

    received = alice.pop()
    assert redact(received.data) == (
        "SIP/2.0 180 Ringing\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>;tag=<tag>\r\n"
        f"Call-ID: {call.outgoing.call_id}\r\n"
        "CSeq: 2 INVITE\r\n"
        "Contact: <sip:192.0.2.10:5060>\r\n"
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    ringing = received.message
    assert received.transmit.destination == ("10.0.0.1", 5062)
    assert ringing.from_.tag == call.outgoing.tag
    assert ringing.to.tag not in (None, call.b_tag)


def test_early_media_is_relayed_with_its_sdp(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)

    bob.send(bob.respond(call.b_invite, 183, to_tag=call.b_tag, body=SDP_ANSWER))

    progress = alice.pop_response(183)
    assert progress.body == SDP_ANSWER
    assert progress.headers.get("Content-Type") == "application/sdp"


def test_the_answer_is_relayed_and_both_sides_are_acked(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    ringing = ring(alice, bob, call)

    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))

    ok = alice.pop()
    assert redact(ok.data) == (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>;tag=<tag>\r\n"
        f"Call-ID: {call.outgoing.call_id}\r\n"
        "CSeq: 2 INVITE\r\n"
        "Contact: <sip:192.0.2.10:5060>\r\n"
        "Content-Type: application/sdp\r\n"
        "Server: pbx-services\r\n"
        f"Content-Length: {len(SDP_ANSWER)}\r\n\r\n" + SDP_ANSWER.decode()
    )
    assert ok.message.to.tag == ringing.to.tag
    ack = bob.pop()
    assert ack.transmit.destination == BOB_NAT
    assert redact(ack.data, call_id=call.b_invite.call_id) == (
        # The Request-URI is the Contact of Bob's 200 (RFC 3261 13.2.2.4).
        "ACK sip:200@203.0.113.7:40000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>;tag=<tag>\r\n"
        "Call-ID: <call-id>\r\n"
        "CSeq: 1 ACK\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert ack.message.to.tag == call.b_tag
    assert ack.message.from_.tag == call.b_invite.from_.tag
    assert pbx.cdrs == []


def test_after_the_callers_ack_nothing_more_is_sent(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    connected(alice, bob)

    pbx.advance(64 * T1 + 10)

    alice.assert_silent()
    bob.assert_silent()
    assert pbx.cdrs == []
    assert len(pbx.core.b2bua.calls) == 1


def test_the_ring_timer_stops_when_the_call_is_answered(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(no_answer_timeout=20)
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register()
    bob = pbx.phone("200", *BOB_NAT)
    bob.register()
    connected(alice, bob)

    pbx.advance(30)

    alice.assert_silent()
    bob.assert_silent()


def test_bye_from_the_callee_ends_the_call(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    answered_at = pbx.now
    pbx.advance(42)
    assert call.b_dialog is not None and call.a_dialog is not None

    bob.send(call.b_dialog.request(bob, "BYE"))

    ok = bob.pop_response(200)
    assert ok.cseq.method == "BYE"
    bye = alice.pop()
    assert bye.transmit.destination == ("10.0.0.1", 5062)
    assert redact(bye.data) == (
        "BYE sip:100@10.0.0.1:5062 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:200@pbx.local>;tag=<tag>\r\n"
        'To: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        f"Call-ID: {call.outgoing.call_id}\r\n"
        "CSeq: 1 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert isinstance(bye.message, SipRequest)
    assert bye.message.from_.tag == call.a_dialog.remote_tag
    assert bye.message.to.tag == call.outgoing.tag
    alice.send(alice.respond(bye.message, 200))
    alice.assert_silent()
    assert only_cdr(pbx) == CallEnded(
        call_id=call.outgoing.call_id, tenant_id=1, caller="100", callee="200", caller_ip="10.0.0.1",
        start_time=only_cdr(pbx).start_time, answer_time=wall(answered_at), end_time=wall(pbx.now),
        disposition=Disposition.ANSWERED, sip_code=200, hangup_by=HangupBy.CALLEE)
    assert only_cdr(pbx).start_time <= wall(answered_at)
    assert pbx.core.b2bua.calls == set()


def test_bye_from_the_caller_ends_the_call(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None

    alice.send(call.a_dialog.request(alice, "BYE"))

    assert alice.pop_response(200).cseq.method == "BYE"
    bye = bob.pop()
    assert bye.transmit.destination == BOB_NAT
    assert redact(bye.data, call_id=call.b_invite.call_id) == (
        "BYE sip:200@203.0.113.7:40000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>;tag=<tag>\r\n"
        "Call-ID: <call-id>\r\n"
        "CSeq: 2 BYE\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.sip_code, cdr.hangup_by) == (Disposition.ANSWERED, 200, HangupBy.CALLER)


def test_a_request_in_an_ended_call_gets_481(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None and call.b_dialog is not None
    alice.send(call.a_dialog.request(alice, "BYE"))
    alice.pop_response(200)
    bob.pop_request("BYE")

    bob.send(call.b_dialog.request(bob, "BYE"))

    assert bob.pop_response().status_code == 481
    assert len(pbx.cdrs) == 1


def test_the_callees_retransmitted_200_is_acked_again(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    ok = bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER)

    bob.send(ok)
    first = bob.pop_request("ACK")
    pbx.advance(64 * T1 + 1)  # the INVITE client transaction is gone by now
    bob.send(ok)

    assert bob.pop().data == first.serialize()
    alice.assert_silent()


def test_a_late_offer_goes_to_the_callee_in_the_ack(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob, body=b"")
    assert call.b_invite.body == b""
    assert call.b_invite.headers.get("Content-Type") is None

    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_OFFER))

    ok = alice.pop_response(200)
    assert ok.body == SDP_OFFER
    bob.assert_silent()  # no ACK before the caller's answer
    a_dialog = alice.dialog_from_answer(call.outgoing, ok)
    alice.ack_2xx(a_dialog, call.outgoing.cseq, body=SDP_ANSWER)
    ack = bob.pop_request("ACK")
    assert ack.body == SDP_ANSWER
    assert ack.headers.get("Content-Type") == "application/sdp"
    assert ack.cseq.seq == 1


# -- calls that do not happen -------------------------------------------------------------------


def test_cancel_before_the_answer(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    ring(alice, bob, call)
    pbx.advance(5)

    alice.cancel(call.outgoing)

    cancel_ok = alice.pop()
    assert redact(cancel_ok.data) == (
        "SIP/2.0 200 OK\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>\r\n"
        f"Call-ID: {call.outgoing.call_id}\r\n"
        "CSeq: 2 CANCEL\r\n"
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    terminated = alice.pop_response(487)
    assert terminated.cseq.method == "INVITE"
    assert terminated.to.tag is not None
    cancel = bob.pop()
    assert cancel.transmit.destination == BOB_NAT
    assert redact(cancel.data, call_id=call.b_invite.call_id) == (
        f"CANCEL {BOB_CONTACT} SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>\r\n"
        "Call-ID: <call-id>\r\n"
        "CSeq: 1 CANCEL\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert isinstance(cancel.message, SipRequest)
    assert cancel.message.top_via.branch == call.b_invite.top_via.branch
    # Bob answers the CANCEL and ends his INVITE with 487, which the PBX ACKs.
    bob.send(bob.respond(cancel.message, 200))
    bob.send(bob.respond(call.b_invite, 487, to_tag=call.b_tag))
    ack = bob.pop_request("ACK")
    assert ack.top_via.branch == call.b_invite.top_via.branch
    assert ack.to.tag == call.b_tag
    alice.ack_failure(call.outgoing, terminated)
    alice.assert_silent()
    bob.assert_silent()
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.sip_code, cdr.hangup_by, cdr.answer_time) == (
        Disposition.CANCELLED, 487, None, None)
    assert cdr.end_time == wall(pbx.now)
    assert pbx.core.b2bua.calls == set()


def test_cancel_before_any_provisional_waits_for_one(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    """RFC 3261 9.1: no CANCEL before a provisional response arrived."""
    call = start_call(alice, bob)

    alice.cancel(call.outgoing)

    assert alice.pop_response(200).cseq.method == "CANCEL"
    assert alice.pop_response(487).cseq.method == "INVITE"
    bob.assert_silent()
    bob.send(bob.respond(call.b_invite, 180, to_tag=call.b_tag))
    assert bob.pop_request("CANCEL").top_via.branch == call.b_invite.top_via.branch
    alice.assert_silent()  # the 180 is not relayed on a cancelled call


def test_more_provisionals_after_the_cancel_send_no_second_cancel(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    ring(alice, bob, call)
    alice.cancel(call.outgoing)
    bob.pop_request("CANCEL")

    bob.send(bob.respond(call.b_invite, 183, to_tag=call.b_tag, body=SDP_ANSWER))

    bob.assert_silent()


def test_busy_callee(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    ring(alice, bob, call)

    bob.send(bob.respond(call.b_invite, 486, to_tag=call.b_tag))

    ack = bob.pop_request("ACK")
    assert ack.top_via.branch == call.b_invite.top_via.branch
    busy = alice.pop()
    assert redact(busy.data) == (
        "SIP/2.0 486 Busy Here\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>;tag=<tag>\r\n"
        f"Call-ID: {call.outgoing.call_id}\r\n"
        "CSeq: 2 INVITE\r\n"
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )
    assert isinstance(busy.message, SipResponse)
    alice.ack_failure(call.outgoing, busy.message)
    pbx.advance(64 * T1)
    alice.assert_silent()  # ACKed: no retransmission of the 486
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.sip_code, cdr.hangup_by, cdr.answer_time) == (
        Disposition.BUSY, 486, None, None)


def test_an_unacked_failure_is_retransmitted(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 603, to_tag=call.b_tag))
    bob.pop_request("ACK")
    first = alice.pop()
    assert first.message.status_code == 603  # type: ignore[union-attr]

    pbx.advance(T1)

    assert alice.pop().data == first.data
    assert only_cdr(pbx).disposition is Disposition.FAILED
    assert only_cdr(pbx).sip_code == 603


def test_an_unknown_extension_gets_404(pbx: Pbx, alice: Phone) -> None:
    alice.call("555")

    assert alice.pop_response(100)
    response = alice.pop_response(404)
    assert response.to.tag is not None
    assert pbx.cdrs == []
    assert pbx.core.b2bua.calls == set()


def test_an_extension_of_another_tenant_is_not_found(pbx: Pbx, alice: Phone) -> None:
    other = pbx.phone("500", "10.0.0.9", 5062, password="other-pw-500", domain="other.example")
    assert other.register().status_code == 200

    alice.call("500")

    alice.pop_response(100)
    assert alice.pop_response().status_code == 404
    other.assert_silent()


def test_a_call_naming_another_tenants_domain_is_refused(pbx: Pbx, alice: Phone) -> None:
    other = pbx.phone("500", "10.0.0.9", 5062, password="other-pw-500", domain="other.example")
    assert other.register().status_code == 200

    alice.call("500", host="other.example")

    alice.pop_response(100)
    refused = alice.pop_response()
    assert (refused.status_code, refused.reason) == (403, "Callee In Another Tenant")
    other.assert_silent()


def test_a_call_to_the_pbx_address_stays_in_the_callers_tenant(pbx: Pbx, alice: Phone) -> None:
    other = pbx.phone("100", "10.0.0.9", 5062, password="other-pw-100", domain="other.example")
    assert other.register().status_code == 200

    other.call("100", host="192.0.2.10")  # other.example's 100 calls itself, not pbx.local's 100

    other.pop_response(100)
    assert other.pop_request("INVITE").uri is not None
    alice.assert_silent()


def test_a_call_from_an_unknown_domain_is_refused_unchallenged(pbx: Pbx) -> None:
    stranger = pbx.phone("100", "10.0.0.7", 5062, domain="nowhere.example")
    call = OutgoingCall(request_uri="sip:200@nowhere.example", call_id="stranger-1@phone", tag="stag")

    stranger.send(stranger.invite_request(call, cseq=1))

    refused = stranger.pop_response()
    assert (refused.status_code, refused.reason) == (403, "Unknown Domain")


def test_an_extension_with_no_binding_gets_480(pbx: Pbx, alice: Phone) -> None:
    alice.call("300")

    assert alice.pop_response(100)
    response = alice.pop_response(480)
    assert response.reason == "Temporarily Unavailable"
    assert pbx.cdrs == []


def test_an_extension_whose_binding_expired_gets_480(pbx: Pbx, alice: Phone) -> None:
    carol = pbx.phone("300", "10.0.0.3", 5062)
    carol.register(expires=60)
    pbx.advance(60)

    alice.call("300")

    alice.pop_response(100)
    assert alice.pop_response().status_code == 480
    carol.assert_silent()


def test_no_answer_timeout_cancels_the_callee_and_answers_480(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(no_answer_timeout=20)
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register()
    bob = pbx.phone("200", *BOB_NAT)
    bob.register()
    call = start_call(alice, bob)
    ring(alice, bob, call)

    pbx.advance(19.9)
    alice.assert_silent()
    bob.assert_silent()
    pbx.advance(0.1)

    cancel = bob.pop()
    assert cancel.time == START + 20
    assert isinstance(cancel.message, SipRequest) and cancel.message.method == "CANCEL"
    no_answer = alice.pop()
    assert redact(no_answer.data).splitlines()[0] == "SIP/2.0 480 No Answer"
    assert no_answer.time == START + 20
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.sip_code, cdr.hangup_by) == (Disposition.NO_ANSWER, 480, None)
    assert cdr.end_time == wall(START + 20)


def test_an_invites_expires_bounds_its_ringing_with_487(make_pbx: Callable[..., Pbx]) -> None:
    """RFC 3261 13.3.1.1: a queue server rings an agent for its ring timeout only."""
    pbx = make_pbx(no_answer_timeout=20)
    alice = pbx.phone("100", "10.0.0.1", 5062)
    alice.register()
    bob = pbx.phone("200", *BOB_NAT)
    bob.register()
    outgoing = alice.call("200", extra=("Expires: 5",))
    assert alice.pop_response(100).status_code == 100
    call = Call(outgoing, bob.pop_request("INVITE"))
    ring(alice, bob, call)

    pbx.advance(5)

    cancel = bob.pop()
    assert isinstance(cancel.message, SipRequest) and cancel.message.method == "CANCEL"
    assert cancel.time == START + 5
    assert redact(alice.pop().data).splitlines()[0] == "SIP/2.0 487 Request Terminated"
    assert only_cdr(pbx).sip_code == 487


def test_a_callee_that_never_answers_at_all_means_480(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    """No provisional, no final: Timer B ends the branch (RFC 3261 17.1.1.2)."""
    start_call(alice, bob)

    pbx.advance(64 * T1)

    assert [r.message.method for r in bob.inbox] == ["INVITE"] * 6  # type: ignore[union-attr]
    assert alice.pop_response().status_code == 480
    assert only_cdr(pbx).disposition is Disposition.NO_ANSWER


def test_max_forwards_zero_gets_483(pbx: Pbx, alice: Phone) -> None:
    call = OutgoingCall(request_uri="sip:200@pbx.local", call_id="loop@10.0.0.1", tag="loop")

    alice.send(alice.invite_request(call, cseq=1, max_forwards=0))

    alice.pop_response(100)
    assert redact(alice.pop().data) == (
        "SIP/2.0 483 Too Many Hops\r\n"
        "Via: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bK<branch>;rport=5062;received=10.0.0.1\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>\r\n"
        "Call-ID: loop@10.0.0.1\r\n"
        "CSeq: 1 INVITE\r\n"
        "Server: pbx-services\r\n"
        "Content-Length: 0\r\n\r\n"
    )


def test_a_body_that_is_not_sdp_gets_415(pbx: Pbx, alice: Phone) -> None:
    alice.send(crlf(
        "INVITE sip:200@pbx.local SIP/2.0\n"
        f"{alice.via()}\n"
        "From: <sip:100@pbx.local>;tag=x\n"
        "To: <sip:200@pbx.local>\n"
        "Call-ID: text@10.0.0.1\n"
        "CSeq: 1 INVITE\n"
        "Contact: <sip:100@10.0.0.1:5062>\n"
        "Content-Type: text/plain\n"
        "Content-Length: 5\n\nhello"))

    alice.pop_response(100)
    response = alice.pop_response(415)
    assert response.headers.get("Accept") == "application/sdp"


def test_an_in_dialog_request_for_an_unknown_dialog_gets_481(pbx: Pbx, alice: Phone) -> None:
    ghost = PhoneDialog(call_id="ghost@10.0.0.1", local_tag="a", remote_tag="b",
                        local_uri="sip:100@pbx.local", remote_uri="sip:200@pbx.local",
                        remote_target="sip:192.0.2.10:5060", cseq=10)

    for method in ("BYE", "INFO", "INVITE", "UPDATE"):
        alice.send(ghost.request(alice, method, contact=method in ("INVITE", "UPDATE")))
        if method == "INVITE":
            alice.pop_response(100)
        response = alice.pop_response()
        assert (response.status_code, response.cseq.method) == (481, method)


def test_an_out_of_dialog_bye_gets_481(pbx: Pbx, alice: Phone) -> None:
    alice.send(crlf(
        "BYE sip:200@pbx.local SIP/2.0\n"
        f"{alice.via()}\n"
        "From: <sip:100@pbx.local>;tag=x\n"
        "To: <sip:200@pbx.local>\n"
        "Call-ID: nodialog@10.0.0.1\n"
        "CSeq: 1 BYE\n"
        "Content-Length: 0\n\n"))

    assert alice.pop_response().status_code == 481


def test_cancel_for_an_unknown_invite_gets_481(pbx: Pbx, alice: Phone) -> None:
    alice.cancel(OutgoingCall(request_uri="sip:200@pbx.local", call_id="nothing@10.0.0.1", tag="t",
                              cseq=1, branch="z9hG4bKnothing"))

    assert alice.pop_response().status_code == 481


def test_cancel_for_an_invite_already_answered_gets_200(pbx: Pbx, alice: Phone) -> None:
    call = OutgoingCall(request_uri="sip:200@pbx.local", call_id="late-cancel@10.0.0.1", tag="t",
                        cseq=1, branch="z9hG4bKlatecancel")
    alice.send(alice.invite_request(call, cseq=1, branch=call.branch))
    alice.pop_response(407)

    alice.cancel(call)

    assert alice.pop_response().status_code == 200


def test_a_retransmitted_invite_while_ringing_gets_the_ringing_again(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    ringing = ring(alice, bob, call)

    alice.send(call.outgoing.invite)

    assert alice.pop_response(180).serialize() == ringing.serialize()
    bob.assert_silent()


def test_a_cancel_after_the_answer_changes_nothing(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)

    alice.cancel(call.outgoing)

    assert alice.pop_response(200).cseq.method == "CANCEL"
    alice.assert_silent()
    bob.assert_silent()
    assert pbx.cdrs == []


def test_a_call_over_tcp_stays_on_tcp(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 40001, transport="TCP")
    bob = pbx.phone("200", "203.0.113.7", 40002, transport="TCP")
    assert alice.register().status_code == 200
    assert bob.register(contacts=["<sip:200@192.168.1.20:5062;transport=tcp>"]).status_code == 200

    call = start_call(alice, bob)

    invite = call.b_invite
    assert invite.top_via.transport == "TCP"
    assert invite.headers.get("Contact") == "<sip:192.0.2.10:5060;transport=tcp>"
    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))
    ack = bob.pop()
    assert (ack.transmit.transport, ack.transmit.destination) == ("TCP", ("203.0.113.7", 40002))
    ok = alice.pop()
    assert (ok.transmit.transport, ok.transmit.destination) == ("TCP", ("10.0.0.1", 40001))
    assert ok.message.headers.get("Contact") == "<sip:192.0.2.10:5060;transport=tcp>"
    pbx.advance(10)
    alice.assert_silent()  # no 2xx retransmission over a reliable transport


def test_a_caller_on_tcp_that_never_acks_is_hung_up_after_64_t1(pbx: Pbx) -> None:
    alice = pbx.phone("100", "10.0.0.1", 40001, transport="TCP")
    bob = pbx.phone("200", "203.0.113.7", 40002, transport="TCP")
    alice.register()
    bob.register()
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))
    bob.pop_request("ACK")
    alice.pop_response(200)

    pbx.advance(64 * T1)

    assert bob.pop_request("BYE")
    assert only_cdr(pbx).hangup_by is HangupBy.SYSTEM


# -- the 2xx the caller does not ACK ------------------------------------------------------------


def test_an_unacked_2xx_is_retransmitted_then_the_call_is_hung_up(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))
    bob.pop_request("ACK")
    answered_at = pbx.now
    first = alice.pop()

    pbx.advance(64 * T1)

    sent = [r for r in alice.inbox if isinstance(r.message, SipResponse)]
    assert all(r.data == first.data for r in sent)
    # T1, 2*T1, 4*T1, then T2 between retransmissions, until 64*T1 (RFC 3261 13.3.1.4).
    assert [r.time - answered_at for r in sent] == [
        T1, 3 * T1, 7 * T1, *[7 * T1 + n * T2 for n in range(1, 8)]]
    assert sent[-1].time - answered_at == 31.5
    requests = [(r.message, r.time) for r in alice.inbox if isinstance(r.message, SipRequest)]
    assert [(request.method, time - answered_at) for request, time in requests] == [("BYE", 64 * T1)]
    assert requests[0][0].call_id == call.outgoing.call_id
    bob_bye = bob.pop()
    assert isinstance(bob_bye.message, SipRequest) and bob_bye.message.method == "BYE"
    assert bob_bye.time - answered_at == 64 * T1
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.sip_code, cdr.hangup_by) == (Disposition.ANSWERED, 200, HangupBy.SYSTEM)
    assert cdr.answer_time == wall(answered_at)
    assert cdr.end_time == wall(answered_at + 64 * T1)


def test_the_ack_stops_the_2xx_retransmissions(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))
    bob.pop_request("ACK")
    ok = alice.pop_response(200)
    pbx.advance(2)
    assert len(alice.inbox) == 2  # at T1 and 3*T1

    alice.inbox.clear()
    alice.ack_2xx(alice.dialog_from_answer(call.outgoing, ok), call.outgoing.cseq)
    pbx.advance(64 * T1)

    alice.assert_silent()
    bob.assert_silent()
    assert pbx.cdrs == []


def test_an_ack_with_another_cseq_does_not_stop_them(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))
    bob.pop_request("ACK")
    ok = alice.pop_response(200)

    alice.ack_2xx(alice.dialog_from_answer(call.outgoing, ok), call.outgoing.cseq + 5)
    pbx.advance(T1)

    assert alice.pop_response(200).cseq.seq == call.outgoing.cseq


# -- re-INVITE and other requests within the call -----------------------------------------------


def test_a_reinvite_from_the_caller_is_relayed_and_answered_back(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None and call.b_dialog is not None

    alice.send(call.a_dialog.request(alice, "INVITE", body=SDP_HOLD, contact=True))

    alice.pop_response(100)
    relayed = bob.pop()
    assert relayed.transmit.destination == BOB_NAT
    assert redact(relayed.data, call_id=call.b_invite.call_id) == (
        "INVITE sip:200@203.0.113.7:40000 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        "To: <sip:200@pbx.local>;tag=<tag>\r\n"
        "Call-ID: <call-id>\r\n"
        "CSeq: 2 INVITE\r\n"
        "Contact: <sip:192.0.2.10:5060>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP_HOLD)}\r\n\r\n" + SDP_HOLD.decode()
    )
    reinvite = relayed.message
    assert isinstance(reinvite, SipRequest)
    bob.send(bob.respond(reinvite, 200, body=SDP_ANSWER))
    ack = bob.pop_request("ACK")
    assert (ack.cseq.seq, ack.call_id) == (2, call.b_invite.call_id)
    ok = alice.pop_response(200)
    assert (ok.cseq.seq, ok.body) == (call.a_dialog.cseq, SDP_ANSWER)
    alice.ack_2xx(call.a_dialog, call.a_dialog.cseq)
    pbx.advance(64 * T1)
    alice.assert_silent()
    bob.assert_silent()
    assert pbx.cdrs == []


def test_a_reinvite_from_the_callee_is_relayed_and_answered_back(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None and call.b_dialog is not None

    bob.send(call.b_dialog.request(bob, "INVITE", body=SDP_HOLD, contact=True))

    bob.pop_response(100)
    relayed = alice.pop()
    assert relayed.transmit.destination == ("10.0.0.1", 5062)
    assert redact(relayed.data) == (
        "INVITE sip:100@10.0.0.1:5062 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:200@pbx.local>;tag=<tag>\r\n"
        'To: "Phone 100" <sip:100@pbx.local>;tag=<tag>\r\n'
        f"Call-ID: {call.outgoing.call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:192.0.2.10:5060>\r\n"
        "Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP_HOLD)}\r\n\r\n" + SDP_HOLD.decode()
    )
    reinvite = relayed.message
    assert isinstance(reinvite, SipRequest)
    alice.send(alice.respond(reinvite, 200, body=SDP_OFFER))
    assert alice.pop_request("ACK").cseq.seq == 1
    ok = bob.pop_response(200)
    assert (ok.cseq.seq, ok.body) == (1, SDP_OFFER)
    assert (ok.from_.tag, ok.to.tag) == (call.b_tag, call.b_invite.from_.tag)
    bob.ack_2xx(call.b_dialog, 1)
    pbx.advance(64 * T1)
    alice.assert_silent()
    bob.assert_silent()


def test_a_rejected_reinvite_is_relayed_back_and_the_call_goes_on(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None and call.b_dialog is not None
    alice.send(call.a_dialog.request(alice, "INVITE", body=SDP_HOLD, contact=True))
    alice.pop_response(100)
    reinvite = bob.pop_request("INVITE")

    bob.send(bob.respond(reinvite, 488))

    assert bob.pop_request("ACK").cseq.seq == reinvite.cseq.seq
    rejected = alice.pop_response(488)
    assert rejected.cseq.seq == call.a_dialog.cseq
    alice.send(call.a_dialog.request(alice, "BYE"))
    alice.pop_response(200)
    assert bob.pop_request("BYE").cseq.seq == reinvite.cseq.seq + 1


def test_a_reinvite_while_another_is_pending_gets_491(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None and call.b_dialog is not None
    alice.send(call.a_dialog.request(alice, "INVITE", body=SDP_HOLD, contact=True))
    alice.pop_response(100)
    bob.pop_request("INVITE")

    bob.send(call.b_dialog.request(bob, "INVITE", body=SDP_HOLD, contact=True))

    bob.pop_response(100)
    assert bob.pop_response().status_code == 491
    alice.assert_silent()


def test_info_is_relayed_with_its_body_and_the_answer_comes_back(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None
    dtmf = b"Signal=5\r\nDuration=160\r\n"
    alice.send(call.a_dialog.request(alice, "INFO", body=dtmf, content_type="application/dtmf-relay"))

    info = bob.pop_request("INFO")
    assert info.body == dtmf
    assert info.headers.get("Content-Type") == "application/dtmf-relay"
    assert info.call_id == call.b_invite.call_id
    bob.send(bob.respond(info, 200))
    ok = alice.pop_response(200)
    assert (ok.cseq.method, ok.cseq.seq) == ("INFO", call.a_dialog.cseq)


def test_an_in_dialog_request_with_a_lower_cseq_gets_500(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None

    alice.send(call.a_dialog.request(alice, "BYE", cseq=1))

    assert alice.pop_response().status_code == 500
    bob.assert_silent()
    assert pbx.cdrs == []


def test_the_route_set_to_the_caller_survives_a_reinvite(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    outgoing = alice.call("200", extra=["Record-Route: <sip:sbc.example;lr>"])
    alice.pop_response(100)
    call = Call(outgoing, bob.pop_request("INVITE"))
    answer(alice, bob, call)
    assert call.b_dialog is not None
    bob.send(call.b_dialog.request(bob, "INVITE", body=SDP_HOLD, contact=True))
    bob.pop_response(100)
    reinvite = alice.pop_request("INVITE")
    assert reinvite.headers.get_all("Route") == ["<sip:sbc.example;lr>"]
    alice.send(alice.respond(reinvite, 200, body=SDP_OFFER))
    alice.pop_request("ACK")
    bob.ack_2xx(call.b_dialog, bob.pop_response(200).cseq.seq)

    bob.send(call.b_dialog.request(bob, "BYE"))

    bob.pop_response(200)
    assert alice.pop_request("BYE").headers.get_all("Route") == ["<sip:sbc.example;lr>"]


# -- forking ------------------------------------------------------------------------------------


@pytest.fixture
def bob_desk_and_mobile(pbx: Pbx) -> tuple[Phone, Phone]:
    desk = pbx.phone("200", "10.0.0.2", 5062)
    mobile = pbx.phone("200", "10.0.0.22", 5080)
    assert desk.register().status_code == 200
    assert mobile.register().status_code == 200
    return desk, mobile


def test_forking_the_first_200_wins_and_the_other_branch_is_cancelled(
        pbx: Pbx, alice: Phone, bob_desk_and_mobile: tuple[Phone, Phone]) -> None:
    desk, mobile = bob_desk_and_mobile
    alice.call("200")
    alice.pop_response(100)
    desk_invite = desk.pop_request("INVITE")
    mobile_invite = mobile.pop_request("INVITE")
    assert desk_invite.call_id == mobile_invite.call_id
    assert desk_invite.from_.tag == mobile_invite.from_.tag
    assert desk_invite.top_via.branch != mobile_invite.top_via.branch
    assert (str(desk_invite.uri), str(mobile_invite.uri)) == (desk.contact_uri, mobile.contact_uri)
    desk.send(desk.respond(desk_invite, 180, to_tag="desk"))
    mobile.send(mobile.respond(mobile_invite, 180, to_tag="mobile"))
    first_ringing = alice.pop_response(180)
    second_ringing = alice.pop_response(180)
    assert first_ringing.to.tag == second_ringing.to.tag

    mobile.send(mobile.respond(mobile_invite, 200, to_tag="mobile", body=SDP_ANSWER))

    assert mobile.pop_request("ACK").to.tag == "mobile"
    cancel = desk.pop_request("CANCEL")
    assert cancel.top_via.branch == desk_invite.top_via.branch
    assert cancel.headers.get("Reason") == 'SIP;cause=200;text="Call completed elsewhere"'
    assert alice.pop_response(200).body == SDP_ANSWER
    desk.send(desk.respond(cancel, 200))
    desk.send(desk.respond(desk_invite, 487, to_tag="desk"))
    assert desk.pop_request("ACK").top_via.branch == desk_invite.top_via.branch
    desk.assert_silent()
    alice.assert_silent()


def test_forking_a_branch_without_provisional_is_cancelled_when_it_rings(
        pbx: Pbx, alice: Phone, bob_desk_and_mobile: tuple[Phone, Phone]) -> None:
    desk, mobile = bob_desk_and_mobile
    alice.call("200")
    alice.pop_response(100)
    desk_invite = desk.pop_request("INVITE")
    mobile_invite = mobile.pop_request("INVITE")

    mobile.send(mobile.respond(mobile_invite, 200, to_tag="mobile", body=SDP_ANSWER))
    mobile.pop_request("ACK")
    alice.pop_response(200)
    desk.assert_silent()
    desk.send(desk.respond(desk_invite, 180, to_tag="desk"))

    assert desk.pop_request("CANCEL").top_via.branch == desk_invite.top_via.branch
    alice.assert_silent()


def test_forking_a_late_200_from_the_losing_branch_is_acked_and_hung_up(
        pbx: Pbx, alice: Phone, bob_desk_and_mobile: tuple[Phone, Phone]) -> None:
    desk, mobile = bob_desk_and_mobile
    alice.call("200")
    alice.pop_response(100)
    desk_invite = desk.pop_request("INVITE")
    mobile_invite = mobile.pop_request("INVITE")
    desk.send(desk.respond(desk_invite, 180, to_tag="desk"))
    mobile.send(mobile.respond(mobile_invite, 200, to_tag="mobile", body=SDP_ANSWER))
    mobile.pop_request("ACK")
    desk.pop_request("CANCEL")

    desk.send(desk.respond(desk_invite, 200, to_tag="desk", body=SDP_ANSWER))

    ack = desk.pop_request("ACK")
    bye = desk.pop_request("BYE")
    assert ack.to.tag == bye.to.tag == "desk"
    mobile.assert_silent()
    alice.pop_response(180)
    alice.pop_response(200)
    alice.assert_silent()
    assert pbx.cdrs == []


def test_forking_every_branch_failing_gives_the_best_failure(
        pbx: Pbx, alice: Phone, bob_desk_and_mobile: tuple[Phone, Phone]) -> None:
    desk, mobile = bob_desk_and_mobile
    alice.call("200")
    alice.pop_response(100)
    desk_invite = desk.pop_request("INVITE")
    mobile_invite = mobile.pop_request("INVITE")

    desk.send(desk.respond(desk_invite, 480, to_tag="desk"))
    alice.assert_silent()
    mobile.send(mobile.respond(mobile_invite, 486, to_tag="mobile"))

    assert alice.pop_response().status_code == 486
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.sip_code) == (Disposition.BUSY, 486)


def test_forking_one_failure_keeps_the_other_branch_ringing(
        pbx: Pbx, alice: Phone, bob_desk_and_mobile: tuple[Phone, Phone]) -> None:
    desk, mobile = bob_desk_and_mobile
    alice.call("200")
    alice.pop_response(100)
    desk_invite = desk.pop_request("INVITE")
    mobile_invite = mobile.pop_request("INVITE")

    desk.send(desk.respond(desk_invite, 486, to_tag="desk"))
    desk.pop_request("ACK")
    mobile.send(mobile.respond(mobile_invite, 200, to_tag="mobile", body=SDP_ANSWER))

    assert alice.pop_response().status_code == 200
    assert pbx.cdrs == []


# -- robustness against a broken peer -----------------------------------------------------------


def test_a_2xx_without_contact_from_the_callee_does_not_escape(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)

    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER, contact=False))

    assert [r.message for r in bob.inbox]  # bob is told something (ACK and BYE, or the like)


def test_an_rfc2543_invite_without_contact_is_served(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    outgoing = OutgoingCall(request_uri="sip:200@pbx.local", call_id="nocontact@10.0.0.1", tag="nc")
    without_contact = alice.invite_request(outgoing, cseq=1).replace(
        b"Contact: <sip:100@10.0.0.1:5062>\r\n", b"")
    alice.send(without_contact)
    alice.pop_response(100)
    challenge = alice.pop_response(407)
    authorized = alice.invite_request(outgoing, cseq=2, authorization=alice.credentials(
        challenge, "INVITE", outgoing.request_uri)).replace(b"Contact: <sip:100@10.0.0.1:5062>\r\n", b"")
    alice.send(authorized)
    alice.pop_response(100)
    invite = bob.pop().message
    assert isinstance(invite, SipRequest) and invite.method == "INVITE"
    bob.send(bob.respond(invite, 200, to_tag="b", body=SDP_ANSWER))

    answers = [r.message for r in alice.inbox if isinstance(r.message, SipResponse)]
    assert [a.status_code for a in answers if a.status_code >= 200] == [200]


# -- more within the call -----------------------------------------------------------------------


def test_a_reinvite_without_sdp_gets_the_answer_in_the_callers_ack(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None

    alice.send(call.a_dialog.request(alice, "INVITE", contact=True))

    alice.pop_response(100)
    reinvite = bob.pop_request("INVITE")
    assert reinvite.body == b""
    bob.send(bob.respond(reinvite, 200, body=SDP_ANSWER))
    ok = alice.pop_response(200)
    assert ok.body == SDP_ANSWER
    bob.assert_silent()  # Bob's ACK waits for Alice's answer
    alice.ack_2xx(call.a_dialog, call.a_dialog.cseq, body=SDP_HOLD)
    ack = bob.pop_request("ACK")
    assert (ack.cseq.seq, ack.body) == (reinvite.cseq.seq, SDP_HOLD)


def test_update_is_relayed_with_its_sdp(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.b_dialog is not None

    bob.send(call.b_dialog.request(bob, "UPDATE", body=SDP_HOLD, contact=True))

    update = alice.pop_request("UPDATE")
    assert update.body == SDP_HOLD
    assert update.headers.get("Contact") == "<sip:192.0.2.10:5060>"
    alice.send(alice.respond(update, 200, body=SDP_OFFER))
    ok = bob.pop_response(200)
    assert (ok.cseq.method, ok.body) == ("UPDATE", SDP_OFFER)


def test_a_timed_out_relayed_request_is_answered_408(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    assert call.b_dialog is not None
    bob.send(crlf(
        f"INFO {call.b_dialog.remote_target} SIP/2.0\n"
        f"{bob.via()}\n"
        f"From: <{call.b_dialog.local_uri}>;tag={call.b_dialog.local_tag}\n"
        f"To: <{call.b_dialog.remote_uri}>;tag={call.b_dialog.remote_tag}\n"
        f"Call-ID: {call.b_dialog.call_id}\n"
        "CSeq: 5 INFO\n"
        "Content-Length: 0\n\n"))
    alice.pop_request("INFO")

    pbx.advance(64 * T1)

    assert bob.pop_response().status_code == 408


def test_bye_from_the_callee_before_the_callers_ack(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))
    bob.pop_request("ACK")
    alice.pop_response(200)
    b_dialog = bob.dialog_from_invite(call.b_invite, call.b_tag)

    bob.send(b_dialog.request(bob, "BYE"))

    bob.pop_response(200)
    alice.pop_request("BYE")
    pbx.advance(64 * T1)
    # The 2xx is no longer retransmitted to a caller the call is over for.
    assert [r.message for r in alice.inbox if isinstance(r.message, SipResponse)] == []
    cdr = only_cdr(pbx)
    assert (cdr.disposition, cdr.hangup_by) == (Disposition.ANSWERED, HangupBy.CALLEE)
