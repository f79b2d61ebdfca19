"""The tenants' side toward providers: trunks (with each one's registration and probe state, as
the Call Manager reports them), outbound routes and DIDs; list, add, change and delete each, as
`pbx trunk|route|did` do (docs/trunks.md).

A trunk's password is never shown: its form leaves the field empty, and a change without one
keeps the trunk's (`TrunkService.add_trunk(keep_password=True)`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import Blueprint, jsonify, render_template, request, url_for

from pbx_services.cluster.dids import DEFAULT_TIMEZONE, DidInfo, DidService
from pbx_services.cluster.models import NumberFormat, PermissionClass, TrunkTransport
from pbx_services.cluster.models.trunk import (
    DEFAULT_DOWN_AFTER,
    DEFAULT_INTERNATIONAL_PREFIX,
    DEFAULT_PROBE_INTERVAL,
    DEFAULT_UP_AFTER,
)
from pbx_services.cluster.outbound_routes import RouteInfo, RouteService
from pbx_services.cluster.trunk_states import numbers_text, with_states
from pbx_services.cluster.trunks import TrunkInfo, TrunkService
from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.admin_views import (
    FormInvalid,
    add_page,
    answer_not_found,
    api_errors,
    delete_then_redirect,
    edit_page,
    form_bool,
    form_int,
    form_list,
    form_text,
    found_or_404,
    json_body,
    raise_if,
    request_tenant,
    tenant_choices,
    tenant_or_default,
)
from pbx_services.portal.auth import audit
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import FieldErrors
from pbx_services.portal.navigation import NavItem

blueprint = Blueprint("trunks", __name__)
navigation = (NavItem("Trunks", "trunks.index", order=64), NavItem("Routes", "trunks.routes", order=65),
              NavItem("DIDs", "trunks.dids", order=66))
answer_not_found(blueprint)

TRUNK_FIELDS = {"trunk name": "name", "host": "host", "port": "port", "transport": "transport",
                "username": "username", "password": "password", "a username": "password",
                "--register": "register", "max calls": "max_calls", "caller id": "caller_id",
                "probe interval": "probe_interval", "down after": "down_after", "up after": "up_after",
                "codec": "codecs", "number format": "number_format", "country code": "country_code",
                "national prefix": "national_prefix", "international prefix": "international_prefix",
                "tenant": "tenant"}
"""What the trunk service's messages start with (after "trunk NAME: ") -> the form's field."""
TRUNK_NUMBERS = {"port": 5060, "max_calls": 0, "probe_interval": DEFAULT_PROBE_INTERVAL,
                 "down_after": DEFAULT_DOWN_AFTER, "up_after": DEFAULT_UP_AFTER}
TRUNK_DEFAULTS = {"transport": TrunkTransport.UDP.value, "number_format": NumberFormat.AS_DIALLED.value,
                  "international_prefix": DEFAULT_INTERNATIONAL_PREFIX, "enabled": "on",
                  **{name: str(value) for name, value in TRUNK_NUMBERS.items()}}
ROUTE_FIELDS = {"route name": "name", "dial pattern": "pattern", "strip": "strip", "prepend": "prepend",
                "permission class": "permission", "priority": "priority",
                "needs at least one trunk": "trunks", "at most": "trunks", "a trunk": "trunks",
                "trunk": "trunks", "tenant": "tenant"}
ROUTE_NUMBERS = {"strip": 0, "priority": 100}
ROUTE_DEFAULTS = {"permission": PermissionClass.NATIONAL.value, "strip": "0", "priority": "100"}
DID_FIELDS = {"tenant": "tenant", "holiday": "holidays"}
DID_DETAILS = {"hours": "hours", "--hours": "hours", "a closed destination": "hours", "time zone": "timezone"}
"""What follows "DID NUMBER: " in the DID service's messages -> the form's field (else destination)."""
TRANSPORTS = [(t.value, t.value) for t in TrunkTransport]
FORMATS = [(f.value, f.value) for f in NumberFormat]
PERMISSIONS = [(p.value, p.value) for p in PermissionClass]


def _trunks() -> TrunkService:
    return portal_context().service(TrunkService)


def _routes() -> RouteService:
    return portal_context().service(RouteService)


def _dids() -> DidService:
    return portal_context().service(DidService)


# -- trunks -----------------------------------------------------------------------------------------

def _save_trunk(form: Mapping[str, Any], tenant: str | None, *, name: str | None = None) -> TrunkInfo:
    """Add the trunk of the form (or change trunk `name`: every setting is the form's, its password
    kept when the form gives none)."""
    errors = FieldErrors()
    numbers = {field: form_int(form, field, errors, default) for field, default in TRUNK_NUMBERS.items()}
    raise_if(errors)
    trunk = _trunks().add_trunk(
        name or form_text(form, "name") or "", host=form_text(form, "host") or "",
        transport=form_text(form, "transport") or TrunkTransport.UDP.value,
        username=form_text(form, "username"), password=form_text(form, "password"),
        register=form_bool(form, "register"), caller_id=form_text(form, "caller_id"),
        enabled=form_bool(form, "enabled"), codecs=form_text(form, "codecs"),
        number_format=form_text(form, "number_format") or NumberFormat.AS_DIALLED.value,
        country_code=form_text(form, "country_code"), national_prefix=form_text(form, "national_prefix"),
        international_prefix=form_text(form, "international_prefix") or DEFAULT_INTERNATIONAL_PREFIX,
        tenant_domain=tenant, replace=name is not None, keep_password=name is not None, **numbers)
    audit("trunk.change" if name else "trunk.add", f"{trunk.name}@{trunk.tenant_domain}")
    return trunk


def _delete_trunk(name: str, tenant: str | None) -> None:
    _trunks().delete_trunk(name, tenant)
    audit("trunk.delete", f"{name}@{tenant_or_default(tenant)}")


def _trunk_form(trunk: TrunkInfo) -> dict[str, str]:
    texts = ("username", "caller_id", "codecs", "country_code", "national_prefix")
    form = {"name": trunk.name, "host": trunk.host, "transport": trunk.transport,
            "number_format": trunk.number_format, "international_prefix": trunk.international_prefix,
            **{field: getattr(trunk, field) or "" for field in texts},
            **{field: str(getattr(trunk, field)) for field in TRUNK_NUMBERS}}
    form.update({field: "on" for field in ("register", "enabled") if getattr(trunk, field)})
    return form


def _trunk_rows(tenant: str | None) -> tuple[list[dict[str, Any]], str | None]:
    rows, problem = with_states(_trunks().list_trunks(tenant), portal_context().config)
    return [{**dataclasses.asdict(trunk), "numbers": numbers_text(trunk), "registration": registration,
             "probe": probe} for trunk, registration, probe in rows], problem


def _render_trunks(form: Mapping[str, Any], errors: FieldErrors) -> Any:
    tenant = request_tenant()
    rows, problem = _trunk_rows(tenant)
    return render_template("trunks/index.html", trunks=rows, problem=problem, tenant=tenant,
                           tenant_options=[(d, d) for d in tenant_choices()], transports=TRANSPORTS,
                           formats=FORMATS, default_domain=portal_context().config.callmanager.default_domain,
                           form=form, errors=errors)


@blueprint.route("/trunks")
def index() -> Any:
    return _render_trunks({**TRUNK_DEFAULTS, "tenant": request_tenant() or ""}, FieldErrors())


@blueprint.route("/trunks", methods=["POST"])
def add() -> Any:
    tenant = request_tenant()
    return add_page(lambda: _save_trunk(request.form, tenant), fields=TRUNK_FIELDS, page_again=_render_trunks,
                    done=lambda trunk: (f"trunk {trunk.name} added", url_for("trunks.index", tenant=tenant)))


@blueprint.route("/trunks/<name>", methods=["GET", "POST"])
def edit(name: str) -> Any:
    tenant = request_tenant()
    trunk = found_or_404(_trunks().list_trunks(tenant), "name", name, "trunk")
    return edit_page("trunks/edit.html", current=_trunk_form(trunk),
                     save=lambda: _save_trunk(request.form, tenant, name=name), fields=TRUNK_FIELDS,
                     done=f"trunk {name} changed", done_to=url_for("trunks.index", tenant=tenant),
                     trunk=trunk, tenant=tenant, transports=TRANSPORTS, formats=FORMATS)


@blueprint.route("/trunks/<name>/delete", methods=["POST"])
def delete(name: str) -> Any:
    tenant = request_tenant()
    return delete_then_redirect(lambda: _delete_trunk(name, tenant), done=f"trunk {name} deleted",
                                refused_to=url_for("trunks.edit", name=name, tenant=tenant),
                                done_to=url_for("trunks.index", tenant=tenant))


@blueprint.route("/api/v1/trunks")
def api_index() -> Any:
    """A tenant's trunks with their registration and probe state as the Call Manager reports them
    (query: tenant); `problem` says why the states are unknown, if they are."""
    with api_errors():
        rows, problem = _trunk_rows(request_tenant())
    return jsonify(trunks=rows, problem=problem)


@blueprint.route("/api/v1/trunks", methods=["POST"])
def api_add() -> Any:
    """Add a trunk: {"name", "host", "tenant"?, "port"?, "transport"?, "username"?, "password"?, "register"?,
    "max_calls"?, "caller_id"?, "enabled"?, "probe_interval"?, "down_after"?, "up_after"?, "codecs"?,
    "number_format"?, "country_code"?, "national_prefix"?, "international_prefix"?}."""
    body = json_body()
    with api_errors(TRUNK_FIELDS):
        trunk = _save_trunk({"enabled": True, **body}, request_tenant(body))
    return jsonify(dataclasses.asdict(trunk)), 201


@blueprint.route("/api/v1/trunks/<name>", methods=["PUT"])
def api_replace(name: str) -> Any:
    """Change a trunk: every setting as for adding one (those not given take their defaults; the
    password, when not given, is kept)."""
    body = json_body()
    with api_errors(TRUNK_FIELDS):
        tenant = request_tenant(body)
        found_or_404(_trunks().list_trunks(tenant), "name", name, "trunk")
        trunk = _save_trunk({"enabled": True, **body}, tenant, name=name)
    return jsonify(dataclasses.asdict(trunk))


@blueprint.route("/api/v1/trunks/<name>", methods=["DELETE"])
def api_delete(name: str) -> Any:
    """Delete a trunk no route uses (query: tenant)."""
    with api_errors():
        _delete_trunk(name, request_tenant())
    return jsonify(deleted=name)


# -- outbound routes ----------------------------------------------------------------------------------

def _save_route(form: Mapping[str, Any], tenant: str | None, *, name: str | None = None) -> RouteInfo:
    errors = FieldErrors()
    numbers = {field: form_int(form, field, errors, default) for field, default in ROUTE_NUMBERS.items()}
    raise_if(errors)
    route = _routes().add_route(
        name or form_text(form, "name") or "", pattern=form_text(form, "pattern") or "",
        trunks=form_list(form, "trunks"), prepend=form_text(form, "prepend") or "",
        permission=form_text(form, "permission") or PermissionClass.NATIONAL.value, tenant_domain=tenant,
        replace=name is not None, **numbers)
    audit("route.change" if name else "route.add", f"{route.name}@{route.tenant_domain}")
    return route


def _delete_route(name: str, tenant: str | None) -> None:
    _routes().delete_route(name, tenant)
    audit("route.delete", f"{name}@{tenant_or_default(tenant)}")


def _route_form(route: RouteInfo) -> dict[str, str]:
    return {"name": route.name, "pattern": route.pattern, "trunks": ", ".join(route.trunks),
            "prepend": route.prepend, "permission": route.permission, "strip": str(route.strip),
            "priority": str(route.priority)}


def _render_routes(form: Mapping[str, Any], errors: FieldErrors) -> Any:
    tenant = request_tenant()
    return render_template("trunks/routes.html", routes=_routes().list_routes(tenant), tenant=tenant,
                           tenant_options=[(d, d) for d in tenant_choices()], permissions=PERMISSIONS,
                           default_domain=portal_context().config.callmanager.default_domain, form=form,
                           errors=errors)


@blueprint.route("/routes")
def routes() -> Any:
    return _render_routes({**ROUTE_DEFAULTS, "tenant": request_tenant() or ""}, FieldErrors())


@blueprint.route("/routes", methods=["POST"])
def add_route() -> Any:
    tenant = request_tenant()
    return add_page(lambda: _save_route(request.form, tenant), fields=ROUTE_FIELDS, page_again=_render_routes,
                    done=lambda route: (f"route {route.name} added", url_for("trunks.routes", tenant=tenant)))


@blueprint.route("/routes/<name>", methods=["GET", "POST"])
def edit_route(name: str) -> Any:
    tenant = request_tenant()
    route = found_or_404(_routes().list_routes(tenant), "name", name, "route")
    return edit_page("trunks/route.html", current=_route_form(route),
                     save=lambda: _save_route(request.form, tenant, name=name), fields=ROUTE_FIELDS,
                     done=f"route {name} changed", done_to=url_for("trunks.routes", tenant=tenant),
                     route=route, tenant=tenant, permissions=PERMISSIONS)


@blueprint.route("/routes/<name>/delete", methods=["POST"])
def delete_route(name: str) -> Any:
    tenant = request_tenant()
    return delete_then_redirect(lambda: _delete_route(name, tenant), done=f"route {name} deleted",
                                refused_to=url_for("trunks.edit_route", name=name, tenant=tenant),
                                done_to=url_for("trunks.routes", tenant=tenant))


@blueprint.route("/api/v1/routes")
def api_routes() -> Any:
    """A tenant's outbound routes in the order calls try them (query: tenant)."""
    with api_errors():
        found = _routes().list_routes(request_tenant())
    return jsonify(routes=[dataclasses.asdict(route) for route in found])


