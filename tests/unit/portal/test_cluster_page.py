"""The cluster page and API: servers with their state, disabled and enabled, in the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from pbx_services.cluster.admins import AdminService
from pbx_services.cluster.models import ServerRole
from pbx_services.cluster.servers import ServerEntry, ServerService
from pbx_services.portal import create_app
from pbx_services.portal.cluster_monitor import Probe
from pbx_services.portal.context import portal_context
from tests.unit.portal.conftest import LoggedIn, log_in, portal_config

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
HEALTH = {"ivr-1": {"status": "ok", "calls": 2, "version": "0.1.0"}, "ivr-2": {"status": "ok", "calls": 0},
          "media-1": {"status": "ok", "media_calls": 2},
          "cm1": {"status": "ok", "active_calls": 3, "registered_contacts": 10, "holds_sip_address": True},
          "cm2": {"status": "ok", "active_calls": 0, "registered_contacts": 10, "holds_sip_address": False}}


def fixed_prober(server: ServerEntry) -> Probe:
    """What each server's /health says in these tests (ivr-3 is down)."""
    health = HEALTH.get(server.name)
    return Probe(at=NOW, answered=health is not None, health=health or {},
                 error="" if health else "connection refused")


@pytest.fixture
def app(sessions: sessionmaker[Session], admins: AdminService) -> Flask:
    servers = ServerService(sessions=sessions)
    for name in ("ivr-1", "ivr-2", "ivr-3"):
        servers.add_server(name, role=ServerRole.IVR, host="127.0.0.1", port=5090, http_port=9061)
    servers.add_server("media-1", role=ServerRole.MEDIA, host="127.0.0.1", port=2223, http_port=9062)
    app = create_app(portal_config(sessions), sessions=sessions, prober=fixed_prober, monitor=False)
    with app.app_context():
        portal_context().monitor.refresh()
    return app


def test_the_api_lists_every_server_with_state_load_probe_and_version(logged_in: LoggedIn) -> None:
    client, _ = logged_in("ops")

    servers = {s["name"]: s for s in client.get("/api/v1/servers").get_json()["servers"]}

    assert {name: s["state"] for name, s in servers.items()} == {
        "ivr-1": "up", "ivr-2": "up", "ivr-3": "down", "media-1": "up"}
    assert servers["ivr-1"]["load"] == {"calls": 2}
    assert servers["ivr-1"]["version"] == "0.1.0"
    assert servers["ivr-1"]["last_probe"] == NOW.isoformat()
    assert servers["ivr-3"]["error"] == "connection refused"
    assert servers["media-1"]["load"] == {"media_calls": 2}


def test_the_page_shows_each_server_with_its_state(logged_in: LoggedIn) -> None:
    client, _ = logged_in("ops")

    html = client.get("/cluster").get_data(as_text=True)

    assert '<tr data-server="ivr-3">' in html
    assert '<span class="badge state-down">down</span>' in html
    assert html.count('<span class="badge state-up">up</span>') == 3
    assert '<script src="/static/cluster.js"></script>' in html
    assert "http://" not in html.split("<body>")[1].replace('action="/', "")  # nothing from another site


def test_disabling_from_the_page_writes_the_row_and_the_audit_log(logged_in: LoggedIn,
                                                                   sessions: sessionmaker[Session]) -> None:
    client, token = logged_in("ops")

    reply = client.post("/cluster/servers/ivr-1/disable", data={"csrf_token": token})

    assert reply.status_code == 302
    assert not next(s for s in ServerService(sessions=sessions).list_servers() if s.name == "ivr-1").enabled
    servers = {s["name"]: s for s in client.get("/api/v1/servers").get_json()["servers"]}
    assert servers["ivr-1"]["state"] == "draining"  # two calls still on it
    page = client.get("/cluster").get_data(as_text=True)
    assert 'action="/cluster/servers/ivr-1/enable"' in page
    audit = client.get("/api/v1/audit").get_json()["entries"][0]
    assert (audit["actor"], audit["action"], audit["target"]) == ("ops", "server.disable", "ivr-1")


