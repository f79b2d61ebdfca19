"""Roles and tenants: what each kind of administrator may reach, and nothing of another tenant."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask, jsonify, request

from pbx_services.cluster.admins import AdminService
from pbx_services.portal.auth import audit, scoped_domain, tenant_filter
from tests.portal_routes import protected_calls
from tests.unit.portal.conftest import TENANT_A, TENANT_B, LoggedIn


def test_an_operator_runs_the_cluster_but_not_the_administrators(logged_in: LoggedIn) -> None:
    client, token = logged_in("ops")

    assert client.get("/cluster").status_code == 200
    assert client.get("/api/v1/servers").status_code == 200
    assert client.get("/admins").status_code == 403
    assert client.get("/api/v1/admins").status_code == 403
    assert client.post("/admins/root/delete", data={"csrf_token": token}).status_code == 403


def test_a_tenant_administrator_sees_neither_cluster_nor_administrators(logged_in: LoggedIn) -> None:
    client, token = logged_in("alice")

    assert client.get("/cluster").status_code == 403
    assert client.get("/api/v1/servers").status_code == 403
    assert client.post("/api/v1/servers/media-1/disable", headers={"X-CSRF-Token": token}).status_code == 403
    assert client.get("/admins").status_code == 403
    assert client.get("/").headers["Location"] == "/audit"
    menu = client.get("/audit").get_data(as_text=True).split("</nav>")[0]
    assert "Audit log" in menu and "Cluster" not in menu and "Administrators" not in menu


def test_a_system_administrator_reaches_everything(logged_in: LoggedIn) -> None:
    client, _ = logged_in("root")

    for path in ("/cluster", "/admins", "/audit", "/api/v1/servers", "/api/v1/admins", "/api/v1/audit"):
        assert client.get(path).status_code == 200, path


@pytest.fixture
def tenant_app(app: Flask) -> Flask:
    """The app with a blueprint working on tenants' data the way the administration pages do."""
    probe = Blueprint("tenant_probe", __name__)

    @probe.route("/api/v1/probe/things")
    def things() -> Any:
        return jsonify(tenant=scoped_domain(request.args.get("tenant")), only=tenant_filter())

    @probe.route("/api/v1/probe/things", methods=["POST"])
    def change() -> Any:
        domain = scoped_domain((request.get_json(silent=True) or {}).get("tenant"))
        audit("thing.change", f"x@{domain}")
        return jsonify(changed=domain)

    app.register_blueprint(probe)
    return app


def test_a_tenant_administrator_is_held_to_its_tenant(tenant_app: Flask, logged_in: LoggedIn,
                                                      admins: AdminService) -> None:
    alice, token = logged_in("alice")
    root, _ = logged_in("root")
    alice_tenant = next(a.tenant_id for a in admins.list_admins() if a.name == "alice")

    assert alice.get("/api/v1/probe/things").get_json() == {"tenant": TENANT_A, "only": alice_tenant}
    assert alice.get(f"/api/v1/probe/things?tenant={TENANT_A.upper()}").get_json()["tenant"] == TENANT_A
    assert alice.get(f"/api/v1/probe/things?tenant={TENANT_B}").status_code == 403
    refused = alice.post("/api/v1/probe/things", json={"tenant": TENANT_B}, headers={"X-CSRF-Token": token})
    assert refused.status_code == 403
    assert refused.get_json() == {"error": "this tenant is not yours"}
    assert root.get(f"/api/v1/probe/things?tenant={TENANT_B}").get_json() == {"tenant": TENANT_B,
                                                                                "only": None}


def test_the_audit_log_of_a_tenant_administrator_holds_its_tenant_only(logged_in: LoggedIn,
                                                                       admins: AdminService) -> None:
    tenant_ids = {a.name: a.tenant_id for a in admins.list_admins()}
    admins.record(actor="root", action="user.add", target=f"1001@{TENANT_A}", tenant_id=tenant_ids["alice"])
    admins.record(actor="root", action="user.add", target=f"2002@{TENANT_B}", tenant_id=tenant_ids["bob"])
    admins.record(actor="root", action="server.disable", target="ivr-1")
    alice, _ = logged_in("alice")
    root, _ = logged_in("root")

    alice_sees = [entry["target"] for entry in alice.get("/api/v1/audit").get_json()["entries"]]
    root_sees = [entry["target"] for entry in root.get("/api/v1/audit").get_json()["entries"]]

    assert f"1001@{TENANT_A}" in alice_sees
    assert f"2002@{TENANT_B}" not in alice_sees and "ivr-1" not in alice_sees
    assert f"2002@{TENANT_A}" not in alice.get("/audit").get_data(as_text=True)
    assert {f"1001@{TENANT_A}", f"2002@{TENANT_B}", "ivr-1"} <= set(root_sees)


def test_every_route_but_the_public_ones_needs_a_login(app: Flask) -> None:
    client = app.test_client()
    calls = list(protected_calls(app))
    for call in calls:
        reply = client.open(call.path, method=call.method, json={} if call.is_api else None)
        if call.is_api:
            assert reply.status_code == 401, f"{call.method} {call.path}: {reply.status_code}"
        elif call.method == "GET":
            assert reply.status_code == 302 and reply.headers["Location"].startswith("/login"), \
                f"{call.method} {call.path}: {reply.status_code}"
        else:  # a page's form: without a session there is no CSRF token either
            assert reply.status_code in (302, 400), f"{call.method} {call.path}: {reply.status_code}"
    assert len(calls) >= 10
