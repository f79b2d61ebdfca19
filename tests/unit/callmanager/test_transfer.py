"""Calls to application servers and blind transfers, on the B2BUA harness of test_b2bua.

Numbers 8xx of the default tenant are IVR menus (the directory's `service_role`); two IVR
workers, ivr1 and ivr2, are byte-level peers like the phones. Alice (100) calls menu 800;
the IVR answers and sends her on with a REFER to Bob (200) or Carol (300), as the IVR
application does. Calls are anchored on a real (sans-IO) media server, which a transfer
needs: the target takes the transferor's place on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.callmanager.directory import Directory
from pbx_services.cluster.events import Disposition, EndReason, HangupBy
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.ring_groups import RingGroupService
from pbx_services.cluster.servers import ServerEntry
from pbx_services.sip.message import SipRequest, SipResponse

from .conftest import MEDIA_HOST, SDP_ANSWER, OutgoingCall, Pbx, Phone, PhoneDialog, redact, registered
from .test_anchoring import media_of
from .test_b2bua import Call, connected

IVR1 = ("192.0.2.81", 5070)
IVR2 = ("192.0.2.82", 5070)
IVR_SDP = SDP_ANSWER.replace(b"10.0.0.2", b"192.0.2.81").replace(b"m=audio 5000", b"m=audio 40000")
CAROL_SDP = SDP_ANSWER.replace(b"10.0.0.2", b"10.0.0.3").replace(b"m=audio 5000", b"m=audio 6000")
SIPFRAG = "message/sipfrag;version=2.0"


def ivr_numbers(self: Directory, domain: str, number: str) -> ServerRole | None:
    return ServerRole.IVR if number.startswith("8") else None


@pytest.fixture
def make_ivr_pbx(make_pbx: Callable[..., Pbx], monkeypatch: pytest.MonkeyPatch) -> Callable[..., Pbx]:
    """A PBX whose 8xx numbers are IVR menus, with `servers` as its IVR servers."""

    def make(*servers: ServerEntry, media_servers: int = 1, **settings: object) -> Pbx:
        monkeypatch.setattr(Directory, "service_role", ivr_numbers)
        pbx = make_pbx(media_servers=media_servers, **settings)
        pbx.core.app_servers.update_servers(servers, pbx.now)
        return pbx

    return make


def ivr_server(name: str, address: tuple[str, int]) -> ServerEntry:
    return ServerEntry(name=name, role=ServerRole.IVR, host=address[0], port=address[1], workers=1, weight=1,
                       enabled=True)


@pytest.fixture
def pbx(make_ivr_pbx: Callable[..., Pbx]) -> Pbx:
    return make_ivr_pbx(ivr_server("ivr1", IVR1), ivr_server("ivr2", IVR2))


@pytest.fixture
def ivr1(pbx: Pbx) -> Phone:
    return pbx.phone("800", *IVR1)


@pytest.fixture
def ivr2(pbx: Pbx) -> Phone:
    return pbx.phone("800", *IVR2)


@pytest.fixture
def carol(pbx: Pbx) -> Phone:
    return registered(pbx, "300", "10.0.0.3")


def answer_probes(*servers: Phone) -> None:
    """The application servers answer the Call Manager's OPTIONS probes in their inboxes."""
    for server in servers:
        probes = [received for received in server.inbox
                  if isinstance(received.message, SipRequest) and received.message.method == "OPTIONS"]
        for received in probes:
            server.inbox.remove(received)
            assert isinstance(received.message, SipRequest)
            server.send(server.respond(received.message, 200, to_tag="probe"))


def advance(pbx: Pbx, seconds: float, *alive: Phone) -> None:
    """Let time pass; the `alive` application servers answer the probes meanwhile."""
    steps = round(seconds / 0.25)
    for _ in range(steps):
        pbx.advance(0.25)
        answer_probes(*alive)


def with_headers(data: bytes, *headers: str) -> bytes:
    """A request of the harness with more header fields."""
    head, _, body = data.partition(b"\r\n\r\n")
    return b"\r\n".join([head, *[header.encode() for header in headers]]) + b"\r\n\r\n" + body


