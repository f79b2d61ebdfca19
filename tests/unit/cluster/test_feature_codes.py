"""Feature codes per tenant (`cluster.feature_codes`): the defaults, what a dial string matches,
a tenant's own codes saved and read back, and each refusal naming what is wrong."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import NotFound
from pbx_services.cluster.feature_codes import (
    DEFAULT_SET,
    Feature,
    FeatureCodeService,
    FeatureCodeSet,
    FeatureMatch,
    load_feature_codes,
    parse_assignment,
)
from pbx_services.cluster.models import ServerRole, Tenant
from pbx_services.cluster.users import UserService
from pbx_services.cluster.validation import InvalidValue

from .conftest import DEFAULT_DOMAIN as DOMAIN
from .conftest import OTHER_DOMAIN as OTHER


@pytest.fixture
def service(sessions: sessionmaker[Session], tenants: dict[str, Tenant]) -> FeatureCodeService:
    """The codes of the tenants (the default one has user 1001)."""
    UserService(sessions=sessions, default_domain=DOMAIN).add_user("1001", "s3cret-pw")
    return FeatureCodeService(sessions=sessions, default_domain=DOMAIN)


@pytest.mark.parametrize(("dialed", "expected"), [
    ("*78", FeatureMatch(Feature.DND_ON, "")),
    ("*721005", FeatureMatch(Feature.FORWARD_ON, "1005")),
    ("*72", FeatureMatch(Feature.FORWARD_ON, "")),
    ("**1002", FeatureMatch(Feature.DIRECTED_PICKUP, "1002")),
    ("*8", FeatureMatch(Feature.PICKUP, "")),
    ("*97", FeatureMatch(Feature.VOICEMAIL_MENU, "")),
    ("*47", FeatureMatch(Feature.AGENT_PAUSE, "")),
    ("*781", None), ("1002", None), ("*7", None),
])
def test_what_a_dial_string_matches_by_default(dialed: str, expected: FeatureMatch | None) -> None:
    assert DEFAULT_SET.match(dialed) == expected


def test_service_numbers_and_roles() -> None:
    assert FeatureMatch(Feature.FORWARD_ON, "1005").service_number == "*721005"
    assert Feature.PICKUP.role is None and Feature.DIRECTED_PICKUP.role is None
    assert Feature.AGENT_LOGIN.role is ServerRole.QUEUE and Feature.DND_ON.role is ServerRole.IVR
    assert Feature.VOICEMAIL_MENU.role is ServerRole.IVR


def test_a_tenant_s_own_code_replaces_the_default(service: FeatureCodeService,
                                                  sessions: sessionmaker[Session]) -> None:
    service.set_codes(DOMAIN, ["dnd_on=*98", "FORWARD_ON = #5"])

    codes = {info.feature: (info.code, info.default) for info in service.describe(DOMAIN)}
    assert codes["dnd_on"] == ("*98", False) and codes["forward_on"] == ("#5", False)
    assert codes["dnd_off"] == ("*79", True)
    with sessions() as session:
        loaded = load_feature_codes(session.connection())
    assert set(loaded) == {DOMAIN}  # the other tenant has the defaults
    assert loaded[DOMAIN].match("*98") == FeatureMatch(Feature.DND_ON, "")
    assert loaded[DOMAIN].match("*78") is None
    assert loaded[DOMAIN].match("#51005") == FeatureMatch(Feature.FORWARD_ON, "1005")

    service.set_codes(DOMAIN, ["dnd_on=default"])
    assert {i.feature: i.code for i in service.describe(DOMAIN)}["dnd_on"] == "*78"


def test_two_features_can_swap_codes_in_one_change(service: FeatureCodeService) -> None:
    service.set_codes(DOMAIN, ["dnd_on=*79", "dnd_off=*78"])

    codes = {info.feature: info.code for info in service.describe(DOMAIN)}
    assert (codes["dnd_on"], codes["dnd_off"]) == ("*79", "*78")


@pytest.mark.parametrize(("assignment", "message"), [
    ("dnd_on=*79", "feature code *79: both dnd_on and dnd_off would have it"),
    ("dnd_on=1001", "feature code dnd_on=1001: 1001 is already extension 1001 of pbx.example"),
    ("directed_pickup=10", "feature code directed_pickup=10: extension 1001 of pbx.example starts with it"),
    ("dnd_off=*725", "feature code dnd_off=*725 starts with *72, the code of forward_on"),
    ("dnd_off=*7a", "feature code dnd_off='*7a': 1 to 16 of the digits 0-9, * and #"),
    ("dnd=*1", "feature code 'dnd=*1': no feature 'dnd'; one of forward_on"),
    ("dnd_on", "feature code 'dnd_on': NAME=CODE"),
])
def test_refusals_name_what_is_wrong(service: FeatureCodeService, assignment: str, message: str) -> None:
    with pytest.raises(InvalidValue, match=message.replace("*", r"\*")):
        service.set_codes(DOMAIN, [assignment])
    assert all(info.default for info in service.describe(DOMAIN))  # nothing saved


def test_an_unknown_tenant(service: FeatureCodeService) -> None:
    with pytest.raises(NotFound):
        service.set_codes("nobody.example", ["dnd_on=*98"])


def test_a_new_number_cannot_take_a_tenant_s_code(service: FeatureCodeService,
                                                  sessions: sessionmaker[Session]) -> None:
    service.set_codes(DOMAIN, ["pickup=88"])

    with pytest.raises(InvalidValue, match="88 is already feature code 88"):
        UserService(sessions=sessions, default_domain=DOMAIN).add_user("88", "s3cret-pw")
    UserService(sessions=sessions, default_domain=DOMAIN).add_user("88", "s3cret-pw", tenant=OTHER)


def test_parse_assignment() -> None:
    assert parse_assignment(" pickup = *11 ") == (Feature.PICKUP, "*11")
    assert parse_assignment("pickup=DEFAULT") == (Feature.PICKUP, "*8")


def test_the_default_set_checks() -> None:
    DEFAULT_SET.check()
    with pytest.raises(InvalidValue):
        FeatureCodeSet.with_changes({Feature.PICKUP: "**5"}).check()
