"""Attended transfer (a REFER with Replaces) and the calls a queue server makes, on the byte-level
harness of test_b2bua, with a real (sans-IO) media server.

Phones: Alice (100), Bob (200) and Carol (300). Bob talks to Alice (call 1) and to Carol (call 2)
and joins them. Number 700 is a queue served by the byte-level queue server `queue`: Alice calls
the queue, the queue calls agent Bob (200) as 700 and joins Alice's call to Bob's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

import pytest

from pbx_services.callmanager.directory import Directory
from pbx_services.callmanager.workers import WorkerPlace
from pbx_services.cluster.events import Disposition, HangupBy
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerEntry
from pbx_services.cluster.state.agents import AgentActivity, answered, claim
from pbx_services.cluster.state.errors import StateStoreUnavailable
from pbx_services.sip.headers import PBX_JOIN_TAG, Replaces
from pbx_services.sip.message import SipRequest, SipResponse, parse_message
from pbx_services.sip.transaction import make_cancel

from .conftest import (
    MEDIA_HOST,
    SDP_ANSWER,
    SDP_HOLD,
    SDP_OFFER,
    OutgoingCall,
    Pbx,
    Phone,
    PhoneDialog,
    crlf,
    registered,
    unique,
)
from .test_anchoring import media_of
from .test_transfer import CAROL_SDP, notified, with_headers

QUEUE_ADDRESS = ("192.0.2.91", 5110)
QUEUE_SDP = SDP_OFFER.replace(b"10.0.0.1", b"192.0.2.91").replace(b"m=audio 4000", b"m=audio 34000")
AGENT_KEY = "pbx.local/200"


def queue_numbers(self: Directory, domain: str, number: str) -> ServerRole | None:
    return ServerRole.QUEUE if number == "700" else None


@pytest.fixture
def pbx(make_pbx: Callable[..., Pbx], monkeypatch: pytest.MonkeyPatch) -> Pbx:
    monkeypatch.setattr(Directory, "service_role", queue_numbers)
    pbx = make_pbx(media_servers=1)
    pbx.core.app_servers.update_servers([ServerEntry(
        name="queue1", role=ServerRole.QUEUE, host=QUEUE_ADDRESS[0], port=QUEUE_ADDRESS[1], workers=1,
        weight=1, enabled=True)], pbx.now)
    return pbx


@pytest.fixture
def carol(pbx: Pbx) -> Phone:
    return registered(pbx, "300", "10.0.0.3")


@pytest.fixture
def queue(pbx: Pbx) -> Phone:
    return pbx.phone("700", *QUEUE_ADDRESS)


@dataclass
class Talk:
    """A call from `caller` answered by `callee`: both phones' dialogs."""

    call_id: str
    """The caller's Call-ID (the CDR's, and the media server's name of the call)."""
    caller: PhoneDialog
    callee: PhoneDialog
    callee_invite: SipRequest


def talk(caller: Phone, callee: Phone, number: str, *, callee_sdp: bytes = SDP_ANSWER) -> Talk:
    """`caller` dials `number`; `callee` rings, answers, and the caller ACKs."""
    outgoing = caller.call(number)
    caller.pop_response(100)
    invite = callee.pop_request("INVITE")
    tag = unique("callee-")
    callee.send(callee.respond(invite, 180, to_tag=tag))
    caller.pop_response(180)
    callee.send(callee.respond(invite, 200, to_tag=tag, body=callee_sdp))
    callee.pop_request("ACK")
    ok = caller.pop_response(200)
    caller_dialog = caller.dialog_from_answer(outgoing, ok)
    caller.ack_2xx(caller_dialog, outgoing.cseq)
    caller.assert_silent()
    callee.assert_silent()
    return Talk(outgoing.call_id, caller_dialog, callee.dialog_from_invite(invite, tag), invite)


def replaces(dialog: PhoneDialog) -> str:
    """A Refer-To URI header naming the phone's dialog as the Call Manager knows it (RFC 3891)."""
    return "Replaces=" + quote(f"{dialog.call_id};to-tag={dialog.remote_tag};from-tag={dialog.local_tag}",
                               safe="")


def refer(phone: Phone, dialog: PhoneDialog, target: str, *headers: str) -> SipResponse:
    phone.send(with_headers(dialog.request(phone, "REFER", contact=True), f"Refer-To: <{target}>",
                            f"Referred-By: <sip:{phone.extension}@pbx.local>", *headers))
    return phone.pop_response()