@dataclass
class IvrCall:
    """Alice's call to a menu, answered by an IVR worker."""

    outgoing: OutgoingCall
    ivr: Phone
    invite: SipRequest
    """The INVITE the IVR worker got."""
    a_dialog: PhoneDialog
    ivr_dialog: PhoneDialog


def dial(alice: Phone, *ivrs: Phone, number: str = "800") -> tuple[OutgoingCall, Phone, SipRequest]:
    """Alice dials a menu: her call, the IVR worker the Call Manager chose and the INVITE it got."""
    outgoing = alice.call(number)
    alice.pop_response(100)
    [ivr] = [ivr for ivr in ivrs if ivr.inbox]
    return outgoing, ivr, ivr.pop_request("INVITE")


def the_other(chosen: Phone, *ivrs: Phone) -> Phone:
    [other] = [ivr for ivr in ivrs if ivr is not chosen]
    return other


def call_menu(alice: Phone, *ivrs: Phone, number: str = "800") -> IvrCall:
    """Alice dials a menu; the IVR worker that gets the INVITE answers it, and Alice ACKs."""
    outgoing, ivr, invite = dial(alice, *ivrs, number=number)
    ivr.send(ivr.respond(invite, 200, to_tag="ivr-tag", body=IVR_SDP))
    ivr.pop_request("ACK")
    ok = alice.pop_response(200)
    a_dialog = alice.dialog_from_answer(outgoing, ok)
    alice.ack_2xx(a_dialog, outgoing.cseq)
    alice.assert_silent()
    ivr.assert_silent()
    return IvrCall(outgoing, ivr, invite, a_dialog, ivr.dialog_from_invite(invite, "ivr-tag"))


def refer(call: IvrCall, *headers: str) -> SipResponse:
    """The IVR sends Alice on: a REFER with `headers`; the PBX's final answer to it."""
    call.ivr.send(with_headers(call.ivr_dialog.request(call.ivr, "REFER", contact=True), *headers))
    return call.ivr.pop_response()


def notified(transferor: Phone, dialog: PhoneDialog) -> tuple[str, str]:
    """The next NOTIFY of the transfer's progress to the transferor, answered: its sipfrag and state."""
    notify = transferor.pop_request("NOTIFY")
    assert (notify.call_id, notify.to.tag) == (dialog.call_id, dialog.local_tag)
    assert notify.headers.get("Event") == "refer"
    assert notify.headers.get("Content-Type") == SIPFRAG
    transferor.send(transferor.respond(notify, 200))
    return notify.body.decode().strip(), notify.headers.get("Subscription-State") or ""


# -- calls to application servers ------------------------------------------------------------------


def test_a_call_to_a_menu_goes_to_an_ivr_worker_with_the_media_servers_offer(
        pbx: Pbx, alice: Phone, ivr1: Phone, ivr2: Phone) -> None:
    outgoing = alice.call("800")
    alice.pop_response(100)

    [(ivr, received)] = [(ivr, ivr.pop()) for ivr in (ivr1, ivr2) if ivr.inbox]
    invite = received.message
    assert isinstance(invite, SipRequest)
    assert received.transmit.destination == ivr.address
    assert redact(received.data, call_id=invite.call_id).split("\r\n")[:12] == [
        f"INVITE sip:800@{ivr.address[0]}:5070 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport",
        "Max-Forwards: 69",
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>',
        "To: <sip:800@pbx.local>",
        "Call-ID: <call-id>",
        "CSeq: 1 INVITE",
        "Contact: <sip:192.0.2.10:5060>",
        "Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REGISTER, REFER, NOTIFY, SUBSCRIBE",
        "User-Agent: pbx-services",
        "Content-Type: application/sdp",
        f"Content-Length: {len(invite.body)}",
    ]
    media_call = pbx.media_node_of(outgoing.call_id).core.calls[outgoing.call_id]
    assert media_of(invite.body)[:2] == (MEDIA_HOST, media_call.b.port)
    ivr.send(ivr.respond(invite, 200, to_tag="ivr-tag", body=IVR_SDP))
    assert alice.pop_response(200).status_code == 200
    [endpoint] = [e for e in pbx.core.app_servers.endpoints.values() if e.address == ivr.address]
    assert len(endpoint.calls) == 1


