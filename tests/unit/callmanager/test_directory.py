from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine

from pbx_services.callmanager.directory import Directory
from pbx_services.cluster.database import create_engine_for, session_factory, upgrade
from pbx_services.cluster.ivr import IvrService
from pbx_services.cluster.meetings import MeetingService
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.prompts import PromptService
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import UserService

DOMAIN, OTHER = "pbx.example", "other.example"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    """A fresh database at the current schema."""
    url = f"sqlite:///{tmp_path / 'pbx.sqlite3'}"
    upgrade(url)
    engine = create_engine_for(url)
    yield engine
    engine.dispose()


def test_service_role_of_menus_and_rooms(engine: Engine) -> None:
    sessions = session_factory(engine)
    for domain in (DOMAIN, OTHER):
        TenantService(sessions=sessions).ensure_tenant(domain)
    UserService(sessions=sessions, default_domain=DOMAIN).add_user("201", "s3cret!")
    PromptService(sessions=sessions, default_domain=DOMAIN).add("greeting", np.zeros(800, np.int16), "test")
    menus = IvrService(sessions=sessions, default_domain=DOMAIN)
    menus.add_menu("800", greeting="greeting", options={"1": "201"})
    rooms = MeetingService(sessions=sessions, default_domain=DOMAIN)
    rooms.add_room("850")
    rooms.add_room("851", tenant_domain=OTHER)
    directory = Directory(engine=engine, default_domain=DOMAIN, ttl=10.0)

    directory.tick(0.0)

    assert directory.service_role(DOMAIN, "800") is ServerRole.IVR
    assert directory.service_role(DOMAIN, "850") is ServerRole.MEETING
    assert directory.service_role(OTHER, "851") is ServerRole.MEETING
    assert directory.service_role(DOMAIN, "851") is None
    assert directory.service_role(DOMAIN, "201") is None

    rooms.add_room("852")
    directory.tick(9.0)
    assert directory.service_role(DOMAIN, "852") is None  # cached for ttl seconds
    directory.tick(10.0)
    assert directory.service_role(DOMAIN, "852") is ServerRole.MEETING


def test_the_realm_of_a_host(engine: Engine) -> None:
    for domain in (DOMAIN, OTHER):
        TenantService(sessions=session_factory(engine)).ensure_tenant(domain)
    directory = Directory(engine=engine, default_domain=DOMAIN, local_names=["pbx.corp.example"])
    directory.tick(0.0)

    assert directory.realm_for(OTHER) == OTHER
    assert directory.realm_for(OTHER.upper()) == OTHER
    assert directory.realm_for(DOMAIN) == DOMAIN
    for default in ("198.51.100.7", "[2001:db8::1]", "pbx.corp.example", "localhost", ""):
        assert directory.realm_for(default) == DOMAIN, default
    assert directory.realm_for("nowhere.example") is None
    assert directory.realm_for("2001:db8::zz") is None


def test_a_users_credentials_carry_its_limits_and_withheld_number(engine: Engine) -> None:
    sessions = session_factory(engine)
    TenantService(sessions=sessions).ensure_tenant(DOMAIN)
    users = UserService(sessions=sessions, default_domain=DOMAIN)
    users.add_user("201", "s3cret!", permission="local", max_calls=2, withhold_number=True)
    users.add_user("202", "s3cret!")
    directory = Directory(engine=engine, default_domain=DOMAIN, ttl=10.0)
    directory.tick(0.0)

    withheld, shown = directory.credentials(DOMAIN, "201"), directory.credentials(DOMAIN, "202")

    assert withheld is not None and shown is not None
    assert (withheld.permission, withheld.max_calls, withheld.withhold_number) == ("local", 2, True)
    assert shown.withhold_number is False
    users.set_user("202", withhold_number=True)
    directory.tick(10.0)
    assert (directory.credentials(DOMAIN, "202") or shown).withhold_number is True