@blueprint.route("/api/v1/routes", methods=["POST"])
def api_add_route() -> Any:
    """Add a route: {"name", "pattern", "trunks": [names, in the order tried], "tenant"?, "strip"?,
    "prepend"?, "permission"?, "priority"?}."""
    body = json_body()
    with api_errors(ROUTE_FIELDS):
        route = _save_route(body, request_tenant(body))
    return jsonify(dataclasses.asdict(route)), 201


@blueprint.route("/api/v1/routes/<name>", methods=["PUT"])
def api_replace_route(name: str) -> Any:
    """Change a route: every setting as for adding one."""
    body = json_body()
    with api_errors(ROUTE_FIELDS):
        tenant = request_tenant(body)
        found_or_404(_routes().list_routes(tenant), "name", name, "route")
        route = _save_route(body, tenant, name=name)
    return jsonify(dataclasses.asdict(route))


@blueprint.route("/api/v1/routes/<name>", methods=["DELETE"])
def api_delete_route(name: str) -> Any:
    """Delete a route (query: tenant)."""
    with api_errors():
        _delete_route(name, request_tenant())
    return jsonify(deleted=name)


# -- DIDs ---------------------------------------------------------------------------------------------

def _holidays(form: Mapping[str, Any], errors: FieldErrors) -> list[date]:
    days = []
    for text in form_list(form, "holidays"):
        try:
            days.append(date.fromisoformat(text))
        except ValueError:
            errors.add("holidays", f"holiday {text[:20]!r}: a date like 2026-12-25")
    return days


