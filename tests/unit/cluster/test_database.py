from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, inspect, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.database import (
    POSTGRESQL_CONNECT_TIMEOUT_S,
    alembic_config,
    create_engine_for,
    head_revision,
    schema_revision,
    upgrade,
)
from pbx_services.cluster.models import Base, Tenant, User

MULTI_HOST_URL = ("postgresql+psycopg://pbx:p%40ss@/pbx?host=10.20.0.21:5432&host=10.20.0.22:5432"
                  "&target_session_attrs=read-write")


class _Connecting(Exception):
    """Raised instead of connecting, carrying what psycopg.connect() would have been given."""


def connect_params_of(engine: Engine) -> dict[str, object]:
    """The keyword arguments the engine hands psycopg.connect(), without a server."""

    def capture(dialect: object, record: object, cargs: object, cparams: dict[str, object]) -> None:
        raise _Connecting({name: value for name, value in cparams.items() if name != "context"})

    event.listen(engine, "do_connect", capture)
    with pytest.raises(_Connecting) as connecting:
        engine.connect()
    return connecting.value.args[0]  # type: ignore[no-any-return]


def test_migrations_create_the_schema_on_a_fresh_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    engine = create_engine_for(url)
    assert schema_revision(engine) is None

    upgrade(url)

    assert schema_revision(engine) == head_revision() == "0021"
    tables = set(inspect(engine).get_table_names())
    assert {"tenants", "users", "cdrs", "alembic_version"} <= tables
    user_columns = {column["name"] for column in inspect(engine).get_columns("users")}
    assert not any("password" in column for column in user_columns)
    cdr_indexes = {index["name"]: index["column_names"] for index in inspect(engine).get_indexes("cdrs")}
    assert cdr_indexes["ix_cdrs_start_time"] == ["start_time"]
    assert cdr_indexes["ix_cdrs_caller_start_time"] == ["caller", "start_time"]
    assert cdr_indexes["ix_cdrs_callee_start_time"] == ["callee", "start_time"]
    engine.dispose()


def test_upgrade_is_idempotent(db_url: str, engine: Engine) -> None:
    upgrade(db_url)

    assert schema_revision(engine) == head_revision()


def test_migrations_match_the_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_downgrade_removes_everything(db_url: str, engine: Engine) -> None:
    command.downgrade(alembic_config(db_url), "base")

    assert schema_revision(engine) is None
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}


def test_url_with_percent_sign_reaches_the_migrations(tmp_path: Path) -> None:
    # alembic options go through ConfigParser interpolation; the URL must not.
    directory = tmp_path / "100%"
    directory.mkdir()
    url = f"sqlite:///{directory / 'pbx.sqlite3'}"

    upgrade(url)

    assert schema_revision(create_engine_for(url)) == head_revision()


def test_sqlite_connections_use_wal_foreign_keys_and_busy_timeout(engine: Engine) -> None:
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_in_memory_sqlite_works_without_wal() -> None:
    engine = create_engine_for("sqlite://")
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_foreign_keys_are_enforced(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.add(User(tenant_id=999, extension="1001", ha1_md5="0" * 32, ha1_sha256="0" * 64))


def test_times_come_back_as_utc_instants(sessions: sessionmaker[Session]) -> None:
    created = datetime(2026, 1, 2, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    with sessions.begin() as session:
        tenant = Tenant(name="t", domain="t.example")
        session.add(tenant)
        session.flush()
        session.add(
            User(
                tenant_id=tenant.id, extension="1", ha1_md5="0" * 32, ha1_sha256="0" * 64, created_at=created
            )
        )

    with sessions() as session:
        stored = session.query(User).one().created_at

    assert stored == created
    assert stored.tzinfo == UTC
    assert stored.hour == 10


def test_naive_times_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"), sessions.begin() as session:
        tenant = Tenant(name="t", domain="t.example")
        session.add(tenant)
        session.flush()
        session.add(
            User(
                tenant_id=tenant.id,
                extension="1",
                ha1_md5="0" * 32,
                ha1_sha256="0" * 64,
                created_at=datetime(2026, 1, 2, 12, 0),
            )
        )
        session.flush()


def test_a_multi_host_url_reaches_libpq_as_host_and_port_lists() -> None:
    params = connect_params_of(create_engine_for(MULTI_HOST_URL))

    assert params == {
        "dbname": "pbx", "user": "pbx", "password": "p@ss",
        "host": "10.20.0.21,10.20.0.22", "port": "5432,5432",
        "target_session_attrs": "read-write", "connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_S,
    }


def test_the_urls_connect_timeout_wins() -> None:
    params = connect_params_of(create_engine_for(MULTI_HOST_URL + "&connect_timeout=10"))

    assert params["connect_timeout"] == "10"


def test_connect_args_given_by_the_caller_are_kept() -> None:
    engine = create_engine_for(MULTI_HOST_URL, connect_args={"application_name": "pbx-test"})

    params = connect_params_of(engine)

    assert params["application_name"] == "pbx-test"
    assert params["connect_timeout"] == POSTGRESQL_CONNECT_TIMEOUT_S


@pytest.mark.parametrize("url", [MULTI_HOST_URL, "sqlite://"])
def test_pooled_connections_are_pinged_before_use(url: str) -> None:
    assert create_engine_for(url).pool._pre_ping  # type: ignore[attr-defined]
