from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import AlreadyExists, NotFound
from pbx_services.cluster.destinations import DestinationKind
from pbx_services.cluster.ivr import IvrMenuDao, IvrMenuInfo, IvrService, ScheduleInfo, ScheduleService
from pbx_services.cluster.models import IvrMenu, IvrOption, Tenant
from pbx_services.cluster.numbering import number_owner, number_owners, routes_to
from pbx_services.cluster.prompts import PromptService
from pbx_services.cluster.users import CsvImportError, UserService
from pbx_services.cluster.validation import InvalidValue

from .conftest import DEFAULT_DOMAIN, OTHER_DOMAIN

AUDIO = np.zeros(800, dtype=np.int16)


@pytest.fixture
def users(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> UserService:
    service = UserService(sessions=sessions, default_domain=DEFAULT_DOMAIN)
    service.add_user("201", "s3cret!")
    service.add_user("202", "s3cret!")
    service.add_user("301", "s3cret!", tenant=OTHER_DOMAIN)
    return service


@pytest.fixture
def service(sessions: sessionmaker[Session], users: UserService) -> IvrService:
    prompts = PromptService(sessions=sessions, default_domain=DEFAULT_DOMAIN)
    for name in ("greeting", "sorry", "hello"):
        prompts.add(name, AUDIO, "test")
    prompts.add("elsewhere", AUDIO, "test", tenant_domain=OTHER_DOMAIN)
    return IvrService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


@pytest.fixture
def schedules(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> ScheduleService:
    return ScheduleService(sessions=sessions, default_domain=DEFAULT_DOMAIN)


def add(service: IvrService, number: str = "800", **settings: Any) -> IvrMenuInfo:
    settings.setdefault("greeting", "greeting")
    settings.setdefault("options", {"1": "201", "2": "202", "9": "repeat"})
    return service.add_menu(number, **settings)


def refused(service: IvrService, message: str, number: str = "800", **settings: Any) -> None:
    with pytest.raises(InvalidValue) as raised:
        add(service, number, **settings)
    assert str(raised.value) == message


def test_add_menu_and_read_it_back(service: IvrService, schedules: ScheduleService,
                                   tenants: dict[str, Tenant]) -> None:
    schedules.add_schedule("office", "mon-fri 09:00-17:00")

    info = add(service, options={"1": "201", "2": " IVR:800 ", "0": "dial", "*": "hangup", "11": "202"},
               timeout=10, inter_digit_timeout=2, retries=0, invalid_prompt="sorry", timeout_prompt="hello",
               final_destination="202", dial_by_extension=True, schedule="office", closed_destination="201",
               name="Main menu")

    assert info == IvrMenuInfo(
        tenant_id=tenants[DEFAULT_DOMAIN].id, tenant_domain=DEFAULT_DOMAIN, number="800", name="Main menu",
        greeting="greeting", options={"*": "hangup", "0": "dial", "1": "201", "11": "202", "2": "ivr:800"},
        timeout=10, inter_digit_timeout=2, retries=0, invalid_prompt="sorry", timeout_prompt="hello",
        final_destination="202", dial_by_extension=True, schedule="office", closed_destination="201",
    )
    assert service.list_menus() == [info]
    assert service.find_menu(tenants[DEFAULT_DOMAIN].id, "800") == info
    assert service.find_menu(tenants[DEFAULT_DOMAIN].id, "801") is None
    assert service.list_menus(OTHER_DOMAIN) == []


def test_defaults(service: IvrService) -> None:
    info = add(service)

    assert (info.timeout, info.inter_digit_timeout, info.retries, info.final_destination,
            info.dial_by_extension, info.invalid_prompt, info.timeout_prompt, info.schedule, info.name) == (
        5, 3, 3, "hangup", False, None, None, None, None)


def test_menus_are_listed_by_number(service: IvrService) -> None:
    for number in ("802", "800", "801"):
        add(service, number)

    assert [menu.number for menu in service.list_menus()] == ["800", "801", "802"]


def test_a_menu_of_another_tenant(service: IvrService) -> None:
    info = add(service, greeting="elsewhere", options={"1": "301"}, tenant_domain=OTHER_DOMAIN)

    assert (info.tenant_domain, info.options) == (OTHER_DOMAIN, {"1": "301"})
    assert [menu.number for menu in service.list_menus()] == []


def test_duplicate_is_refused_unless_replaced_in_place(service: IvrService, session: Session) -> None:
    add(service)
    first_id = IvrMenuDao(session=session).get_by(number="800").id
    session.rollback()

    with pytest.raises(AlreadyExists, match=r"^IVR menu 800 of pbx.example already exists \(replace it with"):
        add(service)
    info = add(service, options={"1": "202", "3": "201"}, greeting="hello", replace=True)

    assert (info.greeting, info.options) == ("hello", {"1": "202", "3": "201"})
    assert IvrMenuDao(session=session).get_by(number="800").id == first_id
    assert session.query(IvrOption).count() == 2


def test_replace_creates_a_menu_that_does_not_exist(service: IvrService) -> None:
    assert add(service, replace=True).number == "800"


def test_number_taken_by_an_extension(service: IvrService) -> None:
    refused(service, "201 is already extension 201 of pbx.example", number="201")
    refused(service, "201 is already extension 201 of pbx.example", number="201", replace=True)


def test_number_of_an_extension_of_another_tenant_is_free(service: IvrService) -> None:
    assert add(service, "301").number == "301"


def test_user_on_a_menu_number_is_refused(service: IvrService, users: UserService) -> None:
    add(service)

    with pytest.raises(InvalidValue) as raised:
        users.add_user("800", "s3cret!")

    assert str(raised.value) == "800 is already IVR menu 800 of pbx.example"
    assert users.add_user("800", "s3cret!", tenant=OTHER_DOMAIN).extension == "800"


def test_imported_user_on_a_menu_number_is_refused(service: IvrService, users: UserService,
                                                   tmp_path: Path) -> None:
    add(service)
    path = tmp_path / "users.csv"
    path.write_text("extension,password\n203,s3cret!\n800,s3cret!\n201,s3cret!\n")

    with pytest.raises(CsvImportError) as raised:
        users.import_csv(path)

    # 201 exists (a user the menu calls): skipped, no problem; 800 is the menu's number.
    assert [str(problem) for problem in raised.value.problems] == [
        "line 3: 800 is already IVR menu 800 of pbx.example",
    ]


@pytest.mark.parametrize("digits", ["#", "1#", "", "123456789", "a", " 1"])
def test_bad_option_keys(service: IvrService, digits: str) -> None:
    refused(service, f"option {digits!r}: 1 to 8 keys of 0-9 and * (# ends the input)",
            options={digits: "201"})


def test_good_option_keys(service: IvrService) -> None:
    assert set(add(service, options={"*": "201", "12345678": "202", "*0": "repeat"}).options) == {
        "*", "12345678", "*0"}


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ("999", "option 1: extension 999 does not exist in pbx.example"),
        ("301", "option 1: extension 301 does not exist in pbx.example"),  # another tenant's
        ("ivr:801", "option 1: IVR menu 801 does not exist in pbx.example"),
        ("queue:700", "option 1: queue 700 does not exist in pbx.example"),
        ("meeting:900", "option 1: meeting room 900 does not exist in pbx.example"),
        ("voicemail:201", "option 1: destination 'voicemail:201': unknown kind 'voicemail'; one of an "
                          "extension number, queue:N, meeting:N, ivr:N, dial, repeat, hangup"),
        ("two words", "option 1: destination 'two words': not an extension number, queue:N, meeting:N, "
                      "ivr:N, dial, repeat or hangup"),
    ],
)
def test_option_to_nowhere(service: IvrService, destination: str, message: str) -> None:
    refused(service, message, options={"1": destination})


