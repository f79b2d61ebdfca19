"""Ring groups in the Call Manager (issue 13): simultaneous, sequential (a member not answering
in time, busy or without a device passed over), the final destination, and the bad input
`pbx ring-group add` refuses. Groups are read on every call here (no cache)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.events import Disposition
from pbx_services.cluster.forwarding import ForwardingService
from pbx_services.cluster.ring_groups import RingGroupService
from pbx_services.cluster.validation import InvalidValue

from .conftest import DOMAIN, Pbx, Phone, registered


@pytest.fixture
def groups(sessions: sessionmaker[Session]) -> RingGroupService:
    return RingGroupService(sessions=sessions, default_domain=DOMAIN)


@pytest.fixture
def carol(pbx: Pbx) -> Phone:
    return registered(pbx, "300", "10.0.0.3")


def test_a_simultaneous_group_rings_every_member(pbx: Pbx, alice: Phone, bob: Phone, carol: Phone,
                                                 groups: RingGroupService) -> None:
    groups.add_group("600", members=["200", "300"])

    alice.call("600")

    assert bob.pop_request("INVITE") and carol.pop_request("INVITE")


def test_a_sequential_group_rings_the_next_member_after_its_seconds(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, groups: RingGroupService) -> None:
    groups.add_group("600", members=["200", "300"], strategy="sequential", ring_seconds=10)
    alice.call("600")
    first = bob.pop_request("INVITE")
    bob.send(bob.respond(first, 180, to_tag="bob"))
    carol.assert_silent()

    pbx.advance(10.5)

    assert bob.pop_request("CANCEL").top_via.branch == first.top_via.branch
    assert carol.pop_request("INVITE")


def test_a_sequential_group_passes_over_a_busy_member_and_one_without_a_device_at_once(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, groups: RingGroupService) -> None:
    groups.add_group("600", members=["100", "200", "300"], strategy="sequential")
    ForwardingService(sessions=groups._sessions, default_domain=DOMAIN).set_dnd("100", True)
    alice.call("600")  # 100 (alice herself) is on do-not-disturb: passed over
    first = bob.pop_request("INVITE")

    bob.send(bob.respond(first, 486, to_tag="bob"))

    assert carol.pop_request("INVITE")


def test_nobody_answering_goes_to_the_final_destination_or_480(
        pbx: Pbx, alice: Phone, bob: Phone, carol: Phone, groups: RingGroupService) -> None:
    groups.add_group("600", members=["200"], ring_seconds=5, final_destination="300")
    groups.add_group("601", members=["200"], ring_seconds=5)
    alice.call("600")
    ringing = bob.pop_request("INVITE")
    bob.send(bob.respond(ringing, 180, to_tag="bob1"))
    pbx.advance(5.5)
    assert carol.pop_request("INVITE")
    bob.send(bob.respond(bob.pop_request("CANCEL"), 200))
    bob.send(bob.respond(ringing, 487, to_tag="bob1"))
    bob.inbox.clear()  # the ACK of the 487 (and a CANCEL sent again before the 200 came)
    alice.inbox.clear()  # the first call's 100 and 180

    alice.call("601")
    invite = bob.pop_request("INVITE")
    bob.send(bob.respond(invite, 180, to_tag="bob2"))
    pbx.advance(5.5)
    cancel = bob.pop_request("CANCEL")
    bob.send(bob.respond(cancel, 200))
    bob.send(bob.respond(invite, 487, to_tag="bob2"))
    assert any(cdr.callee == "601" and cdr.disposition is Disposition.NO_ANSWER and cdr.sip_code == 480
               for cdr in pbx.cdrs), pbx.cdrs


def test_bad_groups_are_refused_naming_what_is_wrong(groups: RingGroupService) -> None:
    with pytest.raises(InvalidValue, match="member 999 is no user of pbx.local"):
        groups.add_group("600", members=["200", "999"])
    with pytest.raises(InvalidValue, match="unknown strategy 'hunt'"):
        groups.add_group("600", members=["200"], strategy="hunt")
    with pytest.raises(InvalidValue, match="ring seconds 1 is out of range"):
        groups.add_group("600", members=["200"], ring_seconds=1)
    with pytest.raises(InvalidValue, match="200 is already extension 200"):
        groups.add_group("200", members=["300"])
    with pytest.raises(InvalidValue, match="final destination: extension 777 does not exist"):
        groups.add_group("600", members=["200"], final_destination="777")
    assert groups.list_groups() == []
