"""Fixtures of the portal's unit tests: a migrated SQLite database, the app on it, administrators
of each role, and a client that logs in through the form (with the CSRF token, as a browser)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.admins import AdminService
from pbx_services.cluster.config import PbxConfig, build_config
from pbx_services.cluster.database import create_engine_for, session_factory, upgrade
from pbx_services.cluster.models import AdminRole
from pbx_services.cluster.tenants import TenantService
from pbx_services.portal import create_app

AUTH_SECRET = "0123456789abcdef" * 4
PASSWORDS = {"root": "root-password-1", "ops": "ops-password-1", "alice": "alice-password-1",
             "bob": "bob-password-12"}
TENANT_A = "a.example"
TENANT_B = "b.example"

LoggedIn = Callable[[str], tuple[FlaskClient, str]]
"""`logged_in(name)`: a client logged in as that administrator, and its CSRF token."""


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'pbx.sqlite3'}"
    upgrade(url)
    engine = create_engine_for(url)
    yield session_factory(engine)
    engine.dispose()


def portal_config(sessions: sessionmaker[Session], *, state_url: str | None = None,
                  **portal: Any) -> PbxConfig:
    url = str(sessions.kw["bind"].url)
    return build_config({"database": {"url": url}, "auth": {"secret": AUTH_SECRET}, "portal": portal,
                         "state": {"url": state_url}}, env={})


@pytest.fixture
def admins(sessions: sessionmaker[Session]) -> AdminService:
    tenants = TenantService(sessions=sessions)
    tenants.add_tenant(TENANT_A, name="Tenant A")
    tenants.add_tenant(TENANT_B, name="Tenant B")
    service = AdminService(sessions=sessions)
    service.add_admin("root", password=PASSWORDS["root"], role=AdminRole.SYSTEM)
    service.add_admin("ops", password=PASSWORDS["ops"], role=AdminRole.OPERATOR)
    service.add_admin("alice", password=PASSWORDS["alice"], role=AdminRole.TENANT, tenant=TENANT_A)
    service.add_admin("bob", password=PASSWORDS["bob"], role=AdminRole.TENANT, tenant=TENANT_B)
    return service


@pytest.fixture
def app(sessions: sessionmaker[Session], admins: AdminService) -> Flask:
    app = create_app(portal_config(sessions, lockout_failures=5, lockout_minutes=15), sessions=sessions,
                     monitor=False)
    app.testing = True
    return app


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html) or \
        re.search(r'name="csrf-token" content="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def log_in(client: FlaskClient, name: str, password: str | None = None) -> Any:
    page = client.get("/login")
    return client.post("/login", data={"name": name, "password": password or PASSWORDS[name],
                                       "csrf_token": csrf_of(page.get_data(as_text=True))})


@pytest.fixture
def logged_in(app: Flask) -> LoggedIn:
    """A function giving a client logged in as one of the administrators, and its CSRF token."""
    def client_for(name: str) -> tuple[FlaskClient, str]:
        client = app.test_client()
        reply = log_in(client, name)
        assert reply.status_code == 302, reply.get_data(as_text=True)
        return client, csrf_of(client.get("/account/password").get_data(as_text=True))
    return client_for
