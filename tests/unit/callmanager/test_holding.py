"""The Call Manager holding the SIP address (the VIP) holds the calls: it takes over those of a
Call Manager that is gone, and one that loses the address lets its calls go."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pbx_services.callmanager.holding import HOLDER_TTL
from pbx_services.callmanager.workers import WorkerPlace

from .conftest import MEDIA_HOST, SDP_ANSWER, SDP_OFFER, Pbx, Phone
from .test_anchoring import connected, media_of


@pytest.fixture
def pbx(make_pbx: Callable[..., Pbx]) -> Pbx:
    return make_pbx(media_servers=2)


def test_the_new_holder_takes_over_a_gone_call_managers_calls_and_rehomes_them_when_media_dies(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call, _ = connected(alice, bob)
    pbx.core.holding.tick(True, pbx.now)  # cm1 holds the VIP and is alive
    pbx.advance(HOLDER_TTL + 1)  # then dies: its mark lapses
    pbx.restart(WorkerPlace(node="cm2", index=0))  # cm2 gets the VIP, no phone has sent anything

    pbx.core.holding.tick(True, pbx.now)
    pbx.deliver()

    [held] = pbx.core.b2bua.calls
    assert [r.owner for r in pbx.state.dialogs.owned_by("cm2/0")] == ["cm2/0"]
    old = pbx.media_node_of(call.outgoing.call_id)
    [survivor] = [node for node in pbx.media if node is not old]
    old.alive = False
    pbx.advance(2.95)  # cm2's pool misses three pings and re-homes the call it took over
    a_invite, b_invite = alice.pop_request("INVITE"), bob.pop_request("INVITE")
    moved = survivor.core.calls[call.outgoing.call_id]
    assert media_of(a_invite.body)[:2] == (MEDIA_HOST, moved.a.port)
    assert media_of(b_invite.body)[:2] == (MEDIA_HOST, moved.b.port)
    alice.send(alice.respond(a_invite, 200, body=SDP_OFFER))
    bob.send(bob.respond(b_invite, 200, body=SDP_ANSWER))
    assert alice.pop_request("ACK") and bob.pop_request("ACK")
    assert pbx.core.b2bua.calls == {held} and pbx.cdrs == []


def test_the_calls_of_a_call_manager_still_alive_are_not_taken(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    connected(alice, bob)
    pbx.core.holding.tick(True, pbx.now)
    first = pbx.core
    pbx.restart(WorkerPlace(node="cm2", index=0))  # both hold the address (a VRRP split)

    pbx.core.holding.tick(True, pbx.now)

    assert pbx.core.b2bua.calls == set() and len(first.b2bua.calls) == 1


def test_a_call_manager_losing_the_address_lets_its_calls_go_and_the_holder_takes_them_at_once(
        pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call, _ = connected(alice, bob)
    first = pbx.core
    first.holding.tick(True, pbx.now)

    first.holding.tick(False, pbx.now + 1)  # keepalived moved the VIP away from cm1

    assert first.b2bua.calls == set() and first.take_transmits() == [] and pbx.cdrs == []
    pbx.restart(WorkerPlace(node="cm2", index=0))
    pbx.core.holding.tick(True, pbx.now + 1)  # no wait for cm1's mark to lapse
    assert len(pbx.core.b2bua.calls) == 1
    assert call.a_dialog is not None
    alice.send(call.a_dialog.request(alice, "BYE"))
    assert alice.pop_response(200).cseq.method == "BYE"
    bob.send(bob.respond(bob.pop_request("BYE"), 200))
    assert len(pbx.cdrs) == 1


def test_a_holder_taken_over_forgets_the_call_at_its_next_write(pbx: Pbx, alice: Phone, bob: Phone) -> None:
    call, _ = connected(alice, bob)
    first = pbx.core
    pbx.restart(WorkerPlace(node="cm2", index=0))
    assert call.a_dialog is not None
    alice.send(call.a_dialog.request(alice, "INFO", body=b"Signal=1\r\n",
                                     content_type="application/dtmf-relay"))
    assert bob.pop_request("INFO") and len(pbx.core.b2bua.calls) == 1
    [held] = first.b2bua.calls

    first.b2bua.records.mark_changed(held)  # cm1 has something to write (a re-INVITE it relayed, say)
    first.b2bua.records.save_changed(pbx.now)

    assert first.b2bua.calls == set() and first.take_transmits() == []
    assert [r.owner for r in pbx.state.dialogs.owned_by("cm2/0")] == ["cm2/0"]


def test_a_worker_adopts_the_gone_workers_of_its_own_index_on_other_nodes_only() -> None:
    place = WorkerPlace(node="cm2", index=1, count=2)
    assert place.adopts("cm1/1") and place.adopts("cm3/3")
    assert not place.adopts("cm1/0") and not place.adopts("cm2/1") and not place.adopts("garbage")