def test_destinations_to_other_menus_and_to_itself(service: IvrService) -> None:
    add(service, "801")

    info = add(service, options={"1": "801", "2": "ivr:801", "3": "800", "4": "ivr:800"})

    assert info.options == {"1": "801", "2": "ivr:801", "3": "800", "4": "ivr:800"}


def test_final_and_closed_destinations_are_checked(service: IvrService, schedules: ScheduleService) -> None:
    schedules.add_schedule("office", "mon-fri 09:00-17:00")

    refused(service, "final destination: extension 999 does not exist in pbx.example",
            final_destination="999")
    refused(service, "final destination: 'repeat' would never let the call leave the menu",
            final_destination="repeat")
    refused(service, "closed destination: queue 1 does not exist in pbx.example", schedule="office",
            closed_destination="queue:1")
    refused(service, "closed destination: 'repeat' would never let the call leave the menu",
            schedule="office", closed_destination="repeat")


def test_schedule_and_closed_destination_go_together(service: IvrService, schedules: ScheduleService) -> None:
    schedules.add_schedule("office", "mon-fri 09:00-17:00", tenant_domain=OTHER_DOMAIN)
    message = "a schedule and a closed destination go together: give both or neither"

    refused(service, message, schedule="office")
    refused(service, message, closed_destination="201")
    refused(service, "schedule 'office' does not exist in pbx.example", schedule="office",
            closed_destination="201")