def _save_did(form: Mapping[str, Any], tenant: str | None, *, number: str | None = None) -> DidInfo:
    errors = FieldErrors()
    holidays = _holidays(form, errors)
    raise_if(errors)
    hours = form_text(form, "hours")
    try:
        did = _dids().add_did(
            number or form_text(form, "number") or "", destination=form_text(form, "destination") or "",
            hours=hours, timezone=form_text(form, "timezone") if hours else None, holidays=holidays,
            closed_destination=form_text(form, "closed_destination"), tenant_domain=tenant,
            replace=number is not None)
    except FormInvalid:
        raise
    except InvalidValue as exc:
        raise FormInvalid(FieldErrors({_did_field(str(exc)): str(exc)})) from None
    audit("did.change" if number else "did.add", f"{did.number}@{did.tenant_domain}")
    return did


def _did_field(message: str) -> str:
    """The field a DID service's message is about: it names the DID first ("DID 0140000000
    closed: extension 299 does not exist"), then what is wrong."""
    head, _, detail = message.partition(": ")
    if head.endswith(" closed"):
        return "closed_destination"
    if head.startswith("DID '"):  # the number itself is wrong
        return "number"
    return next((field for prefix, field in DID_DETAILS.items() if detail.lower().startswith(prefix)),
                "destination")


