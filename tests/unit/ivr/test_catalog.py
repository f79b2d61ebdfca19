from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, event, update
from sqlalchemy.orm import Session

from pbx_services.cluster.database import create_engine_for, upgrade
from pbx_services.cluster.destinations import parse_destination
from pbx_services.cluster.models import Holiday, IvrMenu, IvrOption, Prompt, Schedule, Tenant, User
from pbx_services.cluster.schedules import BusinessHours, parse_hours
from pbx_services.ivr.catalog import MenuCatalog
from pbx_services.ivr.menu import Menu

DOMAIN = "pbx.example"
OTHER_DOMAIN = "other.example"
TTL = 10.0
CHRISTMAS = date(2024, 12, 25)


class Statements:
    """Counts the SQL statements an engine runs."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def during(self, *calls: Callable[[], object]) -> int:
        """How many statements the calls run, one after the other."""
        before = self.count
        for call in calls:
            call()
        return self.count - before


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'pbx.sqlite3'}"
    upgrade(url)
    engine = create_engine_for(url)
    yield engine
    engine.dispose()


@pytest.fixture
def tenant_ids(engine: Engine) -> dict[str, int]:
    with Session(engine) as session, session.begin():
        tenants = [Tenant(name=domain, domain=domain) for domain in (DOMAIN, OTHER_DOMAIN)]
        session.add_all(tenants)
        session.flush()
        return {tenant.domain: tenant.id for tenant in tenants}


@pytest.fixture
def statements(engine: Engine) -> Statements:
    return Statements(engine)


def samples(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int16)


def add_prompt(engine: Engine, tenant_id: int, name: str, audio: bytes = b"\x01\x00\xff\xff") -> int:
    with Session(engine) as session, session.begin():
        prompt = Prompt(tenant_id=tenant_id, name=name, audio=audio, source=f"file: {name}.wav")
        session.add(prompt)
        session.flush()
        return prompt.id


def add_menu(engine: Engine, tenant_id: int, number: str, *, options: dict[str, str] | None = None,
             **columns: Any) -> None:
    greeting = add_prompt(engine, tenant_id, f"greeting-{number}")
    with Session(engine) as session, session.begin():
        menu = IvrMenu(tenant_id=tenant_id, number=number, greeting_id=greeting, **columns)
        menu.options = [IvrOption(digits=digits, destination=text)
                        for digits, text in (options or {}).items()]
        session.add(menu)


def add_users(engine: Engine, tenant_id: int, *extensions: str, enabled: bool = True) -> None:
    with Session(engine) as session, session.begin():
        session.add_all(User(tenant_id=tenant_id, extension=extension, ha1_md5="0" * 32, ha1_sha256="0" * 64,
                             enabled=enabled) for extension in extensions)


# Menus


def test_menu_with_options_prompts_and_schedule_in_one_query(
        engine: Engine, tenant_ids: dict[str, int], statements: Statements) -> None:
    tenant_id = tenant_ids[DOMAIN]
    invalid = add_prompt(engine, tenant_id, "invalid")
    timeout = add_prompt(engine, tenant_id, "timeout")
    with Session(engine) as session, session.begin():
        schedule = Schedule(tenant_id=tenant_id, name="office", hours="mon-fri 09:00-17:00",
                            timezone="Europe/Paris",
                            holidays=[Holiday(day=CHRISTMAS, name="Christmas"),
                                      Holiday(day=date(2025, 1, 1))])
        session.add(schedule)
        session.flush()
        schedule_id = schedule.id
    add_menu(engine, tenant_id, "800", options={"1": "201", "12": "queue:700", "9": "dial", "0": "ivr:801"},
             invalid_prompt_id=invalid, timeout_prompt_id=timeout, timeout=7, inter_digit_timeout=2,
             retries=4,
             final_destination="meeting:900", dial_by_extension=True, schedule_id=schedule_id,
             closed_destination="hangup")
    catalog = MenuCatalog(engine)
    assert statements.during(partial(catalog.menu, DOMAIN, "800", 0.0)) == 1
    menu = catalog.menu(DOMAIN, "800", 1.0)
    assert menu == Menu(
        number="800", greeting="greeting-800", invalid_prompt="invalid", timeout_prompt="timeout",
        timeout=7.0, inter_digit_timeout=2.0, retries=4, final_destination=parse_destination("meeting:900"),
        dial_by_extension=True,
        options={"1": parse_destination("201"), "12": parse_destination("queue:700"),
                 "9": parse_destination("dial"), "0": parse_destination("ivr:801")},
        hours=BusinessHours(parse_hours("mon-fri 09:00-17:00"), "Europe/Paris",
                            frozenset({CHRISTMAS, date(2025, 1, 1)})),
        closed_destination=parse_destination("hangup"),
    )
    assert menu.hours is not None
    assert not menu.hours.is_open(datetime(2024, 12, 25, 10, 0, tzinfo=UTC))


def test_menu_defaults(engine: Engine, tenant_ids: dict[str, int]) -> None:
    add_menu(engine, tenant_ids[DOMAIN], "800")
    menu = MenuCatalog(engine).menu(DOMAIN, "800", 0.0)
    assert menu == Menu(
        number="800", greeting="greeting-800", invalid_prompt=None, timeout_prompt=None, timeout=5.0,
        inter_digit_timeout=3.0, retries=3, final_destination=parse_destination("hangup"),
        dial_by_extension=False, options={}, hours=None, closed_destination=None,
    )


def test_menu_is_kept_for_the_ttl(engine: Engine, tenant_ids: dict[str, int], statements: Statements) -> None:
    add_menu(engine, tenant_ids[DOMAIN], "800", retries=1)
    catalog = MenuCatalog(engine, ttl=TTL)
    first = catalog.menu(DOMAIN, "800", 100.0)
    assert first is not None and first.retries == 1
    with engine.begin() as connection:
        connection.execute(update(IvrMenu).values(retries=5))
    before = statements.count
    assert catalog.menu(DOMAIN, "800", 100.0 + TTL - 0.1) is first
    assert statements.count == before
    changed = catalog.menu(DOMAIN, "800", 100.0 + TTL)
    assert changed is not None and changed.retries == 5


def test_missing_menu_is_none_and_kept_too(
        engine: Engine, tenant_ids: dict[str, int], statements: Statements) -> None:
    add_menu(engine, tenant_ids[OTHER_DOMAIN], "800")
    catalog = MenuCatalog(engine)
    assert catalog.menu(DOMAIN, "800", 0.0) is None
    before = statements.count
    assert catalog.menu(DOMAIN, "800", 1.0) is None
    assert statements.count == before
    assert catalog.menu("unknown.example", "800", 0.0) is None
    assert catalog.menu(OTHER_DOMAIN, "800", 0.0) is not None


def test_menu_cache_is_bounded(engine: Engine, tenant_ids: dict[str, int], statements: Statements) -> None:
    for number in ("801", "802", "803"):
        add_menu(engine, tenant_ids[DOMAIN], number)
    catalog = MenuCatalog(engine, max_menus=2)
    assert statements.during(*(partial(catalog.menu, DOMAIN, number, 0.0)
                               for number in ("801", "802", "801", "803"))) == 3
    assert statements.during(partial(catalog.menu, DOMAIN, "801", 1.0),
                             partial(catalog.menu, DOMAIN, "803", 1.0)) == 0
    assert statements.during(partial(catalog.menu, DOMAIN, "802", 1.0)) == 1


def test_bad_rows_are_read_as_harmless(engine: Engine, tenant_ids: dict[str, int],
                                       caplog: pytest.LogCaptureFixture) -> None:
    tenant_id = tenant_ids[DOMAIN]
    with Session(engine) as session, session.begin():
        schedule = Schedule(tenant_id=tenant_id, name="broken", hours="mon-fry 09:00-17:00")
        session.add(schedule)
        session.flush()
        schedule_id = schedule.id
    add_menu(engine, tenant_id, "800", options={"1": "201", "2": "voicemail:1"}, final_destination="to:be",
             closed_destination="queue:", schedule_id=schedule_id)
    menu = MenuCatalog(engine).menu(DOMAIN, "800", 0.0)
    assert menu is not None
    assert menu.options == {"1": parse_destination("201")}
    assert menu.final_destination == parse_destination("hangup")
    assert menu.closed_destination is None
    assert menu.hours is None
    warnings = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert len(warnings) == 4
    assert any("menu 800 of pbx.example, option 2 left out" in warning for warning in warnings)
    assert any("schedule broken left out (always open)" in warning for warning in warnings)


def test_unknown_timezone_leaves_the_schedule_out(engine: Engine, tenant_ids: dict[str, int]) -> None:
    tenant_id = tenant_ids[DOMAIN]
    with Session(engine) as session, session.begin():
        schedule = Schedule(tenant_id=tenant_id, name="mars", hours="daily 00:00-24:00",
                            timezone="Mars/Olympus")
        session.add(schedule)
        session.flush()
        schedule_id = schedule.id
    add_menu(engine, tenant_id, "800", schedule_id=schedule_id)
    menu = MenuCatalog(engine).menu(DOMAIN, "800", 0.0)
    assert menu is not None and menu.hours is None


# Prompts


def test_prompt_is_decoded_little_endian(engine: Engine, tenant_ids: dict[str, int]) -> None:
    add_prompt(engine, tenant_ids[DOMAIN], "hello", b"\x01\x00\xff\xff\x00\x80\xff\x7f")
    audio = MenuCatalog(engine).prompts.prompt(DOMAIN, "hello", 0.0)
    assert audio is not None
    assert audio.dtype == np.int16
    np.testing.assert_array_equal(audio, samples(1, -1, -32768, 32767))
    assert not audio.flags.writeable


def test_prompt_with_an_odd_byte_drops_it(engine: Engine, tenant_ids: dict[str, int]) -> None:
    add_prompt(engine, tenant_ids[DOMAIN], "odd", b"\x02\x00\x03")
    audio = MenuCatalog(engine).prompts.prompt(DOMAIN, "odd", 0.0)
    assert audio is not None
    np.testing.assert_array_equal(audio, samples(2))


def test_prompt_is_the_tenants(engine: Engine, tenant_ids: dict[str, int]) -> None:
    add_prompt(engine, tenant_ids[OTHER_DOMAIN], "hello")
    catalog = MenuCatalog(engine)
    assert catalog.prompts.prompt(DOMAIN, "hello", 0.0) is None
    assert catalog.prompts.prompt(OTHER_DOMAIN, "hello", 0.0) is not None


def test_prompt_is_kept_for_the_ttl(
        engine: Engine, tenant_ids: dict[str, int], statements: Statements) -> None:
    add_prompt(engine, tenant_ids[DOMAIN], "hello", b"\x01\x00")
    catalog = MenuCatalog(engine, ttl=TTL)
    first = catalog.prompts.prompt(DOMAIN, "hello", 0.0)
    with engine.begin() as connection:
        connection.execute(update(Prompt).values(audio=b"\x02\x00"))
    before = statements.count
    assert catalog.prompts.prompt(DOMAIN, "hello", TTL - 0.1) is first
    assert catalog.prompts.prompt(DOMAIN, "missing", 0.0) is None
    assert catalog.prompts.prompt(DOMAIN, "missing", 1.0) is None
    assert statements.count == before + 1
    np.testing.assert_array_equal(catalog.prompts.prompt(DOMAIN, "hello", TTL), samples(2))


def test_an_unchanged_prompt_is_the_same_array_after_the_ttl(engine: Engine,
                                                               tenant_ids: dict[str, int]) -> None:
    """The same audio read again is the array the worker already encoded (appserver.audio)."""
    add_prompt(engine, tenant_ids[DOMAIN], "hello", b"\x01\x00")
    catalog = MenuCatalog(engine, ttl=TTL)
    first = catalog.prompts.prompt(DOMAIN, "hello", 0.0)

    assert catalog.prompts.prompt(DOMAIN, "hello", TTL) is first


def test_prompt_cache_is_bounded_by_bytes(
        engine: Engine, tenant_ids: dict[str, int], statements: Statements) -> None:
    for name in ("a", "b", "c"):
        add_prompt(engine, tenant_ids[DOMAIN], name, bytes(1000))
    catalog = MenuCatalog(engine, max_prompt_bytes=2500)
    assert statements.during(*(partial(catalog.prompts.prompt, DOMAIN, name, 0.0)
                               for name in ("a", "b", "a", "c"))) == 3
    assert statements.during(partial(catalog.prompts.prompt, DOMAIN, "a", 1.0),
                             partial(catalog.prompts.prompt, DOMAIN, "c", 1.0)) == 0
    assert statements.during(partial(catalog.prompts.prompt, DOMAIN, "b", 1.0)) == 1


# Extensions


def test_extensions_of_the_tenant(engine: Engine, tenant_ids: dict[str, int]) -> None:
    add_users(engine, tenant_ids[DOMAIN], "201", "2010", "300")
    add_users(engine, tenant_ids[DOMAIN], "400", enabled=False)
    add_users(engine, tenant_ids[OTHER_DOMAIN], "500")
    catalog = MenuCatalog(engine)
    assert catalog.extension_exists(DOMAIN, "201", 0.0)
    assert catalog.extension_exists(DOMAIN, "2010", 0.0)
    assert not catalog.extension_exists(DOMAIN, "20", 0.0)
    assert not catalog.extension_exists(DOMAIN, "400", 0.0)
    assert not catalog.extension_exists(DOMAIN, "500", 0.0)
    assert catalog.extension_exists(OTHER_DOMAIN, "500", 0.0)
    assert not catalog.extension_exists("unknown.example", "201", 0.0)


@pytest.mark.parametrize(("prefix", "expected"), [
    ("", True), ("2", True), ("20", True), ("201", True), ("2010", False), ("3", True), ("30", True),
    ("300", False), ("31", False), ("4", False), ("5", False), ("1", False), ("9", False),
])
def test_extension_prefix_means_a_longer_extension(
        engine: Engine, tenant_ids: dict[str, int], prefix: str, expected: bool) -> None:
    add_users(engine, tenant_ids[DOMAIN], "201", "2010", "300")
    add_users(engine, tenant_ids[DOMAIN], "400", enabled=False)
    add_users(engine, tenant_ids[OTHER_DOMAIN], "500")
    assert MenuCatalog(engine).extension_prefix(DOMAIN, prefix, 0.0) is expected


def test_extensions_loaded_once_per_tenant_and_ttl(
        engine: Engine, tenant_ids: dict[str, int], statements: Statements) -> None:
    add_users(engine, tenant_ids[DOMAIN], "201")
    catalog = MenuCatalog(engine, ttl=TTL)
    before = statements.count
    for number in ("201", "202", "2", "20"):
        catalog.extension_exists(DOMAIN, number, 1.0)
        catalog.extension_prefix(DOMAIN, number, 2.0)
    assert statements.count == before + 1
    add_users(engine, tenant_ids[DOMAIN], "202")
    assert not catalog.extension_exists(DOMAIN, "202", TTL)
    assert catalog.extension_exists(DOMAIN, "202", 1.0 + TTL)
