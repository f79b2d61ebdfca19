"""The portal's CSV import of users on a real PostgreSQL (tests/postgresql_server.py), where the
existence checks must find users and other numbered things across tenants as on SQLite, and
the planner's statistics are refreshed as the table grows (`dao.refresh_statistics`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.database import create_engine_for, session_factory, upgrade
from pbx_services.cluster.meetings import MeetingService
from pbx_services.cluster.models import ImportState
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import UserService
from pbx_services.portal.user_import import UserImporter
from tests.postgresql_server import PostgresqlServer

pytestmark = [pytest.mark.integration]

DOMAINS = ("a.example", "b.example")


@pytest.fixture
def sessions() -> Iterator[sessionmaker[Session]]:
    server = PostgresqlServer()
    server.start()
    try:
        upgrade(server.url())
        engine = create_engine_for(server.url())
        yield session_factory(engine)
        engine.dispose()
    finally:
        server.remove()


def test_an_import_on_postgresql_finds_what_exists_in_each_tenant(sessions: sessionmaker[Session]) -> None:
    for domain in DOMAINS:
        TenantService(sessions=sessions).add_tenant(domain)
    UserService(sessions=sessions, default_domain=DOMAINS[0]).add_user("5000", "secret5")
    MeetingService(sessions=sessions, default_domain=DOMAINS[1]).add_room("5001")
    importer = UserImporter(sessions=sessions, default_domain=DOMAINS[0], batch_rows=500)
    first = "extension,password,tenant\n" + "".join(
        f"{5000 + i},secret-{i},{domain}\n" for i in range(3000) for domain in DOMAINS)

    job, decoded = importer.create(first.encode(), file_name="users.csv")
    done = importer.run(job.id, decoded)
    # Again, with the same users and two new ones: what exists is counted, not added twice.
    again = first + "9000,secret-9,a.example\n9000,secret-9,b.example\n"
    job, decoded = importer.create(again.encode(), file_name="users.csv")
    redone = importer.run(job.id, decoded)

    assert (done.state, done.imported, done.existing, done.failed) == (ImportState.DONE, 5998, 1, 1)
    assert [str(error) for error in done.errors] == [
        "line 5, column extension: 5001 is already meeting room 5001 of b.example"]
    assert (redone.imported, redone.existing, redone.failed) == (2, 5999, 1)
    with sessions() as session:
        analyzed = session.execute(text("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                                        "WHERE relname = 'users'")).scalar_one()
        count = session.execute(text("SELECT count(*) FROM users")).scalar_one()
    assert analyzed  # the import refreshed the planner's statistics of the grown table
    assert count == 6001
