"""The portal's CSV import of users: row-by-row checks, batches, progress in the job's record."""

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy import text as text_clause
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.dao import NotFound
from pbx_services.cluster.meetings import MeetingService
from pbx_services.cluster.models import ImportState, User
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import UserService
from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.user_import import ImportProgress, RowError, UserImporter

DEFAULT_DOMAIN = "pbx.example"
OTHER_DOMAIN = "other.example"


@pytest.fixture(autouse=True)
def tenants(sessions: sessionmaker[Session]) -> None:
    service = TenantService(sessions=sessions)
    for domain in (DEFAULT_DOMAIN, OTHER_DOMAIN):
        service.add_tenant(domain)


@pytest.fixture
def importer(sessions: sessionmaker[Session]) -> UserImporter:
    return UserImporter(sessions=sessions, default_domain=DEFAULT_DOMAIN)


def run(importer: UserImporter, text: str, *, tenant_scope: str | None = None) -> ImportProgress:
    job, decoded = importer.create(text.encode(), file_name="users.csv", tenant_scope=tenant_scope)
    assert job.state is ImportState.QUEUED
    return importer.run(job.id, decoded)


def users(sessions: sessionmaker[Session]) -> dict[tuple[str, str], User]:
    with sessions() as session:
        return {(user.tenant.domain, user.extension): user
                for user in session.scalars(select(User)).all() if user.tenant}


def test_every_column_imported(importer: UserImporter, sessions: sessionmaker[Session]) -> None:
    done = run(importer, "\ufeffExtension,Password,Name,Email,Tenant\n"
                         '1001,secret1,"Alice, A.",alice@example.org,\n'
                         "\n"
                         f"1001 , other1 ,,,{OTHER_DOMAIN.upper()}\n")

    assert (done.state, done.total, done.processed, done.imported, done.existing, done.failed) == \
        (ImportState.DONE, 2, 2, 2, 0, 0)
    assert done.percent == 100 and done.errors == () and done.finished_at is not None
    found = users(sessions)
    assert set(found) == {(DEFAULT_DOMAIN, "1001"), (OTHER_DOMAIN, "1001")}
    alice = found[DEFAULT_DOMAIN, "1001"]
    assert (alice.display_name, alice.email) == ("Alice, A.", "alice@example.org")
    assert alice.ha1_md5 == hashlib.md5(b"1001:pbx.example:secret1").hexdigest()
    assert found[OTHER_DOMAIN, "1001"].ha1_sha256 == hashlib.sha256(b"1001:other.example:other1").hexdigest()


def test_bad_rows_reported_by_line_and_column_and_good_ones_imported(
        importer: UserImporter, sessions: sessionmaker[Session]) -> None:
    UserService(sessions=sessions, default_domain=DEFAULT_DOMAIN).add_user("1005", "secret5")
    MeetingService(sessions=sessions, default_domain=DEFAULT_DOMAIN).add_room("800")
    done = run(importer, "extension,password,email,tenant\n"
                         "1001,secret1,,\n"
                         "10 01,x,not-an-email,\n"
                         "1002,secret2,,nowhere.example\n"
                         "1003,secret3\n"
                         "1001,again1,,\n"
                         "1005,secret5,,\n"
                         "800,secret8,,\n"
                         "1004,secret4,,\n")

    assert [str(error) for error in done.errors] == [
        "line 3, column extension: extension '10 01' may only contain letters, digits, '.', '_' and '-'",
        "line 3, column password: password is shorter than 4 characters",
        "line 3, column email: email 'not-an-email' is not an email address",
        "line 4, column tenant: unknown tenant 'nowhere.example'",
        "line 5: expected 4 fields, got 2",
        "line 6, column extension: 1001@pbx.example is already on line 2",
        "line 8, column extension: 800 is already meeting room 800 of pbx.example",
    ]
    assert (done.state, done.total, done.processed, done.imported, done.existing, done.failed) == \
        (ImportState.DONE, 8, 8, 2, 1, 5)
    assert {extension for _, extension in users(sessions)} == {"1001", "1004", "1005"}


def test_the_policy_columns_are_imported_and_a_bad_one_reported_by_its_column(
        importer: UserImporter, sessions: sessionmaker[Session]) -> None:
    done = run(importer, "extension,password,permission,max_calls,pickup_group,withhold_number\n"
                         "1001,secret1,premium,3,desk,on\n"
                         "1002,secret2,,,,\n"
                         "1003,secret3,national,-1,,perhaps\n")

    assert [str(error) for error in done.errors] == [
        "line 4, column max_calls: max calls -1 is out of range: 0 to 100000 (0: no limit)",
        "line 4, column withhold_number: withhold number: yes or no (true or false, 1 or 0), not 'perhaps'",
    ]
    found = users(sessions)
    assert set(found) == {(DEFAULT_DOMAIN, "1001"), (DEFAULT_DOMAIN, "1002")}
    first, second = found[DEFAULT_DOMAIN, "1001"], found[DEFAULT_DOMAIN, "1002"]
    assert (first.permission.value, first.max_calls, first.pickup_group, first.withhold_number) == \
        ("premium", 3, "desk", True)
    assert (second.permission.value, second.max_calls, second.pickup_group, second.withhold_number) == \
        ("national", 0, None, False)