def test_calls_to_menus_are_spread_over_the_ivr_workers(pbx: Pbx, alice: Phone, ivr1: Phone,
                                                        ivr2: Phone) -> None:
    _, taken, invite = dial(alice, ivr1, ivr2)
    taken.send(taken.respond(invite, 200, to_tag="t1", body=IVR_SDP))
    taken.pop_request("ACK")
    alice.pop_response(200)

    carol = registered(pbx, "300", "10.0.0.3")
    carol.call("801")
    carol.pop_response(100)

    other = the_other(taken, ivr1, ivr2)
    assert str(other.pop_request("INVITE").uri) == f"sip:801@{other.address[0]}:5070"
    taken.assert_silent()


def test_a_silent_ivr_worker_is_suspected_and_the_call_goes_to_the_other(
        pbx: Pbx, alice: Phone, ivr1: Phone, ivr2: Phone, caplog: pytest.LogCaptureFixture) -> None:
    _, silent, first = dial(alice, ivr1, ivr2)
    other = the_other(silent, ivr1, ivr2)
    other.assert_silent()

    pbx.advance(0.99)
    answer_probes(other)
    other.assert_silent()
    pbx.advance(0.01)  # app_answer_timeout: 1 s without a word

    answer_probes(other)
    retried = other.pop_request("INVITE")
    assert retried.call_id == first.call_id and retried.top_via.branch != first.top_via.branch
    assert retried.body == first.body
    [endpoint] = [e for e in pbx.core.app_servers.endpoints.values() if e.address == silent.address]
    assert endpoint.misses >= 1
    assert f"ivr endpoint {endpoint}: did not answer a call" in caplog.text
    other.send(other.respond(retried, 200, to_tag="ivr-tag", body=IVR_SDP))
    assert alice.pop_response(200).status_code == 200
    assert pbx.cdrs == []


def test_an_ivr_worker_that_says_trying_is_given_its_time(pbx: Pbx, alice: Phone, ivr1: Phone,
                                                          ivr2: Phone) -> None:
    _, slow, invite = dial(alice, ivr1, ivr2)
    slow.send(slow.respond(invite, 100))

    advance(pbx, 3, ivr1, ivr2)

    assert not [r for r in the_other(slow, ivr1, ivr2).inbox if isinstance(r.message, SipRequest)]
    slow.send(slow.respond(invite, 200, to_tag="ivr-tag", body=IVR_SDP))
    assert alice.pop_response(200).status_code == 200


def test_a_503_from_one_ivr_worker_sends_the_call_to_the_other(
        pbx: Pbx, alice: Phone, ivr1: Phone, ivr2: Phone) -> None:
    _, failing, invite = dial(alice, ivr1, ivr2)
    other = the_other(failing, ivr1, ivr2)

    failing.send(failing.respond(invite, 503, "Service Unavailable", to_tag="busy"))

    assert failing.pop_request("ACK").top_via.branch == invite.top_via.branch
    retried = other.pop_request("INVITE")
    other.send(other.respond(retried, 180, to_tag="ivr-tag"))
    alice.pop_response(180)
    other.send(other.respond(retried, 200, to_tag="ivr-tag", body=IVR_SDP))
    assert alice.pop_response(200).status_code == 200


def test_a_603_from_an_ivr_worker_is_the_callers_answer_not_a_reason_to_try_the_other(
        pbx: Pbx, alice: Phone, ivr1: Phone, ivr2: Phone) -> None:
    _, declining, invite = dial(alice, ivr1, ivr2)
    other = the_other(declining, ivr1, ivr2)

    declining.send(declining.respond(invite, 603, "Decline", to_tag="no"))

    assert declining.pop_request("ACK").top_via.branch == invite.top_via.branch
    assert alice.pop_response().status_code == 603
    assert not [r.message for r in other.inbox
                if isinstance(r.message, SipRequest) and r.message.method == "INVITE"]


def test_every_ivr_worker_failing_gives_the_caller_480(pbx: Pbx, alice: Phone, ivr1: Phone,
                                                       ivr2: Phone) -> None:
    outgoing, first, invite = dial(alice, ivr1, ivr2)
    second = the_other(first, ivr1, ivr2)
    first.send(first.respond(invite, 503, "Service Unavailable", to_tag="a"))
    first.pop_request("ACK")

    second.send(second.respond(second.pop_request("INVITE"), 500, "Server Internal Error", to_tag="b"))

    # As for phones that cannot be reached: a proxy passes no 5xx of its own peers on (RFC 3261 16.7).
    refused = alice.pop_response()
    assert (refused.status_code, refused.reason) == (480, "Temporarily Unavailable")
    alice.ack_failure(outgoing, refused)
    [cdr] = pbx.cdrs
    assert (cdr.callee, cdr.sip_code) == ("800", 480)
    assert all(endpoint.misses == 1 for endpoint in pbx.core.app_servers.endpoints.values())