def requests(phone: Phone) -> list[SipRequest]:
    """Every request in the phone's inbox, taken out."""
    taken = [received.message for received in phone.inbox if isinstance(received.message, SipRequest)]
    phone.inbox.clear()
    return taken


def media_call(pbx: Pbx, call_id: str):  # type: ignore[no-untyped-def]
    return pbx.media_node_of(call_id).core.calls[call_id]


# -- attended transfer between phones ----------------------------------------------------------------


@pytest.fixture
def two_calls(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone) -> tuple[Talk, Talk]:
    """Alice called Bob (call 1), then Bob called Carol (call 2); both answered."""
    return talk(alice, bob, "200"), talk(bob, carol, "300", callee_sdp=CAROL_SDP)


def test_bob_joins_alice_and_carol_who_then_talk_through_call_ones_media(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, two_calls: tuple[Talk, Talk]) -> None:
    call1, call2 = two_calls
    media1, media2 = media_call(pbx, call1.call_id), media_call(pbx, call2.call_id)
    bob_place_port = media1.b.port

    accepted = refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(call2.caller)}")

    assert (accepted.status_code, accepted.cseq.method) == (202, "REFER")
    assert notified(bob, call1.callee) == ("SIP/2.0 100 Trying", "active;expires=60")
    reinvite = carol.pop_request("INVITE")
    # Carol's own dialog of call 2 goes on, with an offer of call 1's media server for Bob's place.
    assert (reinvite.call_id, reinvite.to.tag, reinvite.from_.tag) == (
        call2.callee.call_id, call2.callee.local_tag, call2.callee.remote_tag)
    assert media_of(reinvite.body)[:2] == (MEDIA_HOST, bob_place_port)
    first_origin = media_of_origin(call2.callee_invite.body)
    assert media_of_origin(reinvite.body) == (first_origin[0], first_origin[1] + 1)
    alice.assert_silent()

    carol.send(carol.respond(reinvite, 200, body=CAROL_SDP))

    assert carol.pop_request("ACK").cseq.seq == reinvite.cseq.seq
    assert notified(bob, call1.callee) == ("SIP/2.0 200 OK", "terminated;reason=noresource")
    byes = requests(bob)
    assert sorted((bye.method, bye.call_id, bye.to.tag) for bye in byes) == sorted([
        ("BYE", call1.callee.call_id, call1.callee.local_tag),
        ("BYE", call2.caller.call_id, call2.caller.local_tag)])
    for bye in byes:
        bob.send(bob.respond(bye, 200))
    alice.assert_silent()  # same codec: her SDP stands
    assert media1.b.destination == ("10.0.0.3", 6000)
    assert call2.call_id not in pbx.media[0].core.calls  # call 2's media session released
    assert media2.a.port != bob_place_port
    # Call 2's CDR ends at the join, hung up by Bob (its caller); call 1's goes on.
    [cdr2] = pbx.cdrs
    assert (cdr2.call_id, cdr2.caller, cdr2.callee, cdr2.hangup_by) == (call2.call_id, "200", "300",
                                                                        HangupBy.CALLER)
    assert len(pbx.core.b2bua.calls) == 1

    # Alice and Carol talk: Alice's BYE reaches Carol in Carol's dialog.
    alice.send(call1.caller.request(alice, "BYE"))
    alice.pop_response(200)
    bye = carol.pop_request("BYE")
    assert (bye.call_id, bye.to.tag) == (call2.callee.call_id, call2.callee.local_tag)
    carol.send(carol.respond(bye, 200))
    bob.assert_silent()
    cdr1 = pbx.cdrs[1]
    assert (cdr1.call_id, cdr1.caller, cdr1.callee, cdr1.disposition, cdr1.hangup_by) == (
        call1.call_id, "100", "200", Disposition.ANSWERED, HangupBy.CALLER)
    assert not pbx.core.b2bua.calls and not pbx.media[0].core.calls


def carol_reinvited(bob: Phone, carol: Phone, call1: Talk, call2: Talk) -> SipRequest:
    """Bob joins call 1 with call 2: the re-INVITE Carol gets."""
    assert refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(call2.caller)}").status_code == 202
    assert notified(bob, call1.callee)[0] == "SIP/2.0 100 Trying"
    return carol.pop_request("INVITE")


