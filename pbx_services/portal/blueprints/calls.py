"""Live calls and registrations, read from the Call Manager's control API (`callmanager.live_view`).

The portal asks the Call Manager of its own host (the `http` section: where `pbx trunk list` asks
too); behind the VIP, that is the Call Manager holding the SIP address, the one carrying the
calls. A tenant administrator sees its tenant's calls and users only.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request

from pbx_services.cluster.control_client import CallManagerUnavailable, ask_call_manager
from pbx_services.cluster.dao import TenantDao, UserDao
from pbx_services.portal.admin_views import (
    answer_not_found,
    api_errors,
    form_int,
    raise_if,
    request_tenant,
    tenant_choices,
)
from pbx_services.portal.auth import tenant_filter
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import FieldErrors
from pbx_services.portal.navigation import NavItem

blueprint = Blueprint("calls", __name__)
navigation = (NavItem("Calls", "calls.index", order=70),
              NavItem("Registrations", "calls.registrations", order=75))
answer_not_found(blueprint)

PAGE_SIZE = 100


def _ask(path: list[str], body: dict[str, Any] | None = None) -> dict[str, Any]:
    return ask_call_manager(portal_context().config, path, body)


def live_calls() -> list[dict[str, Any]]:
    """The Call Manager's calls the administrator may see."""
    calls: list[dict[str, Any]] = _ask(["calls"]).get("calls", [])
    tenant_id = tenant_filter()
    return [call for call in calls if tenant_id is None or call.get("tenant_id") == tenant_id]


def registrations(tenant: str | None, text: str, limit: int, offset: int) -> tuple[int, list[dict[str, Any]]]:
    """A page of users (of `tenant`, or every tenant the administrator sees) with their devices."""
    with portal_context().sessions() as session:
        criteria: dict[str, Any] = {}
        if tenant is not None:
            found = TenantDao(session=session).find_by(domain=tenant.lower())
            criteria["tenant_id"] = found.id if found is not None else -1
        elif (tenant_id := tenant_filter()) is not None:
            criteria["tenant_id"] = tenant_id
        result = UserDao(session=session).search(search=text or None, order="extension", limit=limit,
                                                 offset=offset, **criteria)
    aors = [f"{user.extension}@{user.tenant.domain}" for user in result.items]
    devices = _ask(["registrations"], {"aors": aors}).get("registrations", {}) if aors else {}
    return result.total, [{"aor": aor, "name": user.display_name, "devices": devices.get(aor, [])}
                          for aor, user in zip(aors, result.items, strict=True)]


def _page() -> tuple[int, str]:
    errors = FieldErrors()
    page = max(1, form_int(request.args, "page", errors, 1))
    if errors:
        abort(400, description=next(iter(errors.values())))
    return page, request.args.get("q", "").strip()


# -- pages ----------------------------------------------------------------------------------------

@blueprint.route("/calls")
def index() -> Any:
    try:
        calls, problem = live_calls(), None
    except CallManagerUnavailable as exc:
        calls, problem = [], str(exc)
    return render_template("calls/index.html", calls=calls, problem=problem)


@blueprint.route("/calls/registrations", endpoint="registrations")
def registrations_page() -> Any:
    tenant = request_tenant()
    page, text = _page()
    try:
        (total, users), problem = registrations(tenant, text, PAGE_SIZE, (page - 1) * PAGE_SIZE), None
    except CallManagerUnavailable as exc:
        (total, users), problem = (0, []), str(exc)
    return render_template("calls/registrations.html", users=users, total=total, page=page, search=text,
                           pages=max(1, -(-total // PAGE_SIZE)), tenant=tenant, problem=problem,
                           tenant_options=[("", "every tenant")] + [(d, d) for d in tenant_choices()])


# -- API ------------------------------------------------------------------------------------------

@blueprint.route("/api/v1/calls")
def api_calls() -> Any:
    """The calls in progress: caller, callee, domain, phase, seconds since the INVITE and since the answer."""
    try:
        return jsonify(calls=live_calls())
    except CallManagerUnavailable as exc:
        return jsonify(error=str(exc)), 503


@blueprint.route("/api/v1/registrations")
def api_registrations() -> Any:
    """Users with their registered devices (query: tenant, q to search, limit up to 1000, offset)."""
    errors = FieldErrors()
    limit = form_int(request.args, "limit", errors, PAGE_SIZE)
    offset = form_int(request.args, "offset", errors, 0)
    if not 1 <= limit <= 1000:
        errors.add("limit", f"limit: 1 to 1000, not {limit}")
    with api_errors():
        raise_if(errors)
    try:
        total, users = registrations(request_tenant(), request.args.get("q", "").strip(), limit,
                                     max(offset, 0))
    except CallManagerUnavailable as exc:
        return jsonify(error=str(exc)), 503
    return jsonify(total=total, users=users)