def test_ivr_workers_all_down_is_503_to_the_caller(pbx: Pbx, alice: Phone) -> None:
    advance(pbx, 2)  # neither answers its probes

    outgoing = alice.call("800")

    refused = alice.pop_response()
    assert (refused.status_code, refused.reason) == (503, "No IVR Server Available")
    alice.ack_failure(outgoing, refused)


def test_no_ivr_server_available_is_503_to_the_caller(make_ivr_pbx: Callable[..., Pbx]) -> None:
    pbx = make_ivr_pbx()
    alice = registered(pbx, "100", "10.0.0.1")

    outgoing = alice.call("800")

    refused = alice.pop_response()
    assert (refused.status_code, refused.reason) == (503, "No IVR Server Available")
    alice.ack_failure(outgoing, refused)
    assert pbx.unrouted == []


def test_ivr_workers_that_stopped_answering_probes_get_no_calls(pbx: Pbx, alice: Phone, ivr1: Phone,
                                                                ivr2: Phone) -> None:
    advance(pbx, 3, ivr2)  # ivr1 answers no probe: down

    alice.call("800")
    alice.pop_response(100)

    assert str(ivr2.pop_request("INVITE").uri) == "sip:800@192.0.2.82:5070"
    assert not [r for r in ivr1.inbox if isinstance(r.message, SipRequest) and r.message.method == "INVITE"]


# -- blind transfer by the IVR ---------------------------------------------------------------------


@pytest.fixture
def menu_call(pbx: Pbx, alice: Phone, ivr1: Phone, ivr2: Phone) -> IvrCall:
    return call_menu(alice, ivr1, ivr2)


REFER_TO_BOB = ("Refer-To: <sip:200@pbx.local>", "Referred-By: <sip:800@pbx.local>")


def bob_rings(call: IvrCall, bob: Phone) -> SipRequest:
    """The IVR sends Alice to Bob, whose phone rings (the IVR is told): the INVITE Bob got."""
    assert refer(call, *REFER_TO_BOB).status_code == 202
    assert notified(call.ivr, call.ivr_dialog)[0] == "SIP/2.0 100 Trying"
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 180, to_tag="bob-tag"))
    assert notified(call.ivr, call.ivr_dialog)[0] == "SIP/2.0 180 Ringing"
    return invite


def test_the_target_answers_and_takes_the_ivrs_place(pbx: Pbx, alice: Phone, bob: Phone,
                                                     menu_call: IvrCall) -> None:
    ivr, ivr_dialog = menu_call.ivr, menu_call.ivr_dialog
    media_call = pbx.media_node_of(menu_call.outgoing.call_id).core.calls[menu_call.outgoing.call_id]

    accepted = refer(menu_call, *REFER_TO_BOB)

    assert (accepted.status_code, accepted.cseq.method) == (202, "REFER")
    assert notified(ivr, ivr_dialog) == ("SIP/2.0 100 Trying", "active;expires=60")
    received = bob.pop()
    invite = received.message
    assert isinstance(invite, SipRequest) and invite.method == "INVITE"
    assert redact(received.data, call_id=invite.call_id).split("\r\n")[:6] == [
        "INVITE sip:200@10.0.0.2:5062 SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK<branch>;rport",
        "Max-Forwards: 69",
        'From: "Phone 100" <sip:100@pbx.local>;tag=<tag>',  # the transferee calls
        "To: <sip:200@pbx.local>",
        "Call-ID: <call-id>",
    ]
    assert invite.call_id not in (menu_call.outgoing.call_id, menu_call.invite.call_id)
    assert media_of(invite.body)[:2] == (MEDIA_HOST, media_call.b.port)

    bob.send(bob.respond(invite, 180, to_tag="bob-tag"))
    assert notified(ivr, ivr_dialog) == ("SIP/2.0 180 Ringing", "active;expires=60")
    assert media_call.a.playback is not None and media_call.a.playback.description == "ringback"
    alice.assert_silent()

    bob.send(bob.respond(invite, 200, to_tag="bob-tag", body=SDP_ANSWER))

    assert bob.pop_request("ACK").to.tag == "bob-tag"
    assert notified(ivr, ivr_dialog) == ("SIP/2.0 200 OK", "terminated;reason=noresource")
    bye = ivr.pop_request("BYE")
    assert (bye.call_id, bye.to.tag) == (ivr_dialog.call_id, "ivr-tag")
    ivr.send(ivr.respond(bye, 200))
    assert media_call.a.playback is None
    assert media_call.b.destination == ("10.0.0.2", 5000)
    alice.assert_silent()  # same codec: her SDP stands
    assert all(not endpoint.calls for endpoint in pbx.core.app_servers.endpoints.values())
    # Alice's leg now relays to Bob.
    alice.send(menu_call.a_dialog.request(alice, "BYE"))
    alice.pop_response(200)
    assert bob.pop_request("BYE").to.tag == "bob-tag"
    ivr.assert_silent()
    [cdr] = pbx.cdrs
    assert (cdr.caller, cdr.disposition, cdr.hangup_by) == ("100", Disposition.ANSWERED, HangupBy.CALLER)