def media_of_origin(body: bytes) -> tuple[str, int]:
    """The o= line's session id and version."""
    [origin] = [line for line in body.decode().split("\r\n") if line.startswith("o=")]
    fields = origin.split()
    return fields[1], int(fields[2])


def test_carol_hanging_up_after_the_join_ends_alices_call_with_carol_on_bobs_side(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, two_calls: tuple[Talk, Talk]) -> None:
    call1, call2 = two_calls
    refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(call2.caller)}")
    reinvite = carol.pop_request("INVITE")
    carol.send(carol.respond(reinvite, 200, body=CAROL_SDP))
    carol.pop_request("ACK")
    requests(bob)

    carol.send(call2.callee.request(carol, "BYE"))

    carol.pop_response(200)
    assert alice.pop_request("BYE").call_id == call1.call_id
    assert pbx.cdrs[-1].hangup_by is HangupBy.CALLEE  # Carol took Bob's side of call 1


def test_alice_held_by_bob_is_taken_off_hold_by_the_join(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, two_calls: tuple[Talk, Talk]) -> None:
    call1, call2 = two_calls
    # Bob holds Alice before he calls Carol, as phones do.
    bob.send(call1.callee.request(bob, "INVITE", body=SDP_HOLD.replace(b"10.0.0.1", b"10.0.0.2"),
                                  contact=True))
    hold = alice.pop_request("INVITE")
    assert b"a=sendonly" in hold.body
    alice.send(alice.respond(hold, 200, body=SDP_OFFER + b"a=recvonly\r\n"))
    alice.pop_request("ACK")
    bob.pop_response(200)
    bob.send(call1.callee.request(bob, "ACK", cseq=call1.callee.cseq))

    refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(call2.caller)}")
    reinvite = carol.pop_request("INVITE")
    assert b"recvonly" not in reinvite.body and b"sendonly" not in reinvite.body
    carol.send(carol.respond(reinvite, 200, body=CAROL_SDP))
    carol.pop_request("ACK")

    off_hold = alice.pop_request("INVITE")
    assert b"sendonly" not in off_hold.body and b"recvonly" not in off_hold.body
    assert media_of(off_hold.body)[:2] == media_of(hold.body)[:2]


def test_a_replaces_naming_no_dialog_is_notified_481_and_the_calls_go_on(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, two_calls: tuple[Talk, Talk]) -> None:
    call1, call2 = two_calls
    unknown = PhoneDialog(call_id="nowhere@10.0.0.2", local_tag="x", remote_tag="y", local_uri="",
                          remote_uri="", remote_target="", cseq=1)

    assert refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(unknown)}").status_code == 202

    assert notified(bob, call1.callee) == ("SIP/2.0 100 Trying", "active;expires=60")
    assert notified(bob, call1.callee) == ("SIP/2.0 481 Call/Transaction Does Not Exist",
                                           "terminated;reason=noresource")
    alice.assert_silent()
    carol.assert_silent()
    assert pbx.cdrs == [] and len(pbx.core.b2bua.calls) == 2
    # Call 1 goes on between Alice and Bob.
    alice.send(call1.caller.request(alice, "BYE"))
    alice.pop_response(200)
    assert bob.pop_request("BYE").call_id == call1.callee.call_id


def test_a_replaces_naming_the_wrong_tags_is_481(pbx: Pbx, bob: Phone, carol: Phone,
                                                 two_calls: tuple[Talk, Talk]) -> None:
    call1, call2 = two_calls
    swapped = PhoneDialog(call_id=call2.caller.call_id, local_tag=call2.caller.remote_tag,
                          remote_tag=call2.caller.local_tag, local_uri="", remote_uri="", remote_target="",
                          cseq=1)

    refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(swapped)}")

    notified(bob, call1.callee)
    assert notified(bob, call1.callee)[0] == "SIP/2.0 481 Call/Transaction Does Not Exist"
    carol.assert_silent()