def test_enabling_and_disabling_through_the_api(logged_in: LoggedIn, sessions: sessionmaker[Session]) -> None:
    client, token = logged_in("root")
    headers = {"X-CSRF-Token": token}

    disabled = client.post("/api/v1/servers/ivr-2/disable", headers=headers)
    idle = {s["name"]: s["state"] for s in client.get("/api/v1/servers").get_json()["servers"]}["ivr-2"]
    enabled = client.post("/api/v1/servers/ivr-2/enable", headers=headers)

    assert disabled.get_json() == {"name": "ivr-2", "role": "ivr", "enabled": False}
    assert idle == "disabled"  # no calls left to drain
    assert enabled.get_json()["enabled"] is True
    assert next(s for s in ServerService(sessions=sessions).list_servers() if s.name == "ivr-2").enabled
    actions = [(e["action"], e["target"]) for e in client.get("/api/v1/audit").get_json()["entries"][:2]]
    assert actions == [("server.enable", "ivr-2"), ("server.disable", "ivr-2")]


def test_an_unknown_server_is_404(logged_in: LoggedIn) -> None:
    client, token = logged_in("root")

    reply = client.post("/api/v1/servers/nope/disable", headers={"X-CSRF-Token": token})

    assert reply.status_code == 404
    assert reply.get_json() == {"error": "no server named nope"}


def test_the_page_renders_before_any_probe(sessions: sessionmaker[Session], app: Flask) -> None:
    """A second portal on the same servers, whose first probe has not come back yet."""
    app = create_app(portal_config(sessions), sessions=sessions, prober=fixed_prober, monitor=False)
    client = app.test_client()
    log_in(client, "ops")

    html = client.get("/cluster").get_data(as_text=True)

    assert html.count('<span class="badge state-unknown">unknown</span>') == 4


def test_call_managers_show_which_holds_the_vip_and_cannot_be_disabled(
        logged_in: LoggedIn, sessions: sessionmaker[Session], app: Flask) -> None:
    servers = ServerService(sessions=sessions)
    for name, host in (("cm1", "192.0.2.11"), ("cm2", "192.0.2.12")):
        servers.add_server(name, role=ServerRole.CALLMANAGER, host=host, port=5060, http_port=9060)
    with app.app_context():
        portal_context().monitor.refresh()
    client, token = logged_in("root")

    listed = {s["name"]: s for s in client.get("/api/v1/servers").get_json()["servers"]}
    page = client.get("/cluster").get_data(as_text=True)
    by_api = client.post("/api/v1/servers/cm1/disable", headers={"X-CSRF-Token": token})
    by_form = client.post("/cluster/servers/cm2/disable", data={"csrf_token": token})

    assert (listed["cm1"]["state"], listed["cm1"]["holds_vip"]) == ("up", True)
    assert listed["cm2"]["holds_vip"] is False
    assert listed["cm1"]["load"] == {"active_calls": 3, "registered_contacts": 10}
    assert not listed["cm1"]["can_be_disabled"] and listed["ivr-1"]["can_be_disabled"]
    assert 'callmanager <span class="badge vip">VIP</span>' in page and "standby" in page
    assert "/cluster/servers/cm1/" not in page and 'action="/cluster/servers/ivr-1/disable"' in page
    assert by_api.status_code == 400 and "holds the VIP" in by_api.get_json()["error"]
    assert by_form.status_code == 400
    assert all(s.enabled for s in servers.list_servers())
    entries = client.get("/api/v1/audit").get_json()["entries"]
    assert not [e for e in entries if e["action"].startswith("server.")]


def test_an_all_in_one_shows_each_roles_own_load(sessions: sessionmaker[Session], app: Flask) -> None:
    """Its servers share one /health, which gives each role's part under `roles`."""
    health = {"status": "ok", "calls": 5, "roles": {"ivr": {"status": "ok", "calls": 1},
                                                    "queue": {"status": "degraded", "calls": 5}}}
    servers = ServerService(sessions=sessions)
    for name, role in (("aio-ivr", ServerRole.IVR), ("aio-queue", ServerRole.QUEUE)):
        servers.add_server(name, role=role, host="127.0.0.1", port=5090, http_port=9060)
    app = create_app(portal_config(sessions), sessions=sessions, monitor=False,
                     prober=lambda server: Probe(at=NOW, answered=True, health=health))
    with app.app_context():
        monitor = portal_context().monitor
        monitor.refresh()
        statuses = {s.name: s for s in monitor.statuses()}

    assert (statuses["aio-ivr"].load, statuses["aio-ivr"].state.value) == ({"calls": 1}, "up")
    assert (statuses["aio-queue"].load, statuses["aio-queue"].state.value) == ({"calls": 5}, "degraded")
