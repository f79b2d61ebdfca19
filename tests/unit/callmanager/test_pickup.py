"""Call pickup in the Call Manager (issue 13): group pickup (*8) and directed pickup (**200) of a
call ringing a colleague's phone, the ringing phone's CANCEL with its Reason, the caller and
the picker answered (and their media on one media server), the refusals, and the hand-over of a
pickup INVITE between workers (`callmanager.pickup`)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.callmanager.pickup import COMPLETED_ELSEWHERE, PBX_PICKUP_TRIED, answer_for_picker
from pbx_services.callmanager.workers import WorkerPlace
from pbx_services.cluster.events import Disposition, HangupBy
from pbx_services.cluster.feature_codes import FeatureCodeService
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.ring_groups import RingGroupService
from pbx_services.cluster.servers import ServerEntry
from pbx_services.cluster.users import UserService
from pbx_services.media.negotiation import NegotiationError
from pbx_services.sip.message import SipRequest, parse_message
from pbx_services.sip.sdp import SessionDescription

from .conftest import DOMAIN, OTHER_DOMAIN, SDP_OFFER, OutgoingCall, Pbx, Phone, registered
from .test_joins import QUEUE_ADDRESS, queue_invite

PICKER_OFFER = (b"v=0\r\no=carol 3 3 IN IP4 10.0.0.3\r\ns=-\r\nc=IN IP4 10.0.0.3\r\nt=0 0\r\n"
                b"m=audio 6000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n"
                b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\n")


@pytest.fixture
def carol(pbx: Pbx) -> Phone:
    return registered(pbx, "300", "10.0.0.3")


def ringing(alice: Phone, bob: Phone) -> tuple[OutgoingCall, SipRequest]:
    """Alice calls Bob, whose phone rings: Alice's call and Bob's INVITE."""
    call = alice.call("200")
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 180, to_tag="bob-ring"))
    alice.pop_response(180)
    return call, invite


@pytest.mark.parametrize("code", ["*8", "**200"])
def test_a_pickup_answers_the_ringing_call_and_cancels_the_phone(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, code: str) -> None:
    alice_call, invite = ringing(alice, bob)

    carol_call = carol.call(code)

    cancel = bob.pop_request("CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.headers.get("Reason") == COMPLETED_ELSEWHERE
    bob.send(bob.respond(cancel, 200))
    bob.send(bob.respond(invite, 487, to_tag="bob-ring"))
    picked = carol.pop_response(200)
    answer = alice.pop_response(200)
    assert picked.body == answer.body == SDP_OFFER  # no media server: each gets the other's SDP
    assert picked.to.tag and picked.contacts
    # Both ACK; Carol hangs up: Alice gets the BYE, and the CDR names Carol as the callee.
    alice_dialog = alice.dialog_from_answer(alice_call, answer)
    alice.ack_2xx(alice_dialog, answer.cseq.seq)
    carol_dialog = carol.dialog_from_answer(carol_call, picked)
    carol.ack_2xx(carol_dialog, picked.cseq.seq)
    carol.send(carol_dialog.request(carol, "BYE"))
    assert carol.pop_response(200)
    alice.pop_request("BYE")
    [cdr] = pbx.cdrs
    assert (cdr.caller, cdr.callee, cdr.dialed, cdr.disposition, cdr.hangup_by) == (
        "100", "300", "200", Disposition.ANSWERED, HangupBy.CALLEE)


def test_nothing_ringing_is_480_and_a_directed_pickup_of_nobody_404(pbx: Pbx, carol: Phone) -> None:
    carol.call("*8")
    carol.pop_response(100)
    assert carol.pop_response().status_code == 480

    carol.call("**999")
    carol.pop_response(100)
    refused = carol.pop_response()
    assert (refused.status_code, refused.reason) == (404, "No Such Extension")


def test_an_answered_call_and_a_call_not_yet_ringing_are_not_picked_up(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone) -> None:
    alice.call("200")
    bob.pop_request("INVITE")  # no 180 yet: not ringing

    carol.call("*8")
    carol.pop_response(100)
    assert carol.pop_response().status_code == 480
    bob.assert_silent()


def test_group_pickup_stays_in_the_picker_s_group(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone,
                                                 sessions: sessionmaker[Session]) -> None:
    UserService(sessions=sessions, default_domain=DOMAIN).set_user("300", pickup_group="sales")
    ringing(alice, bob)

    carol.call("*8")
    carol.pop_response(100)
    assert carol.pop_response().status_code == 480  # Bob is in the default group, Carol in sales

    carol.call("**200")  # a directed pickup knows no groups
    assert carol.pop_response(200)


@pytest.mark.parametrize("code", ["*8", "**200"])
def test_a_ring_group_s_call_is_picked_up_from_the_member_it_rings(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, sessions: sessionmaker[Session], code: str) -> None:
    RingGroupService(sessions=sessions, default_domain=DOMAIN).add_group("600", members=["200"])
    alice.call("600")
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 180, to_tag="bob-ring"))

    carol.call(code)

    assert bob.pop_request("CANCEL").headers.get("Reason") == COMPLETED_ELSEWHERE
    assert carol.pop_response(200)


def test_a_queue_s_ring_of_an_agent_is_left_to_the_agent(pbx: Pbx, bob: Phone, carol: Phone) -> None:
    pbx.core.app_servers.update_servers([ServerEntry(
        name="queue1", role=ServerRole.QUEUE, host=QUEUE_ADDRESS[0], port=QUEUE_ADDRESS[1], workers=1,
        weight=1, enabled=True)], pbx.now)
    queue = pbx.phone("700", *QUEUE_ADDRESS)
    queue.send(queue_invite(queue, "200")[1])
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 180, to_tag="agent"))

    carol.call("*8")

    carol.pop_response(100)
    assert carol.pop_response().status_code == 480
    bob.assert_silent()


def test_a_call_of_another_tenant_is_never_picked_up(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    other = pbx.phone("500", "10.0.1.5", 5062, password="other-pw-500", domain=OTHER_DOMAIN)
    assert other.register().status_code == 200
    ringing(alice, bob)

    other.call("**200")
    other.pop_response(100)
    assert other.pop_response().status_code == 404  # no 200 in its tenant
    bob.assert_silent()


def test_a_tenant_s_own_pickup_code(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone,
                                    sessions: sessionmaker[Session]) -> None:
    FeatureCodeService(sessions=sessions, default_domain=DOMAIN).set_codes(DOMAIN, ["pickup=*11"])
    pbx.advance(10.0)
    pbx.housekeeping()  # the directory reads the tenants' codes again
    ringing(alice, bob)

    carol.call("*8")  # no longer a feature code: a number nobody has
    carol.pop_response(100)
    assert carol.pop_response().status_code == 404

    carol.call("*11")
    assert carol.pop_response(200)


def test_with_a_media_server_the_picker_gets_its_side_of_the_call(
        make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx(media_servers=1)
    alice, bob, carol = (registered(pbx, ext, ip) for ext, ip in
                         (("100", "10.0.0.1"), ("200", "10.0.0.2"), ("300", "10.0.0.3")))
    alice_call, invite = ringing(alice, bob)

    carol.call("*8", body=PICKER_OFFER)

    bob.pop_request("CANCEL")
    picked = SessionDescription.parse(carol.pop_response(200).body)
    answer = SessionDescription.parse(alice.pop_response(200).body)
    offered_to_bob = SessionDescription.parse(invite.body)
    # Carol is shown the media server's port Bob was offered, with PCMU (what Alice offered) first.
    assert picked.media[0].port == offered_to_bob.media[0].port
    assert picked.media[0].formats[0] == "0"
    assert answer.media[0].port != 6000 and answer.media[0].formats == ["0"]
    node = pbx.media_node_of(alice_call.call_id)
    assert node.core.calls[alice_call.call_id].legs["b"].destination == ("10.0.0.3", 6000)


def test_a_pickup_invite_that_finds_nothing_goes_to_the_next_worker(make_pbx: Callable[..., Pbx]) -> None:
    pbx = make_pbx()
    pbx.restart(WorkerPlace(node="cm1", index=0, count=2))
    carol = pbx.phone("300", "10.0.0.3", 5062)
    invite = (b"INVITE sip:*8@pbx.local SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.3:5062;branch=z9hG4bKpick1\r\n"
              b"Max-Forwards: 70\r\nFrom: <sip:300@pbx.local>;tag=p1\r\nTo: <sip:*8@pbx.local>\r\n"
              b"Call-ID: pick-1\r\nCSeq: 1 INVITE\r\nContact: <sip:300@10.0.0.3:5062>\r\n"
              b"Pbx-Pickup-Tried: \xc2\xb2, x\r\n"  # a phone's (a superscript 2): names no worker
              b"Content-Length: 0\r\n\r\n")

    pbx.receive(invite, carol.address)

    carol.pop_response(100)
    carol.assert_silent()  # not challenged here: worker 1 authenticates it
    [(worker, data, source, transport)] = pbx.core.take_forwards()
    handed = parse_message(data)
    assert (worker, source, transport) == (1, carol.address, "UDP")
    assert handed.headers.get(PBX_PICKUP_TRIED) == "0"

    pbx.restart(WorkerPlace(node="cm1", index=1, count=2))
    pbx.core.receive(data, source, transport, pbx.now, forwarded=True)
    pbx.deliver()
    assert carol.pop_response().status_code == 407  # the last worker: handled here
    assert pbx.core.take_forwards() == []


def test_the_picker_s_answer_keeps_the_codecs_both_have() -> None:
    server = (b"v=0\r\no=- 1 1 IN IP4 192.0.2.50\r\ns=-\r\nc=IN IP4 192.0.2.50\r\nt=0 0\r\n"
              b"m=audio 30002 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
              b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n")
    picker = (b"v=0\r\no=p 1 1 IN IP4 10.0.0.3\r\ns=-\r\nc=IN IP4 10.0.0.3\r\nt=0 0\r\n"
              b"m=audio 6000 RTP/AVP 9 8 0 96\r\na=rtpmap:96 telephone-event/8000\r\n"
              b"m=video 6002 RTP/AVP 97\r\na=rtpmap:97 H264/90000\r\n")
    caller = SDP_OFFER  # PCMU only

    answer = SessionDescription.parse(answer_for_picker(server, picker, caller))

    audio, video = answer.media
    assert audio.formats == ["0", "8", "96"] and audio.port == 30002  # PCMU first: the caller's
    assert audio.fmtp() == {96: "0-15"} and ("sendrecv", None) in audio.attributes
    assert (video.media, video.port) == ("video", 0)
    with pytest.raises(NegotiationError):
        answer_for_picker(server, picker.replace(b"9 8 0 96", b"9").replace(b"a=rtpmap:96 telephone-event"
                                                                          b"/8000\r\n", b""), caller)