def test_a_replaces_naming_an_unconfirmed_dialog_is_481(pbx: Pbx, alice: Phone, bob: Phone,
                                                         carol: Phone) -> None:
    call1 = talk(alice, bob, "200")
    outgoing = bob.call("300")
    bob.pop_response(100)
    invite = carol.pop_request("INVITE")
    carol.send(carol.respond(invite, 200, to_tag="carol", body=CAROL_SDP))
    carol.pop_request("ACK")
    unacked = bob.dialog_from_answer(outgoing, bob.pop_response(200))  # Bob has not ACKed it yet

    refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(unacked)}")

    notified(bob, call1.callee)
    assert notified(bob, call1.callee)[0] == "SIP/2.0 481 Call/Transaction Does Not Exist"
    carol.assert_silent()


def test_a_replaces_naming_the_referring_call_itself_is_481(pbx: Pbx, bob: Phone,
                                                            two_calls: tuple[Talk, Talk]) -> None:
    call1, _ = two_calls

    refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(call1.callee)}")

    notified(bob, call1.callee)
    assert notified(bob, call1.callee)[0] == "SIP/2.0 481 Replaces Names The Call Itself"


def test_carol_refusing_the_reinvite_is_notified_and_both_calls_go_on(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, two_calls: tuple[Talk, Talk]) -> None:
    call1, call2 = two_calls
    media1 = media_call(pbx, call1.call_id)
    reinvite = carol_reinvited(bob, carol, call1, call2)

    carol.send(carol.respond(reinvite, 488))

    carol.pop_request("ACK")
    assert notified(bob, call1.callee) == ("SIP/2.0 488 Not Acceptable Here", "terminated;reason=noresource")
    assert media1.b.destination == ("10.0.0.2", 5000)  # Bob's place given back
    assert pbx.cdrs == [] and len(pbx.core.b2bua.calls) == 2
    alice.assert_silent()
    # Both calls go on: Bob talks to Carol in call 2, and a BYE there ends it alone.
    bob.send(call2.caller.request(bob, "BYE"))
    bob.pop_response(200)
    assert carol.pop_request("BYE").call_id == call2.callee.call_id
    alice.assert_silent()
    assert [cdr.call_id for cdr in pbx.cdrs] == [call2.call_id]


def test_bob_hanging_up_during_the_join_lets_it_go_on(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, two_calls: tuple[Talk, Talk]) -> None:
    call1, call2 = two_calls
    reinvite = carol_reinvited(bob, carol, call1, call2)

    bob.send(call1.callee.request(bob, "BYE"))
    bob.send(call2.caller.request(bob, "BYE"))

    assert [bob.pop_response(200).cseq.method for _ in range(2)] == ["BYE", "BYE"]
    alice.assert_silent()
    carol.send(carol.respond(reinvite, 200, body=CAROL_SDP))
    carol.pop_request("ACK")
    bob.assert_silent()  # no NOTIFY, no BYE to a transferor that left
    alice.send(call1.caller.request(alice, "BYE"))
    alice.pop_response(200)
    assert carol.pop_request("BYE").call_id == call2.callee.call_id


def test_alice_hanging_up_during_the_join_leaves_carol_with_bob(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, two_calls: tuple[Talk, Talk]) -> None:
    call1, call2 = two_calls
    media2 = media_call(pbx, call2.call_id)
    reinvite = carol_reinvited(bob, carol, call1, call2)

    alice.send(call1.caller.request(alice, "BYE"))

    alice.pop_response(200)
    assert bob.pop_request("BYE").call_id == call1.callee.call_id
    carol.send(carol.respond(reinvite, 200, body=CAROL_SDP))
    carol.pop_request("ACK")
    # Carol is offered call 2's media server again.
    back = carol.pop_request("INVITE")
    assert media_of(back.body)[:2] == (MEDIA_HOST, media2.b.port)
    assert media_of_origin(back.body)[1] == media_of_origin(reinvite.body)[1] + 1
    carol.send(carol.respond(back, 200, body=CAROL_SDP))
    carol.pop_request("ACK")
    assert [cdr.call_id for cdr in pbx.cdrs] == [call1.call_id]
    bob.send(call2.caller.request(bob, "BYE"))
    bob.pop_response(200)
    assert carol.pop_request("BYE").call_id == call2.callee.call_id


def test_a_bad_replaces_is_400(pbx: Pbx, bob: Phone, two_calls: tuple[Talk, Talk]) -> None:
    call1, _ = two_calls

    refused = refer(bob, call1.callee, "sip:300@pbx.local?Replaces=abc%40host%3Bto-tag%3D1")

    assert (refused.status_code, refused.reason) == (400, "Replaces needs a to-tag and a from-tag")


