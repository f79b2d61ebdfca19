"""The phases of a call and the states of its branches: their tables, and the moves the B2BUA
makes through them for a call answered, cancelled and refused."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from pbx_services.callmanager.call import (
    BRANCH_TRANSITIONS,
    TRANSITIONS,
    Branch,
    BranchInput,
    BranchState,
    Call,
    CallInput,
    CallPhase,
    Leg,
)
from pbx_services.cluster.events import HangupBy
from pbx_services.sip.message import SipRequest
from pbx_services.sip.transaction import T1
from pbx_services.sip.uri import parse_uri

from .conftest import SDP_ANSWER, Pbx, Phone
from .test_b2bua import connected, ring, start_call

INVITE = SipRequest("INVITE", parse_uri("sip:200@10.0.0.2"), [("CSeq", "1 INVITE")], b"")

Move = tuple[CallPhase, CallInput]


def a_call(phase: CallPhase = CallPhase.ROUTING) -> Call:
    return Call(a=Leg(HangupBy.CALLER, ("10.0.0.1", 5062), "UDP"), call_id="c1", a_tx=None, a_invite=None,
                a_tag="t1", b_call_id="c2", b_tag="t2", caller="100", callee="200", tenant_id=1,
                started_at=0.0, phase=phase)


def a_branch(state: BranchState = BranchState.CALLING) -> Branch:
    return Branch(leg=Leg(HangupBy.CALLEE, ("10.0.0.2", 5060), "UDP"), invite=INVITE, state=state)


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Move]]:
    """Every move of every call's phase, as (phase before, input)."""
    made: list[Move] = []
    transition = Call.transition

    def record(call: Call, call_input: CallInput) -> None:
        made.append((call.phase, call_input))
        transition(call, call_input)

    monkeypatch.setattr(Call, "transition", record)
    yield made


# -- the tables -----------------------------------------------------------------------------


def test_a_call_goes_routing_connecting_connected_ended() -> None:
    call = a_call()

    for call_input, phase in [(CallInput.ANSWERED, CallPhase.CONNECTING),
                              (CallInput.ACKED, CallPhase.CONNECTED), (CallInput.ENDED, CallPhase.ENDED)]:
        call.transition(call_input)
        assert call.phase is phase


@pytest.mark.parametrize("phase", [phase for phase in CallPhase if phase is not CallPhase.ENDED])
def test_a_call_can_end_in_every_phase_but_ended(phase: CallPhase) -> None:
    call = a_call(phase)

    call.transition(CallInput.ENDED)

    assert call.phase is CallPhase.ENDED and not call.answered


@pytest.mark.parametrize(("phase", "call_input"), [
    move for move in itertools.product(CallPhase, CallInput) if move not in TRANSITIONS])
def test_an_illegal_move_of_a_call_raises_and_leaves_its_phase(phase: CallPhase,
                                                               call_input: CallInput) -> None:
    call = a_call(phase)

    with pytest.raises(RuntimeError, match=f"call c1: no move from {phase.name} on {call_input.name}"):
        call.transition(call_input)

    assert call.phase is phase


def test_ended_is_final_and_only_phases_with_both_dialogs_are_answered() -> None:
    assert not [move for move in TRANSITIONS if move[0] is CallPhase.ENDED]
    assert [phase for phase in CallPhase if a_call(phase).answered] == [
        CallPhase.CONNECTING, CallPhase.CONNECTED, CallPhase.JOINING, CallPhase.HANDING_OVER]


@pytest.mark.parametrize(("start", "call_input"), [(CallInput.JOIN, CallPhase.JOINING),
                                                   (CallInput.HAND_OVER, CallPhase.HANDING_OVER)])
def test_a_join_moves_connected_calls_and_brings_them_back(start: CallInput, call_input: CallPhase) -> None:
    call = a_call(CallPhase.CONNECTED)

    call.transition(start)
    assert call.phase is call_input and call.answered
    call.transition(CallInput.JOIN_FAILED)

    assert call.phase is CallPhase.CONNECTED


def test_only_the_joining_call_is_joined_the_other_ends() -> None:
    assert TRANSITIONS[(CallPhase.JOINING, CallInput.JOINED)] is CallPhase.CONNECTED
    assert (CallPhase.HANDING_OVER, CallInput.JOINED) not in TRANSITIONS
    assert TRANSITIONS[(CallPhase.HANDING_OVER, CallInput.ENDED)] is CallPhase.ENDED


