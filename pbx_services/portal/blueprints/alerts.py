"""The alert history page and API: servers down (now and before) and the e-mails sent about them.

The history is what the sending portal's `AlertRunner` (`portal/alerting.py`) recorded from the
bus's server events; every portal shows it, whichever one sends. Alerts are about the cluster,
so only system and operator administrators see them.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request

from pbx_services.cluster.dao import Dao
from pbx_services.cluster.models import AdminRole, AlertEmail, AlertRecord
from pbx_services.portal.auth import roles_required
from pbx_services.portal.blueprints.audit import _int_arg
from pbx_services.portal.context import portal_context
from pbx_services.portal.navigation import NavItem

OPERATIONS = (AdminRole.SYSTEM, AdminRole.OPERATOR)
blueprint = Blueprint("alerts", __name__)
navigation = (NavItem("Alerts", "alerts.index", roles=frozenset(OPERATIONS), order=15),)

PAGE_SIZE = 50
EMAILS_ON_PAGE = 20
MAX_LIMIT = 1000


class AlertRecordDao(Dao[AlertRecord]):
    model = AlertRecord
    searchable_columns = ("role", "server", "reason")


class AlertEmailDao(Dao[AlertEmail]):
    model = AlertEmail
    searchable_columns = ("subject",)


@blueprint.route("/alerts")
@roles_required(*OPERATIONS)
def index() -> Any:
    page = _int_arg("page", 1, minimum=1)
    with portal_context().sessions() as session:
        firing = AlertRecordDao(session=session).search(resolved_at=None, order="since", direction="desc")
        history = AlertRecordDao(session=session).search(order="since", direction="desc", limit=PAGE_SIZE,
                                                         offset=(page - 1) * PAGE_SIZE)
        emails = AlertEmailDao(session=session).search(direction="desc", limit=EMAILS_ON_PAGE)
    return render_template("alerts/index.html", firing=firing.items, history=history.items,
                           total=history.total, emails=emails.items, emails_total=emails.total, page=page,
                           pages=max(1, -(-history.total // PAGE_SIZE)))


@blueprint.route("/api/v1/alerts")
@roles_required(*OPERATIONS)
def api_alerts() -> Any:
    """Servers down now and before, newest first (query: firing=true for those down now, limit, offset)."""
    limit = min(_int_arg("limit", PAGE_SIZE, minimum=1), MAX_LIMIT)
    offset = _int_arg("offset", 0, minimum=0)
    firing = request.args.get("firing", "")
    if firing not in ("", "true"):
        abort(400, description=f"firing: only true (the servers down now) or nothing, not {firing[:20]!r}")
    criteria: dict[str, Any] = {"resolved_at": None} if firing else {}
    with portal_context().sessions() as session:
        found = AlertRecordDao(session=session).search(order="since", direction="desc", limit=limit,
                                                       offset=offset, **criteria)
    return jsonify(total=found.total, alerts=[alert_json(record) for record in found.items])


@blueprint.route("/api/v1/alerts/emails")
@roles_required(*OPERATIONS)
def api_emails() -> Any:
    """The alert e-mails, newest first, with their delivery (pending, sent, failed) (query: limit, offset)."""
    limit = min(_int_arg("limit", PAGE_SIZE, minimum=1), MAX_LIMIT)
    offset = _int_arg("offset", 0, minimum=0)
    with portal_context().sessions() as session:
        found = AlertEmailDao(session=session).search(direction="desc", limit=limit, offset=offset)
    return jsonify(total=found.total, emails=[email_json(email) for email in found.items])


def alert_json(record: AlertRecord) -> dict[str, Any]:
    return {"id": record.id, "role": record.role, "server": record.server, "state": record.state,
            "reason": record.reason, "since": record.since.isoformat(),
            "resolved_at": record.resolved_at.isoformat() if record.resolved_at else None,
            "firing": record.resolved_at is None}


def email_json(email: AlertEmail) -> dict[str, Any]:
    return {"id": email.id, "created_at": email.created_at.isoformat(), "role": email.role,
            "status": email.status, "servers_down": _names(email.servers_down),
            "servers_back": _names(email.servers_back), "subject": email.subject,
            "recipients": _names(email.recipients), "delivery": email.delivery.value,
            "attempts": email.attempts, "sent_at": email.sent_at.isoformat() if email.sent_at else None,
            "sent_by": email.sent_by, "last_error": email.last_error}


def _names(joined: str) -> list[str]:
    return [name for name in joined.split(",") if name]