def test_a_busy_target_is_notified_and_the_call_stays_with_the_ivr(pbx: Pbx, alice: Phone, bob: Phone,
                                                                  menu_call: IvrCall) -> None:
    ivr, ivr_dialog = menu_call.ivr, menu_call.ivr_dialog
    media_call = pbx.media_node_of(menu_call.outgoing.call_id).core.calls[menu_call.outgoing.call_id]
    invite = bob_rings(menu_call, bob)

    bob.send(bob.respond(invite, 486, to_tag="bob-tag"))

    assert bob.pop_request("ACK").top_via.branch == invite.top_via.branch
    assert notified(ivr, ivr_dialog) == ("SIP/2.0 486 Busy Here", "terminated;reason=noresource")
    assert media_call.a.playback is None  # no more ringback
    assert media_call.b.destination == ("192.0.2.81", 40000)  # the IVR's place given back
    alice.assert_silent()
    # The IVR still has the call: its BYE ends it.
    ivr.send(ivr_dialog.request(ivr, "BYE"))
    ivr.pop_response(200)
    assert alice.pop_request("BYE").call_id == menu_call.outgoing.call_id
    [cdr] = pbx.cdrs
    assert cdr.hangup_by is HangupBy.CALLEE


@pytest.mark.parametrize(("headers", "status"), [
    ((), (400, "One Refer-To Needed")),
    (("Refer-To: <sip:200@pbx.local>", "Refer-To: <sip:300@pbx.local>"), (400, "One Refer-To Needed")),
    (("Refer-To: <sip:200@pbx.local?Replaces=abc%40host%3Bfrom-tag%3D2>",),
     (400, "Replaces needs a to-tag and a from-tag")),
    (("Refer-To: <tel:+15551234>",), (416, "Refer-To Must Be A SIP URI With A Number")),
    (("Refer-To: <sip:pbx.local>",), (416, "Refer-To Must Be A SIP URI With A Number")),
], ids=["missing", "two", "replaces", "tel", "no-number"])
def test_a_refer_we_cannot_carry_out_is_refused_and_the_call_goes_on(
        pbx: Pbx, alice: Phone, bob: Phone, menu_call: IvrCall, headers: tuple[str, ...],
        status: tuple[int, str]) -> None:
    refused = refer(menu_call, *headers)

    assert (refused.status_code, refused.reason) == status
    menu_call.ivr.assert_silent()
    bob.assert_silent()
    alice.send(menu_call.a_dialog.request(alice, "BYE"))
    alice.pop_response(200)
    assert menu_call.ivr.pop_request("BYE")


