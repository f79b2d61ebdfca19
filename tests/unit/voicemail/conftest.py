from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.database import create_engine_for, session_factory, upgrade
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.users import UserService
from pbx_services.cluster.voicemail import VoicemailService

DOMAIN = "pbx.local"
PIN = "4321"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh database with users 1001 and 1002 (1002 with an email address)."""
    url = f"sqlite:///{tmp_path / 'pbx.sqlite3'}"
    upgrade(url)
    engine = create_engine_for(url)
    sessions = session_factory(engine)
    TenantService(sessions=sessions).ensure_tenant(DOMAIN)
    users = UserService(sessions=sessions, default_domain=DOMAIN)
    users.add_user("1001", "secret-1001")
    users.add_user("1002", "secret-1002", email="bob@example.com")
    yield sessions
    engine.dispose()


@pytest.fixture
def mailboxes(sessions: sessionmaker[Session]) -> VoicemailService:
    service = VoicemailService(sessions=sessions, default_domain=DOMAIN)
    service.enable("1002", pin=PIN)
    return service
