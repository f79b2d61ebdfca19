"""Call forwarding and do-not-disturb in the Call Manager (issue 13): forward always, busy,
no answer and unreachable, do-not-disturb, and a loop of forwards refused; the settings as
`pbx user forward` saves them (`cluster.forwarding`), read on every call here (no cache)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.events import Disposition
from pbx_services.cluster.forwarding import ForwardingService, ForwardKind
from pbx_services.cluster.validation import InvalidValue

from .conftest import DOMAIN, SDP_ANSWER, Pbx, Phone, registered


@pytest.fixture
def forwards(sessions: sessionmaker[Session]) -> ForwardingService:
    return ForwardingService(sessions=sessions, default_domain=DOMAIN)


@pytest.fixture
def carol(pbx: Pbx) -> Phone:
    return registered(pbx, "300", "10.0.0.3")


def test_forward_always_rings_the_destination_and_never_the_user(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, forwards: ForwardingService) -> None:
    forwards.forward("200", ForwardKind.ALWAYS, "300")

    alice.call("200")

    invite = carol.pop_request("INVITE")
    assert invite.uri.user == "300"  # type: ignore[union-attr]
    bob.assert_silent()


def test_do_not_disturb_is_busy_or_the_busy_forward(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone,
                                                     forwards: ForwardingService) -> None:
    forwards.set_dnd("200", True)
    alice.call("200")
    alice.pop_response(100)
    assert alice.pop_response().status_code == 486
    bob.assert_silent()

    forwards.forward("200", ForwardKind.BUSY, "300")
    alice.call("200")
    assert carol.pop_request("INVITE").uri.user == "300"  # type: ignore[union-attr]
    bob.assert_silent()


def test_a_busy_user_forwards_on_busy(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone,
                                      forwards: ForwardingService) -> None:
    forwards.forward("200", ForwardKind.BUSY, "300")
    alice.call("200")
    invite = bob.pop_request("INVITE")

    bob.send(bob.respond(invite, 486, to_tag="bob-busy"))

    assert carol.pop_request("INVITE").uri.user == "300"  # type: ignore[union-attr]
    assert bob.pop_request("ACK")
    codes = [r.message.status_code for r in alice.inbox]  # type: ignore[union-attr]
    assert codes and all(code < 200 for code in codes), codes  # still ringing: no 486


def test_nobody_answering_forwards_after_the_seconds_and_cancels_the_user(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, forwards: ForwardingService) -> None:
    forwards.forward("200", ForwardKind.NO_ANSWER, "300", seconds=8)
    alice.call("200")
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 180, to_tag="bob-ring"))

    pbx.advance(7.5)
    carol.assert_silent()
    pbx.advance(1.0)

    assert bob.pop_request("CANCEL").top_via.branch == invite.top_via.branch
    carol_invite = carol.pop_request("INVITE")
    carol.send(carol.respond(carol_invite, 200, to_tag="carol", body=SDP_ANSWER))
    final = alice.pop_response()
    while final.status_code < 200:
        final = alice.pop_response()
    assert final.status_code == 200



def test_a_user_with_no_device_forwards_on_unreachable(pbx: Pbx, alice: Phone, carol: Phone,
                                                       forwards: ForwardingService) -> None:
    forwards.forward("200", ForwardKind.UNREACHABLE, "300")  # 200 never registered here

    alice.call("200")

    assert carol.pop_request("INVITE").uri.user == "300"  # type: ignore[union-attr]


def test_a_loop_of_forwards_is_refused(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone,
                                       forwards: ForwardingService) -> None:
    forwards.forward("200", ForwardKind.ALWAYS, "300")
    forwards.forward("300", ForwardKind.ALWAYS, "200")

    alice.call("200")

    alice.pop_response(100)
    assert alice.pop_response().status_code == 482
    bob.assert_silent()
    carol.assert_silent()


def test_a_forward_to_nothing_or_to_itself_is_refused_when_saved(forwards: ForwardingService) -> None:
    with pytest.raises(InvalidValue, match=r"forward of 200 \(busy\): 999 reaches nothing in pbx.local"):
        forwards.forward("200", ForwardKind.BUSY, "999")
    with pytest.raises(InvalidValue, match="to itself"):
        forwards.forward("200", ForwardKind.ALWAYS, "200")
    with pytest.raises(InvalidValue, match="no answer seconds 2 is out of range"):
        forwards.forward("200", ForwardKind.NO_ANSWER, "300", seconds=2)
    assert forwards.get("200").describe() == "200@pbx.local: no forwarding"
    forwards.forward("200", ForwardKind.NO_ANSWER, "300", seconds=15)
    forwards.set_dnd("200", True)
    assert forwards.get("200").describe() == "200@pbx.local: no answer -> 300 after 15 s, do not disturb"


def test_a_busy_forward_leaves_the_cdr_to_the_destination(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone,
                                                          forwards: ForwardingService) -> None:
    forwards.forward("200", ForwardKind.ALWAYS, "300")
    alice.call("200")
    invite = carol.pop_request("INVITE")
    carol.send(carol.respond(invite, 486, to_tag="carol-busy"))
    [cdr] = pbx.cdrs
    assert (cdr.callee, cdr.dialed, cdr.disposition, cdr.sip_code) == ("300", "200", Disposition.BUSY, 486)


def test_the_cdr_of_a_call_forwarded_on_no_answer_names_the_number_dialled(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, forwards: ForwardingService) -> None:
    forwards.forward("200", ForwardKind.NO_ANSWER, "300", seconds=8)
    alice.call("200")
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 180, to_tag="bob-ring"))
    pbx.advance(8.5)
    bob.pop_request("CANCEL")
    carol.send(carol.respond(carol.pop_request("INVITE"), 486, to_tag="carol-busy"))

    [cdr] = pbx.cdrs
    assert (cdr.callee, cdr.dialed, cdr.disposition) == ("300", "200", Disposition.BUSY)


def test_a_call_not_forwarded_has_no_number_dialled_besides_its_callee(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    alice.call("200")
    bob.send(bob.respond(bob.pop_request("INVITE"), 486, to_tag="bob-busy"))

    [cdr] = pbx.cdrs
    assert (cdr.callee, cdr.dialed, cdr.disposition) == ("200", None, Disposition.BUSY)