def test_the_replaces_value_parses_and_serializes_back() -> None:
    value = "425928@bobster.example.org;to-tag=7743;from-tag=6472"

    replaces_value = Replaces.parse(value)

    assert replaces_value == Replaces(call_id="425928@bobster.example.org", to_tag="7743", from_tag="6472")
    assert str(replaces_value) == value
    assert Replaces.parse(value + ";early-only").early_only


# -- calls made by an application server ---------------------------------------------------------------


def queue_invite(queue: Phone, number: str, *headers: str) -> tuple[OutgoingCall, bytes]:
    outgoing = OutgoingCall(request_uri=f"sip:{number}@pbx.local", call_id=unique("q-") + "@192.0.2.91",
                            tag=unique("qtag"), branch=unique("z9hG4bKq"))
    data = queue.invite_request(outgoing, cseq=1, body=QUEUE_SDP, extra=headers, branch=outgoing.branch)
    return outgoing, data


def test_a_queue_servers_invite_is_routed_to_the_agent_without_digest(pbx: Pbx, bob: Phone,
                                                                      queue: Phone) -> None:
    outgoing, data = queue_invite(queue, "200")

    queue.send(data)

    queue.pop_response(100)
    invite = bob.pop_request("INVITE")
    assert (invite.from_.sip_uri.user, invite.to.sip_uri.user) == ("700", "200")
    assert media_of(invite.body)[0] == MEDIA_HOST  # anchored
    bob.send(bob.respond(invite, 180, to_tag="agent"))
    assert queue.pop_response(180).status_code == 180
    bob.send(bob.respond(invite, 200, to_tag="agent", body=SDP_ANSWER))
    bob.pop_request("ACK")
    ok = queue.pop_response(200)
    assert media_of(ok.body)[0] == MEDIA_HOST
    dialog = queue.dialog_from_answer(outgoing, ok)
    queue.ack_2xx(dialog, 1)
    queue.send(dialog.request(queue, "BYE"))
    queue.pop_response(200)
    assert bob.pop_request("BYE").to.tag == "agent"
    [cdr] = pbx.cdrs
    assert (cdr.caller, cdr.callee, cdr.tenant_id) == ("700", "200", pbx.directory.tenant_id("pbx.local"))


def test_a_queue_servers_cancel_stops_the_agents_ring(pbx: Pbx, bob: Phone, queue: Phone) -> None:
    outgoing, data = queue_invite(queue, "200")
    queue.send(data)
    queue.pop_response(100)
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 180, to_tag="agent"))
    queue.pop_response(180)

    queue.cancel(outgoing)

    assert queue.pop_response(200).cseq.method == "CANCEL"
    cancel = bob.pop_request("CANCEL")
    bob.send(bob.respond(cancel, 200))
    bob.send(bob.respond(invite, 487, to_tag="agent"))
    bob.pop_request("ACK")
    assert queue.pop_response(487).status_code == 487


