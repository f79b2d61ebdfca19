"""The audit log: who did what, when (a tenant administrator sees its tenant's entries only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request

from pbx_services.portal.auth import tenant_filter
from pbx_services.portal.context import portal_context
from pbx_services.portal.navigation import NavItem

blueprint = Blueprint("audit", __name__)
navigation = (NavItem("Audit log", "audit.index", order=90),)

PAGE_SIZE = 100


@blueprint.route("/audit")
def index() -> Any:
    page = _int_arg("page", 1, minimum=1)
    search = request.args.get("q", "").strip()
    total, entries = portal_context().admins.audit_log(tenant_id=tenant_filter(), limit=PAGE_SIZE,
                                                       offset=(page - 1) * PAGE_SIZE, search=search)
    return render_template("audit.html", entries=entries, total=total, page=page, search=search,
                           pages=max(1, -(-total // PAGE_SIZE)))


@blueprint.route("/api/v1/audit")
def api_index() -> Any:
    """The audit log, newest first (query: limit, offset, q to search)."""
    limit = _int_arg("limit", PAGE_SIZE, minimum=1)
    offset = _int_arg("offset", 0, minimum=0)
    total, entries = portal_context().admins.audit_log(tenant_id=tenant_filter(), limit=limit, offset=offset,
                                                       search=request.args.get("q", "").strip())
    return jsonify(total=total, entries=[{"at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                                          "target": e.target, "detail": e.detail, "source": e.source}
                                         for e in entries])


def _int_arg(name: str, default: int, *, minimum: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        abort(400, description=f"{name}: not a whole number ({raw[:20]!r})")
    if value < minimum:
        abort(400, description=f"{name}: must be at least {minimum} (got {value})")
    return value
