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


def create_engine_for(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        in_memory = make_url(url).database in (None, "", ":memory:")
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