def test_a_transfer_to_an_unknown_number_is_notified_404(pbx: Pbx, alice: Phone, menu_call: IvrCall) -> None:
    ivr, ivr_dialog = menu_call.ivr, menu_call.ivr_dialog

    assert refer(menu_call, "Refer-To: <sip:999@pbx.local>").status_code == 202

    assert notified(ivr, ivr_dialog) == ("SIP/2.0 100 Trying", "active;expires=60")
    assert notified(ivr, ivr_dialog) == ("SIP/2.0 404 Not Found", "terminated;reason=noresource")
    alice.assert_silent()
    assert pbx.cdrs == [] and len(pbx.core.b2bua.calls) == 1


def test_the_ivr_hanging_up_during_the_transfer_lets_it_go_on(pbx: Pbx, alice: Phone, bob: Phone,
                                                             menu_call: IvrCall) -> None:
    ivr, ivr_dialog = menu_call.ivr, menu_call.ivr_dialog
    invite = bob_rings(menu_call, bob)

    ivr.send(ivr_dialog.request(ivr, "BYE"))

    assert ivr.pop_response(200).cseq.method == "BYE"
    alice.assert_silent()
    bob.assert_silent()
    bob.send(bob.respond(invite, 200, to_tag="bob-tag", body=SDP_ANSWER))
    bob.pop_request("ACK")
    ivr.assert_silent()  # no NOTIFY to a transferor that left
    bob.send(bob.dialog_from_invite(invite, "bob-tag").request(bob, "BYE"))
    bob.pop_response(200)
    assert alice.pop_request("BYE").call_id == menu_call.outgoing.call_id
    [cdr] = pbx.cdrs
    assert cdr.disposition is Disposition.ANSWERED


def test_a_transfer_failing_after_the_ivr_left_ends_the_call(pbx: Pbx, alice: Phone, bob: Phone,
                                                            menu_call: IvrCall) -> None:
    ivr, ivr_dialog = menu_call.ivr, menu_call.ivr_dialog
    refer(menu_call, *REFER_TO_BOB)
    notified(ivr, ivr_dialog)
    invite = bob.pop_request("INVITE")
    ivr.send(ivr_dialog.request(ivr, "BYE"))
    ivr.pop_response(200)

    bob.send(bob.respond(invite, 486, to_tag="bob-tag"))

    bob.pop_request("ACK")
    assert alice.pop_request("BYE").call_id == menu_call.outgoing.call_id
    ivr.assert_silent()
    [cdr] = pbx.cdrs
    assert cdr.hangup_by is HangupBy.SYSTEM


def test_the_caller_hanging_up_during_the_transfer_cancels_the_target(
        pbx: Pbx, alice: Phone, bob: Phone, menu_call: IvrCall) -> None:
    ivr, ivr_dialog = menu_call.ivr, menu_call.ivr_dialog
    invite = bob_rings(menu_call, bob)

    alice.send(menu_call.a_dialog.request(alice, "BYE"))

    alice.pop_response(200)
    assert ivr.pop_request("BYE").call_id == ivr_dialog.call_id
    cancel = bob.pop_request("CANCEL")
    assert cancel.top_via.branch == invite.top_via.branch
    bob.send(bob.respond(cancel, 200))
    bob.send(bob.respond(invite, 487, to_tag="bob-tag"))
    bob.pop_request("ACK")
    bob.assert_silent()
    [cdr] = pbx.cdrs
    assert cdr.hangup_by is HangupBy.CALLER


def test_a_target_that_does_not_answer_is_notified_480(make_ivr_pbx: Callable[..., Pbx]) -> None:
    pbx = make_ivr_pbx(ivr_server("ivr1", IVR1), no_answer_timeout=20)
    alice, bob = registered(pbx, "100", "10.0.0.1"), registered(pbx, "200", "10.0.0.2")
    ivr1 = pbx.phone("800", *IVR1)
    menu_call = call_menu(alice, ivr1)
    ivr, ivr_dialog = menu_call.ivr, menu_call.ivr_dialog
    invite = bob_rings(menu_call, bob)

    advance(pbx, 20, ivr1)  # the Call Manager's no-answer timeout

    assert bob.pop_request("CANCEL").top_via.branch == invite.top_via.branch
    assert notified(ivr, ivr_dialog) == ("SIP/2.0 480 No Answer", "terminated;reason=noresource")
    assert pbx.cdrs == []


