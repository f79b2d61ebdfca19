from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.database import create_engine_for, session_factory, upgrade
from pbx_services.cluster.models import Tenant
from pbx_services.cluster.tenants import TenantService

DEFAULT_DOMAIN = "pbx.example"
OTHER_DOMAIN = "other.example"


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """A fresh SQLite file migrated to the latest schema."""
    url = f"sqlite:///{tmp_path / 'pbx.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_engine_for(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    with sessions() as session:
        yield session


@pytest.fixture
def tenants(sessions: sessionmaker[Session]) -> dict[str, Tenant]:
    """The default tenant and one other, by domain."""
    service = TenantService(sessions=sessions)
    return {domain: service.ensure_tenant(domain)[0] for domain in (DEFAULT_DOMAIN, OTHER_DOMAIN)}
