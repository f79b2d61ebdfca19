"""Engines, sessions and schema migrations of the system of record.

The schema is changed only by the Alembic migrations shipped in
`pbx_services/cluster/migrations/`; `upgrade(url)` applies them from code, so no
alembic.ini is needed at run time. To write a new migration during development:

    from alembic import command
    command.revision(alembic_config(url), message="...", autogenerate=True)
"""

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# Seconds libpq waits for each host of the URL: a primary that is down or unreachable costs
# this much, then the next host is tried, instead of the kernel's TCP timeout (minutes).
POSTGRESQL_CONNECT_TIMEOUT_S = 3


def create_engine_for(url: str, **kwargs: Any) -> Engine:
    """An engine for `url` whose pooled connections are checked before use.

    `pool_pre_ping`: a connection the server dropped (PostgreSQL restarted, a replica
    promoted) is replaced by a new one at checkout instead of failing the next transaction.
    A new PostgreSQL connection waits at most POSTGRESQL_CONNECT_TIMEOUT_S per host unless
    the URL sets connect_timeout; with several hosts and target_session_attrs=read-write
    (`postgresql+psycopg://u:p@/pbx?host=h1:5432&host=h2:5432&target_session_attrs=read-write`)
    it lands on whichever host is the primary. SQLite gets WAL, foreign keys and a busy
    timeout on every connection.
    """
    parsed = make_url(url)
    options: dict[str, Any] = {"pool_pre_ping": True, **kwargs}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_S,
                                   **options.get("connect_args", {})}
    engine = create_engine(parsed, **options)
    if engine.dialect.name == "sqlite":
        in_memory = parsed.database in (None, "", ":memory:")
        event.listen(engine, "connect", _sqlite_pragmas_setter(wal=not in_memory))
    return engine


def _sqlite_pragmas_setter(*, wal: bool) -> Any:
    def set_pragmas(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            if wal:
                # WAL lets readers (portal, reports) run while a daemon writes; with WAL,
                # synchronous=NORMAL is still safe against corruption and much faster.
                cursor.execute("PRAGMA journal_mode = WAL")
                cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    return set_pragmas


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions whose objects stay readable after commit (services return them to callers)."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the shipped migrations, built in code."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Passed as an attribute, not an option: options go through ConfigParser
    # interpolation, which breaks on the '%' of URL-encoded passwords.
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at `url` to `revision` (creating the schema on an empty database)."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str:
    """The revision the shipped migrations end at."""
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "the shipped migrations have no head"
    return head


def schema_revision(engine: Engine) -> str | None:
    """The revision the database is at, None for a database never migrated."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