def test_the_same_invite_from_a_phone_is_challenged(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    outgoing = OutgoingCall(request_uri="sip:200@pbx.local", call_id="as-queue@10.0.0.1", tag="t")

    alice.send(alice.invite_request(outgoing, cseq=1, extra=[f"{PBX_JOIN_TAG}: abc.w1"]))

    alice.pop_response(100)
    assert alice.pop_response().status_code == 407
    bob.assert_silent()


def test_a_worker_hands_an_invite_with_a_join_tag_and_its_cancel_to_the_worker_it_names() -> None:
    place = WorkerPlace(node="cm1", index=0, count=3)
    invite = parse_message(crlf(
        "INVITE sip:200@pbx.local SIP/2.0\n"
        "Via: SIP/2.0/UDP 192.0.2.91:5110;branch=z9hG4bKj1\n"
        "From: <sip:700@pbx.local>;tag=q1\n"
        "To: <sip:200@pbx.local>\n"
        "Call-ID: j1@192.0.2.91\n"
        "CSeq: 1 INVITE\n"
        f"{PBX_JOIN_TAG}: 9f8e.w2\n"
        "Content-Length: 0\n\n"))
    assert isinstance(invite, SipRequest)

    assert place.owner_of(invite) == 2
    assert place.owner_of(make_cancel(invite)) == 2
    assert WorkerPlace(node="cm1", index=2, count=3).owner_of(invite) is None  # its own
    assert place.owner_of(parse_message(invite.serialize().replace(b"9f8e.w2", b"9f8e"))) is None
    in_dialog = parse_message(invite.serialize().replace(b"To: <sip:200@pbx.local>",
                                                         b"To: <sip:200@pbx.local>;tag=x.w1"))
    assert place.owner_of(in_dialog) == 1  # a dialog's own tag comes first


# -- a queue joining its caller to the agent ---------------------------------------------------------


@dataclass
class QueueJoin:
    caller_call: Talk
    """Alice's call to the queue (the queue is its callee)."""
    agent_dialog: PhoneDialog
    """The queue's dialog with the Call Manager in its call to the agent."""
    agent_leg: PhoneDialog
    """Bob's dialog of that call."""


def queue_reaches_agent(pbx: Pbx, alice: Phone, bob: Phone, queue: Phone) -> QueueJoin:
    caller_call = talk(alice, queue, "700", callee_sdp=QUEUE_SDP)
    outgoing, data = queue_invite(queue, "200", f"{PBX_JOIN_TAG}: {caller_call.callee.remote_tag}")
    queue.send(data)
    queue.pop_response(100)
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 200, to_tag="agent", body=SDP_ANSWER))
    bob.pop_request("ACK")
    dialog = queue.dialog_from_answer(outgoing, queue.pop_response(200))
    queue.ack_2xx(dialog, 1)
    # The agent's record, as the queue server keeps it: claimed, then answered.
    pbx.state.agents.change(AGENT_KEY, claim("claim-1", pbx.wall, 30))
    assert pbx.state.agents.change(AGENT_KEY, answered("claim-1", pbx.wall, 3600)) is not None
    return QueueJoin(caller_call, dialog, bob.dialog_from_invite(invite, "agent"))


def test_the_queue_joins_alice_to_agent_bob_who_goes_to_wrap_up_when_the_call_ends(
        pbx: Pbx, alice: Phone, bob: Phone, queue: Phone) -> None:
    join = queue_reaches_agent(pbx, alice, bob, queue)
    queue_dialog = join.caller_call.callee
    media1 = media_call(pbx, join.caller_call.call_id)

    accepted = refer(queue, queue_dialog, f"sip:200@pbx.local?{replaces(join.agent_dialog)}",
                     f"Pbx-Queue-Agent: {AGENT_KEY};claim=claim-1;wrap-up=5")

    assert accepted.status_code == 202
    notified(queue, queue_dialog)
    reinvite = bob.pop_request("INVITE")
    assert media_of(reinvite.body)[:2] == (MEDIA_HOST, media1.b.port)
    bob.send(bob.respond(reinvite, 200, body=SDP_ANSWER))
    bob.pop_request("ACK")
    assert notified(queue, queue_dialog)[0] == "SIP/2.0 200 OK"
    assert sorted(bye.call_id for bye in requests(queue)) == sorted([queue_dialog.call_id,
                                                                     join.agent_dialog.call_id])
    assert media1.b.destination == ("10.0.0.2", 5000)
    assert not [e for e in pbx.core.app_servers.endpoints.values() if e.calls]
    assert pbx.state.agents.records([AGENT_KEY])[AGENT_KEY].activity is AgentActivity.ON_CALL

    pbx.advance(42)
    alice.send(join.caller_call.caller.request(alice, "BYE"))

    alice.pop_response(200)
    assert bob.pop_request("BYE").to.tag == "agent"
    record = pbx.state.agents.records([AGENT_KEY])[AGENT_KEY]
    assert (record.activity, record.until, record.calls_taken, record.talk_seconds) == (
        AgentActivity.WRAP_UP, pytest.approx(pbx.wall + 5), 1, pytest.approx(42))
    assert not record.free(pbx.wall + 4.9) and record.free(pbx.wall + 5)
    # Alice's CDR: she called the queue and hung up; the queue's call to Bob ended at the join.
    assert [(c.caller, c.callee, c.hangup_by) for c in pbx.cdrs] == [("700", "200", HangupBy.CALLER),
                                                                     ("100", "700", HangupBy.CALLER)]