@pytest.mark.parametrize(("data", "message"), [
    (b"", "file: the file is empty (expected a header row)"),
    (b"extension,name\n1001,A\n", "file: missing column 'password'"),
    (b"extension,password,phone\n", "file: unknown column 'phone' (columns are: extension, password, name, "
                                    "email, tenant, permission, max_calls, pickup_group, withhold_number)"),
    (b"extension,password\n1001,caf\xe9\n", "file: line 2 is not UTF-8 text"),
])
def test_a_file_that_cannot_be_imported_is_refused_before_any_job(
        importer: UserImporter, data: bytes, message: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        importer.create(data, file_name="users.csv")
    assert str(refused.value) == message
    assert importer.recent() == []


def test_a_tenant_administrators_import_only_adds_to_its_tenant(
        importer: UserImporter, sessions: sessionmaker[Session]) -> None:
    done = run(importer, "extension,password,tenant\n"
                         "2001,secret1,\n"
                         f"2002,secret2,{DEFAULT_DOMAIN}\n"
                         f"2003,secret3,{OTHER_DOMAIN}\n", tenant_scope=OTHER_DOMAIN)

    assert done.errors == (RowError(3, "tenant", f"tenant '{DEFAULT_DOMAIN}': this import may only add users "
                                                 f"to {OTHER_DOMAIN}"),)
    assert set(users(sessions)) == {(OTHER_DOMAIN, "2001"), (OTHER_DOMAIN, "2003")}
    assert importer.progress(done.id, tenant_scope=OTHER_DOMAIN).imported == 2
    with pytest.raises(NotFound):
        importer.progress(done.id, tenant_scope=DEFAULT_DOMAIN)
    assert importer.recent(tenant_scope=DEFAULT_DOMAIN) == []
    assert [job.id for job in importer.recent()] == [done.id]


def test_progress_is_readable_while_the_rows_go_in_batch_by_batch(sessions: sessionmaker[Session]) -> None:
    seen: list[int] = []
    job_ids: list[int] = []
    reading = []

    def clock() -> datetime:
        # Called as each batch is recorded: what another portal worker would read at that moment
        # (reading calls the clock too, hence the guard).
        if job_ids and not reading:
            reading.append(True)
            seen.append(importer.progress(job_ids[0]).processed)
            reading.clear()
        return datetime.now(UTC)

    importer = UserImporter(sessions=sessions, default_domain=DEFAULT_DOMAIN, batch_rows=250, clock=clock)
    text = "extension,password\n" + "".join(f"{3000 + n},secret{n}\n" for n in range(1000))
    job, decoded = importer.create(text.encode(), file_name="big.csv")
    job_ids.append(job.id)
    done = importer.run(job.id, decoded)

    assert {250, 500, 750} <= set(seen)
    assert all(processed % 250 == 0 for processed in seen)
    assert (done.state, done.total, done.imported) == (ImportState.DONE, 1000, 1000)


def test_started_in_a_thread(importer: UserImporter, sessions: sessionmaker[Session]) -> None:
    text = "extension,password\n" + "".join(f"{4000 + n},secret{n}\n" for n in range(3000))
    job = importer.start(text.encode(), file_name="users.csv", created_by="admin")
    importer.join(job.id, timeout=60)

    done = importer.progress(job.id)
    assert (done.state, done.imported, done.created_by) == (ImportState.DONE, 3000, "admin")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(User)) == 3000


def test_a_job_nobody_moves_any_more_is_reported_interrupted(sessions: sessionmaker[Session]) -> None:
    now = [datetime(2026, 12, 3, 12, 0, tzinfo=UTC)]
    importer = UserImporter(sessions=sessions, default_domain=DEFAULT_DOMAIN, clock=lambda: now[0])
    job, _ = importer.create(b"extension,password\n1001,secret1\n", file_name="users.csv")

    now[0] += timedelta(minutes=4)
    assert importer.progress(job.id).state is ImportState.QUEUED
    now[0] += timedelta(minutes=2)
    stopped = importer.progress(job.id)
    assert stopped.state is ImportState.FAILED
    assert stopped.message == "interrupted: the portal process importing the file stopped"


def test_a_database_error_fails_the_job_with_its_reason(importer: UserImporter,
                                                         sessions: sessionmaker[Session]) -> None:
    job, text = importer.create(b"extension,password\n1001,secret1\n", file_name="users.csv")
    with sessions.begin() as session:
        session.execute(text_clause("DROP TABLE users"))

    done = importer.run(job.id, text)

    assert done.state is ImportState.FAILED
    assert done.message is not None and done.message.startswith("stopped: ")
    assert "no such table: users" in done.message