def _delete_did(number: str, tenant: str | None) -> None:
    _dids().delete_did(number, tenant)
    audit("did.delete", f"{number}@{tenant_or_default(tenant)}")


def _did_form(did: DidInfo) -> dict[str, str]:
    return {"number": did.number, "destination": did.destination, "hours": did.hours or "",
            "timezone": did.timezone or DEFAULT_TIMEZONE, "holidays": " ".join(map(str, did.holidays)),
            "closed_destination": did.closed_destination or ""}


def _render_dids(form: Mapping[str, Any], errors: FieldErrors) -> Any:
    tenant = request_tenant()
    return render_template("trunks/dids.html", dids=_dids().list_dids(tenant), tenant=tenant,
                           tenant_options=[(d, d) for d in tenant_choices()],
                           default_domain=portal_context().config.callmanager.default_domain, form=form,
                           errors=errors)


@blueprint.route("/dids")
def dids() -> Any:
    return _render_dids({"timezone": DEFAULT_TIMEZONE, "tenant": request_tenant() or ""}, FieldErrors())


@blueprint.route("/dids", methods=["POST"])
def add_did() -> Any:
    tenant = request_tenant()
    return add_page(lambda: _save_did(request.form, tenant), fields=DID_FIELDS, page_again=_render_dids,
                    done=lambda did: (f"DID {did.number} added", url_for("trunks.dids", tenant=tenant)))