def test_the_agent_hanging_up_puts_it_in_wrap_up_too(pbx: Pbx, alice: Phone, bob: Phone,
                                                     queue: Phone) -> None:
    join = queue_reaches_agent(pbx, alice, bob, queue)
    refer(queue, join.caller_call.callee, f"sip:200@pbx.local?{replaces(join.agent_dialog)}",
          f"Pbx-Queue-Agent: {AGENT_KEY};claim=claim-1;wrap-up=0")
    bob.send(bob.respond(bob.pop_request("INVITE"), 200, body=SDP_ANSWER))
    bob.pop_request("ACK")

    bob.send(join.agent_leg.request(bob, "BYE"))

    bob.pop_response(200)
    assert alice.pop_request("BYE").call_id == join.caller_call.call_id
    record = pbx.state.agents.records([AGENT_KEY])[AGENT_KEY]
    assert (record.activity, record.calls_taken) == (AgentActivity.AVAILABLE, 1)
    assert pbx.cdrs[-1].hangup_by is HangupBy.CALLEE


def test_a_queue_agent_header_from_a_phone_is_ignored(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, two_calls: tuple[Talk, Talk],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "pbx_services.callmanager.joins")
    call1, call2 = two_calls
    pbx.state.agents.change("pbx.local/300", claim("claim-9", pbx.wall, 30))
    pbx.state.agents.change("pbx.local/300", answered("claim-9", pbx.wall, 3600))

    refer(bob, call1.callee, f"sip:300@pbx.local?{replaces(call2.caller)}",
          "Pbx-Queue-Agent: pbx.local/300;claim=claim-9;wrap-up=5")
    carol.send(carol.respond(carol.pop_request("INVITE"), 200, body=CAROL_SDP))
    carol.pop_request("ACK")
    alice.send(call1.caller.request(alice, "BYE"))
    alice.pop_response(200)

    assert carol.pop_request("BYE")
    assert pbx.state.agents.records(["pbx.local/300"])["pbx.local/300"].activity is AgentActivity.ON_CALL
    assert "ignored Pbx-Queue-Agent from 10.0.0.2:5062, which is no application server" in caplog.text


def test_wrap_up_without_the_state_store_is_logged_once_and_the_calls_go_on(
        pbx: Pbx, alice: Phone, bob: Phone, queue: Phone, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    join = queue_reaches_agent(pbx, alice, bob, queue)
    refer(queue, join.caller_call.callee, f"sip:200@pbx.local?{replaces(join.agent_dialog)}",
          f"Pbx-Queue-Agent: {AGENT_KEY};claim=claim-1;wrap-up=5")
    bob.send(bob.respond(bob.pop_request("INVITE"), 200, body=SDP_ANSWER))
    bob.pop_request("ACK")

    def away(key: str, transition: object) -> None:
        raise StateStoreUnavailable("Redis at test is unreachable")

    monkeypatch.setattr(pbx.state.agents, "change", away)
    alice.send(join.caller_call.caller.request(alice, "BYE"))

    alice.pop_response(200)
    assert bob.pop_request("BYE")
    assert caplog.text.count("its wrap-up is not recorded, the state store is away") == 1
    assert pbx.cdrs[-1].disposition is Disposition.ANSWERED and pbx.cdrs[-1].end_reason is None


def test_the_agent_transferring_the_caller_on_goes_to_wrap_up_at_once(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, queue: Phone) -> None:
    join = queue_reaches_agent(pbx, alice, bob, queue)
    refer(queue, join.caller_call.callee, f"sip:200@pbx.local?{replaces(join.agent_dialog)}",
          f"Pbx-Queue-Agent: {AGENT_KEY};claim=claim-1;wrap-up=5")
    bob.send(bob.respond(bob.pop_request("INVITE"), 200, body=SDP_ANSWER))
    bob.pop_request("ACK")
    pbx.advance(10)
    requests(bob)

    assert refer(bob, join.agent_leg, "sip:300@pbx.local").status_code == 202
    invite = carol.pop_request("INVITE")
    carol.send(carol.respond(invite, 200, to_tag="carol", body=CAROL_SDP))
    carol.pop_request("ACK")

    record = pbx.state.agents.records([AGENT_KEY])[AGENT_KEY]
    assert (record.activity, record.talk_seconds) == (AgentActivity.WRAP_UP, pytest.approx(10))
    assert any(r.method == "BYE" for r in requests(bob))