def test_a_branch_cancelled_before_a_provisional_sends_its_cancel_on_the_first_one() -> None:
    branch = a_branch()

    assert not branch.transition(BranchInput.CANCEL)
    assert branch.state is BranchState.CANCEL_WAITING and branch.cancelled
    assert branch.transition(BranchInput.PROVISIONAL)
    assert branch.state is BranchState.CANCELLED
    assert not branch.transition(BranchInput.PROVISIONAL)  # one CANCEL only


def test_a_ringing_branch_sends_its_cancel_at_once() -> None:
    branch = a_branch()

    assert not branch.transition(BranchInput.PROVISIONAL)
    assert not branch.transition(BranchInput.PROVISIONAL)
    assert branch.state is BranchState.RINGING and not branch.cancelled
    assert branch.transition(BranchInput.CANCEL)
    assert branch.state is BranchState.CANCELLED and branch.cancelled


@pytest.mark.parametrize(("state", "branch_input"), [
    move for move in itertools.product(BranchState, BranchInput) if move not in BRANCH_TRANSITIONS])
def test_a_branch_is_cancelled_once(state: BranchState, branch_input: BranchInput) -> None:
    assert branch_input is BranchInput.CANCEL and state in (BranchState.CANCEL_WAITING, BranchState.CANCELLED)
    branch = a_branch(state)

    with pytest.raises(RuntimeError, match=f"no move from {state.name} on CANCEL"):
        branch.transition(branch_input)

    assert branch.state is state


# -- the B2BUA's moves ----------------------------------------------------------------------


def test_an_answered_call_connects_on_the_callers_ack_and_ends_on_bye(pbx: Pbx, alice: Phone, bob: Phone,
                                                                     moves: list[Move]) -> None:
    call = start_call(alice, bob)
    ring(alice, bob, call)
    [held] = pbx.core.b2bua.calls
    assert held.phase is CallPhase.ROUTING and moves == []

    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))
    ok = alice.pop_response(200)

    assert held.phase is CallPhase.CONNECTING
    call.a_dialog = alice.dialog_from_answer(call.outgoing, ok)
    alice.ack_2xx(call.a_dialog, call.outgoing.cseq)
    assert held.phase is CallPhase.CONNECTED
    bob.send(bob.dialog_from_invite(call.b_invite, call.b_tag).request(bob, "BYE"))
    assert held.phase is CallPhase.ENDED
    assert moves == [(CallPhase.ROUTING, CallInput.ANSWERED), (CallPhase.CONNECTING, CallInput.ACKED),
                     (CallPhase.CONNECTED, CallInput.ENDED)]


def test_a_cancelled_call_ends_from_routing(pbx: Pbx, alice: Phone, bob: Phone, moves: list[Move]) -> None:
    call = start_call(alice, bob)
    ring(alice, bob, call)

    alice.cancel(call.outgoing)

    assert alice.pop_response(200).cseq.method == "CANCEL"
    assert alice.pop_response(487).cseq.method == "INVITE"
    assert moves == [(CallPhase.ROUTING, CallInput.ENDED)]
    assert pbx.core.b2bua.calls == set()


def test_a_refused_call_ends_from_routing(pbx: Pbx, alice: Phone, bob: Phone, moves: list[Move]) -> None:
    call = start_call(alice, bob)

    bob.send(bob.respond(call.b_invite, 486, to_tag=call.b_tag))

    assert alice.pop_response(486).cseq.method == "INVITE"
    assert moves == [(CallPhase.ROUTING, CallInput.ENDED)]


def test_a_call_whose_answer_is_never_acked_ends_from_connecting(pbx: Pbx, alice: Phone, bob: Phone,
                                                                 moves: list[Move]) -> None:
    call = start_call(alice, bob)
    bob.send(bob.respond(call.b_invite, 200, to_tag=call.b_tag, body=SDP_ANSWER))
    alice.pop_response(200)

    pbx.advance(64 * T1)

    assert moves == [(CallPhase.ROUTING, CallInput.ANSWERED), (CallPhase.CONNECTING, CallInput.ENDED)]


def test_a_retransmitted_ack_moves_a_connected_call_no_further(
        pbx: Pbx, alice: Phone, bob: Phone, moves: list[Move]) -> None:
    call = connected(alice, bob)
    assert call.a_dialog is not None

    alice.ack_2xx(call.a_dialog, call.outgoing.cseq)  # a retransmitted ACK

    assert moves == [(CallPhase.ROUTING, CallInput.ANSWERED), (CallPhase.CONNECTING, CallInput.ACKED)]
