"""The cluster page and API: every server with its state and load; disabling and enabling one.

A disabled server takes no new calls: the Call Managers read the servers table every second
(`callmanager.controller`, HOUSEKEEPING_INTERVAL) and leave disabled servers out of the choice;
the calls it has go on until they end (it shows as draining meanwhile). The Call Managers are
listed too, with the one holding the VIP marked; they cannot be disabled (400).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, url_for

from pbx_services.cluster.dao import NotFound
from pbx_services.cluster.models import AdminRole
from pbx_services.cluster.servers import ServerEntry, ServerService
from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.auth import audit, current_admin, roles_required
from pbx_services.portal.context import portal_context
from pbx_services.portal.navigation import NavItem

blueprint = Blueprint("cluster", __name__)
navigation = (NavItem("Cluster", "cluster.index", roles=frozenset({AdminRole.SYSTEM, AdminRole.OPERATOR}),
                      order=10),)

OPERATIONS = (AdminRole.SYSTEM, AdminRole.OPERATOR)


@blueprint.route("/")
def home() -> Any:
    if current_admin().role is AdminRole.TENANT:
        return redirect(url_for("audit.index"))
    return redirect(url_for("cluster.index"))


@blueprint.route("/cluster")
@roles_required(*OPERATIONS)
def index() -> Any:
    return render_template("cluster.html", servers=portal_context().monitor.statuses())


@blueprint.route("/cluster/servers/<name>/<any(enable,disable):action>", methods=["POST"])
@roles_required(*OPERATIONS)
def set_enabled(name: str, action: str) -> Any:
    server = _set_enabled(name, enabled=action == "enable")
    flash(f"{server.role} server {server.name} {'enabled' if server.enabled else 'disabled'}")
    return redirect(url_for("cluster.index"))


@blueprint.route("/api/v1/servers")
@roles_required(*OPERATIONS)
def api_servers() -> Any:
    """Every server with its state (up, degraded, down, disabled, draining, unknown), load and last probe."""
    return jsonify(servers=[status.as_json() for status in portal_context().monitor.statuses()])


@blueprint.route("/api/v1/servers/<name>/<any(enable,disable):action>", methods=["POST"])
@roles_required(*OPERATIONS)
def api_set_enabled(name: str, action: str) -> Any:
    """Enable a server (it takes new calls again) or disable it (no new calls; its calls drain)."""
    server = _set_enabled(name, enabled=action == "enable")
    return jsonify(name=server.name, role=server.role.value, enabled=server.enabled)


def _set_enabled(name: str, *, enabled: bool) -> ServerEntry:
    try:
        server = ServerService(sessions=portal_context().sessions).set_enabled(name, enabled)
    except NotFound:
        abort(404, description=f"no server named {name}")
    except InvalidValue as exc:
        abort(400, description=str(exc))
    audit("server.enable" if enabled else "server.disable", server.name, f"{server.role} server")
    return server