@pytest.mark.parametrize("role", ["greeting", "invalid_prompt", "timeout_prompt"])
def test_prompts_must_exist_in_the_tenant(service: IvrService, role: str) -> None:
    label = role.replace("_", " ")

    refused(service, f"{label}: prompt 'nothing' does not exist in pbx.example", **{role: "nothing"})
    refused(service, f"{label}: prompt 'elsewhere' does not exist in pbx.example", **{role: "elsewhere"})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"timeout": 0}, "timeout 0 is out of range: 1 to 60 seconds"),
        ({"timeout": 61}, "timeout 61 is out of range: 1 to 60 seconds"),
        ({"inter_digit_timeout": 0}, "inter-digit timeout 0 is out of range: 1 to 60 seconds"),
        ({"retries": -1}, "retries -1 is out of range: 0 to 10"),
        ({"retries": 11}, "retries 11 is out of range: 0 to 10"),
        ({"name": "x" * 65}, "IVR menu 800: name is longer than 64 characters"),
        ({"options": {}}, "IVR menu 800 has no option and no dialling by extension: a caller could do "
                          "nothing but wait"),
        ({"options": {"1": "2" * 81}}, "option 1: destination is longer than 80 characters"),
    ],
)
def test_bad_settings(service: IvrService, settings: dict[str, Any], message: str) -> None:
    refused(service, message, **settings)


def test_bad_number(service: IvrService) -> None:
    refused(service, "IVR menu number: extension 'a b' may only contain letters, digits, '.', '_' and '-'",
            number="a b")


def test_limits_are_allowed(service: IvrService) -> None:
    info = add(service, options={}, dial_by_extension=True, timeout=60, inter_digit_timeout=1, retries=10)

    assert (info.options, info.timeout, info.inter_digit_timeout, info.retries) == ({}, 60, 1, 10)


def test_delete_menu(service: IvrService, session: Session) -> None:
    add(service, options={"1": "ivr:800"})

    service.delete_menu("800")

    assert session.query(IvrMenu).count() == session.query(IvrOption).count() == 0
    with pytest.raises(NotFound, match="IvrMenu not found: number='800', tenant='pbx.example'"):
        service.delete_menu("800")


def test_delete_menu_is_refused_while_another_sends_calls_to_it(service: IvrService) -> None:
    add(service, "801")
    add(service, "802", options={"1": "801", "2": "ivr:801"}, final_destination="ivr:801")

    with pytest.raises(InvalidValue) as raised:
        service.delete_menu("801")

    assert str(raised.value) == ("IVR menu 801 of pbx.example is the destination of IVR menu 802 option 1, "
                                 "IVR menu 802 option 2, IVR menu 802 final destination: change or delete "
                                 "them first")