def test_a_refer_in_a_call_without_anchored_media_gets_501(make_ivr_pbx: Callable[..., Pbx]) -> None:
    pbx = make_ivr_pbx(ivr_server("ivr1", IVR1), media_servers=0)
    alice = registered(pbx, "100", "10.0.0.1")
    ivr = pbx.phone("800", *IVR1)
    call = call_menu(alice, ivr)

    refused = refer(call, *REFER_TO_BOB)

    assert (refused.status_code, refused.reason) == (501, "Transfer Needs Anchored Media")
    assert pbx.cdrs == []


# -- blind transfer by a phone ---------------------------------------------------------------------


@pytest.fixture
def anchored_call(pbx: Pbx, alice: Phone, bob: Phone) -> Call:
    """Alice called Bob, who answered."""
    return connected(alice, bob)


def test_the_caller_transfers_the_callee_to_a_third_phone(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone,
                                                          anchored_call: Call) -> None:
    assert anchored_call.a_dialog is not None and anchored_call.b_dialog is not None
    alice.send(with_headers(anchored_call.a_dialog.request(alice, "REFER", contact=True),
                            "Refer-To: <sip:300@pbx.local>"))
    assert alice.pop_response().status_code == 202
    assert notified(alice, anchored_call.a_dialog)[0] == "SIP/2.0 100 Trying"
    invite = carol.pop_request("INVITE")
    assert invite.from_.sip_uri.user == "200"  # Bob, the transferee, calls

    carol.send(carol.respond(invite, 200, to_tag="carol-tag", body=CAROL_SDP))

    carol.pop_request("ACK")
    assert notified(alice, anchored_call.a_dialog) == ("SIP/2.0 200 OK", "terminated;reason=noresource")
    alice.send(alice.respond(alice.pop_request("BYE"), 200))
    media_call = pbx.media_node_of(anchored_call.outgoing.call_id).core.calls[anchored_call.outgoing.call_id]
    assert media_call.a.destination == ("10.0.0.3", 6000)
    # Bob was offered every codec of the media server's: he is re-INVITEd with the one now used,
    # at the same address.
    reinvite = bob.pop_request("INVITE")
    assert media_of(reinvite.body) == (MEDIA_HOST, media_call.b.port, ["0"])
    assert media_of(reinvite.body)[:2] == media_of(anchored_call.b_invite.body)[:2]
    bob.send(bob.respond(reinvite, 200, body=SDP_ANSWER))
    assert bob.pop_request("ACK").cseq.seq == reinvite.cseq.seq
    # Bob's leg now relays to Carol.
    bob.send(anchored_call.b_dialog.request(bob, "BYE"))
    bob.pop_response(200)
    assert carol.pop_request("BYE").to.tag == "carol-tag"
    alice.assert_silent()
    assert [cdr.hangup_by for cdr in pbx.cdrs] == [HangupBy.CALLEE]


def test_the_callee_transfers_the_caller_to_an_ivr_menu(pbx: Pbx, alice: Phone, bob: Phone, ivr1: Phone,
                                                       ivr2: Phone, anchored_call: Call) -> None:
    assert anchored_call.b_dialog is not None
    bob.send(with_headers(anchored_call.b_dialog.request(bob, "REFER", contact=True),
                          "Refer-To: <sip:801@pbx.local>"))
    assert bob.pop_response().status_code == 202
    notified(bob, anchored_call.b_dialog)
    [ivr] = [ivr for ivr in (ivr1, ivr2) if ivr.inbox]
    invite = ivr.pop_request("INVITE")
    assert (str(invite.uri), invite.from_.sip_uri.user) == (f"sip:801@{ivr.address[0]}:5070", "100")

    ivr.send(ivr.respond(invite, 200, to_tag="ivr-tag", body=IVR_SDP))

    ivr.pop_request("ACK")
    assert notified(bob, anchored_call.b_dialog)[0] == "SIP/2.0 200 OK"
    bob.send(bob.respond(bob.pop_request("BYE"), 200))
    [endpoint] = [e for e in pbx.core.app_servers.endpoints.values() if e.address == ivr.address]
    assert len(endpoint.calls) == 1  # the IVR worker holds the call now
    ivr.send(ivr.dialog_from_invite(invite, "ivr-tag").request(ivr, "BYE"))
    ivr.pop_response(200)
    assert alice.pop_request("BYE")
    assert not endpoint.calls


