"""The system of record going away and coming back under a daemon's CdrWriter, on real
PostgreSQL servers (tests/postgresql_server.py): a restart of the primary, and a promotion
followed through a multi-host URL with target_session_attrs=read-write. One engine all along,
as in the Call Manager, and no record lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.cdr import CdrWriter
from pbx_services.cluster.database import create_engine_for, session_factory, upgrade
from tests.postgresql_server import PostgresqlServer
from tests.unit.cluster.test_cdr import all_cdrs, call_ended

pytestmark = [pytest.mark.integration]


@pytest.fixture
def primary() -> Iterator[PostgresqlServer]:
    server = PostgresqlServer()
    server.start()
    yield server
    server.remove()


@pytest.fixture
def engine(primary: PostgresqlServer) -> Iterator[Engine]:
    upgrade(primary.url())
    engine = create_engine_for(primary.url())
    yield engine
    engine.dispose()


def call_ids(sessions: sessionmaker[Session]) -> list[str]:
    return sorted(cdr.call_id for cdr in all_cdrs(sessions))


def test_a_restarted_primary_is_reconnected_without_a_failed_flush(primary: PostgresqlServer,
                                                                   engine: Engine) -> None:
    writer = CdrWriter(sessions=session_factory(engine))
    writer.add(call_ended(1))
    assert writer.flush() == 1  # the pool now holds a connection the restart will drop

    primary.stop()
    primary.start()
    writer.add(call_ended(2))

    assert writer.flush() == 1
    assert call_ids(session_factory(engine)) == ["call-1@192.0.2.1", "call-2@192.0.2.1"]


def test_cdrs_of_a_flush_failed_while_the_primary_was_down_are_written_after_its_restart(
        primary: PostgresqlServer, engine: Engine) -> None:
    sessions = session_factory(engine)
    writer = CdrWriter(sessions=sessions)
    writer.add(call_ended(1))
    writer.flush()

    primary.stop()
    writer.add(call_ended(2))
    writer.add(call_ended(3))
    with pytest.raises(OperationalError):
        writer.flush()
    assert writer.pending == 2
    writer.add(call_ended(4))

    primary.start()

    assert writer.flush() == 3
    assert writer.pending == 0
    assert call_ids(sessions) == [f"call-{n}@192.0.2.1" for n in (1, 2, 3, 4)]


@pytest.mark.usefixtures("engine")  # the schema on the primary
def test_writes_follow_a_promoted_replica_through_a_multi_host_url(primary: PostgresqlServer) -> None:
    replica = PostgresqlServer(primary=primary)
    try:
        replica.start()
        # The replica first, as after a promotion the old primary stays first in the URL.
        url = (f"postgresql+psycopg://pbx@/postgres?host=127.0.0.1:{replica.port}"
               f"&host=127.0.0.1:{primary.port}&target_session_attrs=read-write")
        following = create_engine_for(url)
        sessions = session_factory(following)
        writer = CdrWriter(sessions=sessions)
        writer.add(call_ended(1))
        assert writer.flush() == 1  # on the primary: the hot standby refuses read-write sessions

        primary.stop()
        writer.add(call_ended(2))
        with pytest.raises(OperationalError):
            writer.flush()  # no writable host: the record waits in the buffer
        replica.promote()

        assert writer.flush() == 1
        assert writer.pending == 0
        assert call_ids(sessions) == ["call-1@192.0.2.1", "call-2@192.0.2.1"]
        following.dispose()
    finally:
        replica.remove()
