from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, NotFound
from pbx_services.cluster.destinations import DestinationKind
from pbx_services.cluster.ivr import IvrService
from pbx_services.cluster.meetings import MeetingRoomDao, MeetingRoomInfo, MeetingService
from pbx_services.cluster.models import Tenant
from pbx_services.cluster.numbering import number_owner, routes_to
from pbx_services.cluster.prompts import PromptService
from pbx_services.cluster.users import UserService
from pbx_services.cluster.validation import InvalidValue

from .conftest import DEFAULT_DOMAIN, OTHER_DOMAIN


@pytest.fixture
def users(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> UserService:
    service = UserService(sessions=sessions, default_domain=DEFAULT_DOMAIN)
    service.add_user("201", "s3cret!")
    return service


@pytest.fixture
def menus(sessions: sessionmaker[Session], users: UserService) -> IvrService:
    prompts = PromptService(sessions=sessions, default_domain=DEFAULT_DOMAIN)
    prompts.add("greeting", np.zeros(800, np.int16), "test")
    return IvrService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


@pytest.fixture
def service(sessions: sessionmaker[Session], users: UserService) -> MeetingService:
    return MeetingService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


def refused(service: MeetingService, message: str, number: str = "850", **settings: Any) -> None:
    with pytest.raises(InvalidValue) as raised:
        service.add_room(number, **settings)
    assert str(raised.value) == message


def test_add_room_and_list_it(service: MeetingService) -> None:
    info = service.add_room("850", name="Team", pin="1234", moderator_pin="0004321", max_participants=10,
                            pin_tries=1, wait_for_moderator=True, end_with_moderator=True, mute_on_entry=True,
                            entry_tones=False, record=True)

    assert info == MeetingRoomInfo(
        tenant_domain=DEFAULT_DOMAIN, number="850", name="Team", pin="1234", moderator_pin="0004321",
        max_participants=10, pin_tries=1, wait_for_moderator=True, end_with_moderator=True,
        mute_on_entry=True, entry_tones=False, record=True)
    assert service.list_rooms() == [info]
    assert service.list_rooms(OTHER_DOMAIN) == []


def test_defaults(service: MeetingService) -> None:
    assert service.add_room("850") == MeetingRoomInfo(
        tenant_domain=DEFAULT_DOMAIN, number="850", name=None, pin=None, moderator_pin=None,
        max_participants=50, pin_tries=3, wait_for_moderator=False, end_with_moderator=False,
        mute_on_entry=False, entry_tones=True, record=False)


def test_rooms_are_listed_by_number_per_tenant(service: MeetingService) -> None:
    for number in ("852", "850", "851"):
        service.add_room(number)
    service.add_room("850", tenant_domain=OTHER_DOMAIN)

    assert [room.number for room in service.list_rooms()] == ["850", "851", "852"]
    assert [(room.tenant_domain, room.number) for room in service.list_rooms(OTHER_DOMAIN)] == [
        (OTHER_DOMAIN, "850")]


@pytest.mark.parametrize(
    ("number", "settings", "message"),
    [
        ("", {}, "meeting room number: extension is empty"),
        ("8 50", {},
         "meeting room number: extension '8 50' may only contain letters, digits, '.', '_' and '-'"),
        ("850", {"name": "x" * 65}, "meeting room 850: name is longer than 64 characters"),
        ("850", {"pin": "12a4"}, "PIN: 1 to 16 digits (0-9), nothing else"),
        ("850", {"pin": ""}, "PIN: 1 to 16 digits (0-9), nothing else"),
        ("850", {"pin": "1" * 17}, "PIN: 1 to 16 digits (0-9), nothing else"),
        ("850", {"moderator_pin": " 4321"}, "moderator PIN: 1 to 16 digits (0-9), nothing else"),
        ("850", {"pin": "1234", "moderator_pin": "1234"},
         "moderator PIN: the same as the PIN, so every caller would be a moderator"),
        ("850", {"max_participants": 1}, "max participants 1 is out of range: 2 to 500"),
        ("850", {"max_participants": 501}, "max participants 501 is out of range: 2 to 500"),
        ("850", {"pin_tries": 0}, "PIN tries 0 is out of range: 1 to 10"),
        ("850", {"pin_tries": 11}, "PIN tries 11 is out of range: 1 to 10"),
        ("850", {"pin": "1234", "wait_for_moderator": True},
         "wait for moderator: needs a moderator PIN (without one, nobody is a moderator)"),
        ("850", {"end_with_moderator": True},
         "end with moderator: needs a moderator PIN (without one, nobody is a moderator)"),
    ],
)
def test_bad_values_are_named(service: MeetingService, number: str, settings: dict[str, Any],
                              message: str) -> None:
    refused(service, message, number, **settings)
    assert service.list_rooms() == []


def test_the_limits_are_allowed(service: MeetingService) -> None:
    room = service.add_room("850", pin="1" * 16, moderator_pin="0", max_participants=500, pin_tries=10,
                            name="x" * 64)
    assert (room.pin, room.max_participants, room.pin_tries) == ("1" * 16, 500, 10)
    assert service.add_room("851", max_participants=2, pin_tries=1).max_participants == 2


def test_duplicate_is_refused_unless_replaced_in_place(service: MeetingService, session: Session) -> None:
    service.add_room("850", pin="1234")
    first_id = MeetingRoomDao(session=session).get_by(number="850").id
    session.rollback()

    with pytest.raises(AlreadyExists,
                       match=r"^meeting room 850 of pbx.example already exists \(replace it with"):
        service.add_room("850")
    info = service.add_room("850", moderator_pin="99", wait_for_moderator=True, replace=True)

    assert (info.pin, info.moderator_pin, info.wait_for_moderator) == (None, "99", True)
    assert MeetingRoomDao(session=session).get_by(number="850").id == first_id
    assert service.add_room("851", replace=True).number == "851"


def test_number_taken_by_an_extension_or_a_menu(service: MeetingService, menus: IvrService) -> None:
    menus.add_menu("800", greeting="greeting", options={"1": "201"})

    refused(service, "201 is already extension 201 of pbx.example", "201")
    refused(service, "800 is already IVR menu 800 of pbx.example", "800", replace=True)
    assert service.add_room("201", tenant_domain=OTHER_DOMAIN).number == "201"


def test_users_and_menus_cannot_take_a_room_number(service: MeetingService, users: UserService,
                                                   menus: IvrService, session: Session,
                                                   tenants: dict[str, Tenant]) -> None:
    service.add_room("850")

    with pytest.raises(InvalidValue, match="^850 is already meeting room 850 of pbx.example$"):
        users.add_user("850", "s3cret!")
    with pytest.raises(InvalidValue, match="^850 is already meeting room 850 of pbx.example$"):
        menus.add_menu("850", greeting="greeting", options={"1": "201"})
    assert number_owner(session, tenants[DEFAULT_DOMAIN].id, "850") == "meeting room 850"
    assert number_owner(session, tenants[OTHER_DOMAIN].id, "850") is None


def test_menus_send_calls_to_rooms_that_exist(service: MeetingService, menus: IvrService) -> None:
    with pytest.raises(InvalidValue, match="^option 1: meeting room 850 does not exist in pbx.example$"):
        menus.add_menu("800", greeting="greeting", options={"1": "meeting:850"})
    service.add_room("850")
    service.add_room("851", tenant_domain=OTHER_DOMAIN)

    menu = menus.add_menu("800", greeting="greeting", options={"1": "meeting:850", "2": "850"},
                          final_destination="MEETING:850")

    assert (menu.options, menu.final_destination) == ({"1": "meeting:850", "2": "850"}, "meeting:850")
    with pytest.raises(InvalidValue, match="^option 1: meeting room 851 does not exist in pbx.example$"):
        menus.add_menu("801", greeting="greeting", options={"1": "meeting:851"})


def test_a_menu_cannot_name_its_own_number_as_a_room(menus: IvrService) -> None:
    with pytest.raises(InvalidValue, match="^option 1: meeting room 800 does not exist in pbx.example$"):
        menus.add_menu("800", greeting="greeting", options={"1": "meeting:800"})
    assert menus.add_menu("800", greeting="greeting", options={"1": "ivr:800", "2": "800"}).number == "800"


def test_delete(service: MeetingService) -> None:
    service.add_room("850")
    service.add_room("850", tenant_domain=OTHER_DOMAIN)

    service.delete_room("850")

    assert service.list_rooms() == []
    assert len(service.list_rooms(OTHER_DOMAIN)) == 1
    with pytest.raises(NotFound, match=r"^MeetingRoom not found: number='850', tenant='pbx.example'$"):
        service.delete_room("850")


def test_delete_is_refused_while_a_menu_sends_calls_to_the_room(service: MeetingService, menus: IvrService,
                                                                session: Session,
                                                                tenants: dict[str, Tenant]) -> None:
    service.add_room("850")
    menus.add_menu("800", greeting="greeting", options={"1": "meeting:850", "2": "850"},
                   final_destination="meeting:850")

    with pytest.raises(InvalidValue) as raised:
        service.delete_room("850")

    assert str(raised.value) == (
        "meeting room 850 of pbx.example is the destination of IVR menu 800 option 1, IVR menu 800 option 2, "
        "IVR menu 800 final destination: change or delete them first")
    assert routes_to(session, tenants[DEFAULT_DOMAIN].id, "850", kind=DestinationKind.MEETING) == [
        "IVR menu 800 option 1", "IVR menu 800 option 2", "IVR menu 800 final destination"]
    menus.delete_menu("800")
    service.delete_room("850")


def test_unknown_tenant(service: MeetingService) -> None:
    with pytest.raises(NotFound, match="^Tenant not found: domain='nowhere.example'$"):
        service.add_room("850", tenant_domain="nowhere.example")