def test_delete_user_is_refused_while_a_menu_sends_calls_to_it(service: IvrService,
                                                                users: UserService) -> None:
    add(service)

    with pytest.raises(InvalidValue) as raised:
        users.delete_user("201")

    assert str(raised.value) == ("user 201@pbx.example is the destination of IVR menu 800 option 1: "
                                 "change or delete them first")
    users.delete_user("301", tenant=OTHER_DOMAIN)


def test_numbering(service: IvrService, session: Session, tenants: dict[str, Tenant]) -> None:
    add(service, options={"1": "201", "2": "ivr:800"}, final_destination="201")
    default, other = tenants[DEFAULT_DOMAIN].id, tenants[OTHER_DOMAIN].id

    assert number_owner(session, default, "201") == "extension 201"
    assert number_owner(session, default, "800") == "IVR menu 800"
    assert number_owner(session, default, "301") is None
    assert number_owners(session, [(default, "201"), (other, "301"), (other, "800"), (default, "800")]) == {
        (default, "201"): "extension 201", (other, "301"): "extension 301", (default, "800"): "IVR menu 800"}
    assert routes_to(session, default, "201") == ["IVR menu 800 option 1", "IVR menu 800 final destination"]
    assert routes_to(session, default, "800", kind=DestinationKind.IVR) == []  # its own options do not count
    assert routes_to(session, other, "201") == []


def test_schedules(schedules: ScheduleService) -> None:
    info = schedules.add_schedule("office", " mon-fri 09:00-17:00; sat 10:00-12:00 ", "Europe/Paris",
                                  [date(2026, 12, 25), datetime(2026, 1, 1, 0, 0), date(2026, 12, 25)])

    assert info == ScheduleInfo(name="office", hours="mon-fri 09:00-17:00; sat 10:00-12:00",
                                timezone="Europe/Paris", holidays=(date(2026, 1, 1), date(2026, 12, 25)))
    schedules.add_schedule("always", "daily 00:00-24:00")
    assert [schedule.name for schedule in schedules.list()] == ["always", "office"]
    assert schedules.list(OTHER_DOMAIN) == []
    with pytest.raises(AlreadyExists, match="^schedule office of pbx.example already exists$"):
        schedules.add_schedule("office", "daily 00:00-24:00")

    schedules.delete("office")

    assert [schedule.name for schedule in schedules.list()] == ["always"]
    with pytest.raises(NotFound, match="Schedule not found: name='office', tenant='pbx.example'"):
        schedules.delete("office")


@pytest.mark.parametrize(
    ("name", "hours", "timezone", "message"),
    [
        ("a b", "daily 00:00-24:00", "UTC",
         "schedule name 'a b' must be 1 to 64 letters, digits, '_', '-' or '.'"),
        ("office", "mon-fri", "UTC",
         "hours 'mon-fri': 'mon-fri' has no time range (like 'mon-fri 09:00-17:00')"),
        ("office", "daily 00:00-24:00", "Mars/Olympus",
         "time zone 'Mars/Olympus' is unknown; an IANA name like 'Europe/Paris'"),
        ("office", "daily 00:00-24:00 " * 20, "UTC", "schedule office: hours are longer than 255 characters"),
    ],
)
def test_bad_schedules(schedules: ScheduleService, name: str, hours: str, timezone: str,
                       message: str) -> None:
    with pytest.raises(InvalidValue) as raised:
        schedules.add_schedule(name, hours, timezone)

    assert str(raised.value) == message


def test_delete_schedule_is_refused_while_a_menu_follows_it(service: IvrService,
                                                            schedules: ScheduleService) -> None:
    schedules.add_schedule("office", "mon-fri 09:00-17:00")
    add(service, schedule="office", closed_destination="hangup")

    with pytest.raises(InvalidValue) as raised:
        schedules.delete("office")

    assert str(raised.value) == ("schedule office of pbx.example is followed by IVR menu 800: "
                                 "change or delete them first")