def test_a_transfer_to_a_silent_ivr_worker_goes_to_the_other(pbx: Pbx, alice: Phone, bob: Phone, ivr1: Phone,
                                                             ivr2: Phone, anchored_call: Call) -> None:
    assert anchored_call.b_dialog is not None
    bob.send(with_headers(anchored_call.b_dialog.request(bob, "REFER", contact=True),
                          "Refer-To: <sip:801@pbx.local>"))
    bob.pop_response(202)
    notified(bob, anchored_call.b_dialog)
    [silent] = [ivr for ivr in (ivr1, ivr2) if ivr.inbox]
    other = the_other(silent, ivr1, ivr2)
    first = silent.pop_request("INVITE")

    pbx.advance(1.0)

    answer_probes(other)
    retried = other.pop_request("INVITE")
    assert retried.body == first.body and retried.call_id != first.call_id
    other.send(other.respond(retried, 200, to_tag="ivr-tag", body=IVR_SDP))
    other.pop_request("ACK")
    assert notified(bob, anchored_call.b_dialog)[0] == "SIP/2.0 200 OK"


# -- an application server dying under its calls ----------------------------------------------------


def test_the_calls_of_an_ivr_worker_that_died_move_to_the_other(pbx: Pbx, alice: Phone, ivr1: Phone,
                                                                ivr2: Phone, menu_call: IvrCall) -> None:
    dead, survivor = menu_call.ivr, the_other(menu_call.ivr, ivr1, ivr2)
    media_call = pbx.media_node_of(menu_call.outgoing.call_id).core.calls[menu_call.outgoing.call_id]
    advance(pbx, 2.5, survivor)  # two probes unanswered: down, and its call moves
    invite = survivor.pop_request("INVITE")
    while survivor.inbox:  # its retransmissions while the time passed
        assert survivor.pop_request("INVITE").top_via.branch == invite.top_via.branch
    assert invite.to.uri.user == "800" and invite.call_id != menu_call.invite.call_id
    assert media_of(invite.body)[:2] == (MEDIA_HOST, media_call.b.port)  # the same place on the media server
    survivor.send(survivor.respond(invite, 200, to_tag="ivr2-tag", body=IVR_SDP))
    assert survivor.pop_request("ACK").to.tag == "ivr2-tag"
    alice.assert_silent()  # her call goes on: no re-INVITE, no BYE
    dead.inbox.clear()
    alice.send(menu_call.a_dialog.request(alice, "BYE"))
    alice.pop_response(200)
    assert survivor.pop_request("BYE").to.tag == "ivr2-tag"
    [cdr] = pbx.cdrs
    assert (cdr.disposition, cdr.hangup_by, cdr.end_reason) == (Disposition.ANSWERED, HangupBy.CALLER, None)


def test_a_call_no_other_worker_takes_ends_with_app_server_lost(make_ivr_pbx: Callable[..., Pbx]) -> None:
    pbx = make_ivr_pbx(ivr_server("ivr1", IVR1))
    alice = registered(pbx, "100", "10.0.0.1")
    ivr = pbx.phone("800", *IVR1)
    call = call_menu(alice, ivr)
    ivr.inbox.clear()
    advance(pbx, 2.5)
    bye = alice.pop_request("BYE")
    assert bye.headers.get("Reason") == 'SIP;cause=500;text="app_server_lost"'
    assert bye.call_id == call.outgoing.call_id
    [cdr] = pbx.cdrs
    assert (cdr.hangup_by, cdr.end_reason) == (HangupBy.SYSTEM, EndReason.APP_SERVER_LOST)


def test_a_transfer_to_a_ring_group_rings_every_member_at_once(
        pbx: Pbx, sessions: sessionmaker[Session], menu_call: IvrCall, bob: Phone, carol: Phone) -> None:
    """An IVR option sending callers to a ring group: a transfer does not hunt, the members
    ring together (sequential groups too)."""
    RingGroupService(sessions=sessions, default_domain="pbx.local").add_group(
        "600", members=["200", "300"], strategy="sequential")

    assert refer(menu_call, "Refer-To: <sip:600@pbx.local>").status_code == 202

    assert bob.pop_request("INVITE").uri.user == "200"  # type: ignore[union-attr]
    assert carol.pop_request("INVITE").uri.user == "300"  # type: ignore[union-attr]
