"""Calls and registrations outlive the Call Manager process that made them (the state store).

A worker that restarts takes back its calls; a worker that gets a request of a call it does not
hold takes the call over; several workers hand each other the messages of their calls. The
harness's `restart` makes a new core on the same state store and the same media servers.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pbx_services.callmanager.permissions import CallCounter
from pbx_services.callmanager.workers import Forward, ForwardError, WorkerPlace, worker_of_tag
from pbx_services.cluster.events import Disposition, HangupBy
from pbx_services.cluster.state.call_counts import user_key
from pbx_services.cluster.state.errors import StateStoreUnavailable
from pbx_services.sip.message import SipRequest, parse_message

from .conftest import MEDIA_HOST, SDP_HOLD, Pbx, Phone
from .test_anchoring import media_of
from .test_b2bua import connected, only_cdr


@pytest.fixture
def pbx(make_pbx: Callable[..., Pbx]) -> Pbx:
    return make_pbx(media_servers=2)


def test_a_restarted_worker_takes_back_its_calls_and_a_bye_ends_them_whole(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    media_call_id = call.outgoing.call_id
    node = pbx.media_node_of(media_call_id)
    pbx.advance(30)

    pbx.restart()
    assert pbx.core.b2bua.records.restore_calls(pbx.now) == 1
    assert call.b_dialog is not None
    bob.send(call.b_dialog.request(bob, "BYE"))

    assert bob.pop_response(200).cseq.method == "BYE"
    bye = alice.pop_request("BYE")
    assert bye.to.tag == call.outgoing.tag
    alice.send(alice.respond(bye, 200))
    cdr = only_cdr(pbx)
    assert (cdr.call_id, cdr.disposition, cdr.hangup_by) == (media_call_id, Disposition.ANSWERED,
                                                             HangupBy.CALLEE)
    assert cdr.answer_time is not None and (cdr.end_time - cdr.answer_time).total_seconds() == 30
    assert media_call_id not in node.core.calls  # the media server was told to free it
    assert pbx.state.dialogs.owned_by("cm1/0") == []


def test_a_call_taken_back_keeps_its_callers_limits_and_still_counts_for_the_user(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    connected(alice, bob)
    [placed] = pbx.core.b2bua.calls
    assert placed.limits is not None and placed.tenant_id is not None
    counted = user_key(placed.tenant_id, placed.limits.extension)

    pbx.restart()
    assert pbx.core.b2bua.records.restore_calls(pbx.now) == 1
    [taken] = pbx.core.b2bua.calls
    # What a forward or a transfer from here on is dialled under, and what the limits count.
    assert (taken.limits, taken.forwards) == (placed.limits, placed.forwards)
    pbx.housekeeping()  # the first renewal of the counts in the new process
    assert counted in taken.counted
    assert pbx.state.call_counts.count(counted, pbx.wall) == 1
    assert counted in CallCounter.keys(taken)


def test_another_worker_takes_over_a_call_whose_request_reaches_it(pbx: Pbx, alice: Phone,
                                                                   bob: Phone) -> None:
    call = connected(alice, bob)
    pbx.restart(WorkerPlace(node="cm2", index=0))  # another Call Manager holds the VIP now
    assert call.a_dialog is not None

    alice.send(call.a_dialog.request(alice, "BYE"))

    assert alice.pop_response(200).cseq.method == "BYE"
    bye = bob.pop_request("BYE")
    bob.send(bob.respond(bye, 200))
    assert only_cdr(pbx).hangup_by is HangupBy.CALLER
    assert pbx.core.b2bua.calls == set()


def test_a_hold_reinvite_after_a_takeover_goes_through_the_same_media_server(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    pbx.restart(WorkerPlace(node="cm2", index=0))
    assert call.a_dialog is not None and call.b_dialog is not None

    alice.send(call.a_dialog.request(alice, "INVITE", body=SDP_HOLD, contact=True))

    reinvite = bob.pop_request("INVITE")
    assert reinvite.cseq.seq == 2  # the callee's dialog goes on where the first worker left it
    assert b"a=sendonly" in reinvite.body
    media_call = pbx.media_node_of(call.outgoing.call_id).core.calls[call.outgoing.call_id]
    assert media_of(reinvite.body)[:2] == (MEDIA_HOST, media_call.b.port)


def test_registrations_made_before_a_restart_still_route_calls(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    pbx.restart()

    outgoing = alice.call("200")

    assert alice.pop_response(100).status_code == 100
    assert bob.pop_request("INVITE").uri.user == "200"  # type: ignore[union-attr]
    assert outgoing.call_id


def test_a_nonce_count_used_on_one_worker_is_a_replay_on_another(pbx: Pbx, alice: Phone) -> None:
    pbx.restart(WorkerPlace(node="cm1", index=1, count=2))
    alice.nc -= 1  # the nonce-count the first worker accepted, sent again

    assert alice.reregister().status_code == 401  # a replay: challenged anew
    assert alice.reregister().status_code == 200  # the next count is fine


def test_tags_name_their_worker_and_the_messages_of_other_workers_are_handed_over(pbx: Pbx, alice: Phone,
                                                                               bob: Phone) -> None:
    pbx.restart(WorkerPlace(node="cm1", index=1, count=2))
    call = connected(alice, bob)
    assert call.a_dialog is not None
    assert worker_of_tag(call.a_dialog.remote_tag) == 1
    pbx.restart(WorkerPlace(node="cm1", index=0, count=2))

    alice.send(call.a_dialog.request(alice, "BYE"))

    [(worker, data, source, transport)] = pbx.core.take_forwards()
    assert (worker, source, transport) == (1, ("10.0.0.1", 5062), "UDP")
    assert isinstance(parse_message(data), SipRequest)
    alice.assert_silent()
    assert pbx.core.b2bua.calls == set()


def test_a_forwarded_frame_round_trips_and_a_broken_one_is_refused() -> None:
    forward = Forward(data=b"BYE sip:x SIP/2.0\r\n\r\n", peer=("10.0.0.1", 5062), transport="TCP",
                      from_worker=3, send=True)

    assert Forward.parse(forward.serialize()) == forward
    with pytest.raises(ForwardError, match="no header line"):
        Forward.parse(b"garbage")
    with pytest.raises(ForwardError, match="bad field"):
        Forward.parse(b'["10.0.0.1", 5062, "SCTP", 0, false]\nX')


class _AwayLocation:
    """A location store whose Redis is down."""

    def lookup(self, aor: str, now: float) -> list[object]:
        raise StateStoreUnavailable("Redis at redis://127.0.0.1:1/0 is unreachable")

    update = lookup


def test_a_register_while_the_store_is_away_is_refused_with_500_and_retry_after(pbx: Pbx) -> None:
    pbx.core.registrar._location = _AwayLocation()  # type: ignore[assignment]
    alice = pbx.phone("100", "10.0.0.1", 5062)

    response = alice.register()

    assert (response.status_code, response.reason) == (500, "State Store Unavailable")
    assert response.headers.get("Retry-After") == "5"


def test_the_worker_that_held_a_call_taken_over_forgets_it_without_ending_it(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    first = pbx.core
    [held] = first.b2bua.calls
    pbx.restart(WorkerPlace(node="cm1", index=1, count=2))
    assert call.a_dialog is not None

    alice.send(call.a_dialog.request(alice, "INFO", body=b"Signal=1\r\n",
                                     content_type="application/dtmf-relay"))

    assert bob.pop_request("INFO").body == b"Signal=1\r\n"
    assert pbx.core.take_releases() == [(0, held.record_key)]
    assert first.b2bua.release(held.record_key)
    assert first.b2bua.calls == set() and first.take_transmits() == []
    assert pbx.cdrs == []
    assert [record.owner for record in pbx.state.dialogs.owned_by("cm1/1")] == ["cm1/1"]


def test_a_call_taken_over_whose_media_was_freed_meanwhile_is_hung_up(pbx: Pbx, alice: Phone,
                                                                    bob: Phone) -> None:
    connected(alice, bob)
    [held] = pbx.core.b2bua.calls
    node = pbx.media_node_of(held.call_id)
    node.core._free(node.core.calls[held.call_id])  # it timed out while no worker held the call

    pbx.restart()
    pbx.core.b2bua.records.restore_calls(pbx.now)
    pbx.deliver()

    for phone in (alice, bob):
        phone.send(phone.respond(phone.pop_request("BYE"), 200))
    assert only_cdr(pbx).hangup_by is HangupBy.SYSTEM
    assert pbx.core.b2bua.calls == set()


class _AwayDialogs:
    """The dialog store of the worker that takes a call over, while Redis fails over."""

    def __init__(self, real: object) -> None:
        self.real = real
        self.away = True

    def __getattr__(self, name: str) -> object:
        if self.away:
            raise StateStoreUnavailable("Redis at redis://127.0.0.1:1/0 is unreachable")
        return getattr(self.real, name)


def test_a_bye_of_a_call_held_elsewhere_waits_for_the_store_and_its_retransmission_ends_the_call(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call = connected(alice, bob)
    pbx.restart(WorkerPlace(node="cm2", index=0))
    away = _AwayDialogs(pbx.core.b2bua.records._store)
    pbx.core.b2bua.records._store = away  # type: ignore[assignment]
    assert call.a_dialog is not None
    bye = call.a_dialog.request(alice, "BYE")

    alice.send(bye)
    alice.assert_silent()  # no 500 (the phone would give the dialog up), no 481
    bob.assert_silent()
    away.away = False
    alice.send(bye)  # the phone's retransmission, once Redis answers again

    assert alice.pop_response(200).cseq.method == "BYE"
    bob.send(bob.respond(bob.pop_request("BYE"), 200))
    assert only_cdr(pbx).hangup_by is HangupBy.CALLER