@blueprint.route("/dids/<number>", methods=["GET", "POST"])
def edit_did(number: str) -> Any:
    tenant = request_tenant()
    did = found_or_404(_dids().list_dids(tenant), "number", number, "DID")
    return edit_page("trunks/did.html", current=_did_form(did),
                     save=lambda: _save_did(request.form, tenant, number=number), fields=DID_FIELDS,
                     done=f"DID {number} changed", done_to=url_for("trunks.dids", tenant=tenant),
                     did=did, tenant=tenant)


@blueprint.route("/dids/<number>/delete", methods=["POST"])
def delete_did(number: str) -> Any:
    tenant = request_tenant()
    return delete_then_redirect(lambda: _delete_did(number, tenant), done=f"DID {number} deleted",
                                refused_to=url_for("trunks.edit_did", number=number, tenant=tenant),
                                done_to=url_for("trunks.dids", tenant=tenant))


def _did_json(did: DidInfo) -> dict[str, Any]:
    return {**dataclasses.asdict(did), "holidays": [day.isoformat() for day in did.holidays]}


@blueprint.route("/api/v1/dids")
def api_dids() -> Any:
    """A tenant's DIDs (query: tenant)."""
    with api_errors():
        found = _dids().list_dids(request_tenant())
    return jsonify(dids=[_did_json(did) for did in found])


@blueprint.route("/api/v1/dids", methods=["POST"])
def api_add_did() -> Any:
    """Add a DID: {"number", "destination", "tenant"?, "hours"?, "timezone"?, "holidays"?: ["2026-12-25"],
    "closed_destination"?}; hours and a closed destination go together."""
    body = json_body()
    with api_errors(DID_FIELDS):
        did = _save_did(body, request_tenant(body))
    return jsonify(_did_json(did)), 201


@blueprint.route("/api/v1/dids/<number>", methods=["PUT"])
def api_replace_did(number: str) -> Any:
    """Change a DID: every setting as for adding one."""
    body = json_body()
    with api_errors(DID_FIELDS):
        tenant = request_tenant(body)
        found_or_404(_dids().list_dids(tenant), "number", number, "DID")
        did = _save_did(body, tenant, number=number)
    return jsonify(_did_json(did))


@blueprint.route("/api/v1/dids/<number>", methods=["DELETE"])
def api_delete_did(number: str) -> Any:
    """Delete a DID (query: tenant)."""
    with api_errors():
        _delete_did(number, request_tenant())
    return jsonify(deleted=number)
