"""Tenants: list, add, change (name, call limit) and delete; system and operator administrators
change them, a tenant administrator sees its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, jsonify, render_template, request, url_for

from pbx_services.cluster.tenants import TenantInfo, TenantService
from pbx_services.portal.admin_views import (
    OPERATIONS,
    add_page,
    answer_not_found,
    api_errors,
    delete_then_redirect,
    edit_page,
    form_bool,
    form_int,
    form_text,
    json_body,
    raise_if,
)
from pbx_services.portal.auth import audit, current_admin, roles_required, scoped_domain
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import FieldErrors
from pbx_services.portal.navigation import NavItem

blueprint = Blueprint("tenants", __name__)
navigation = (NavItem("Tenants", "tenants.index", order=20),)
answer_not_found(blueprint)

FIELDS = ("domain", "name", "max_calls")


def _service() -> TenantService:
    return portal_context().service(TenantService)


def _visible() -> list[TenantInfo]:
    admin = current_admin()
    return [tenant for tenant in _service().describe_tenants()
            if admin.role in OPERATIONS or tenant.domain == admin.tenant]


def _info(domain: str) -> TenantInfo:
    for tenant in _visible():
        if tenant.domain == domain.lower():
            return tenant
    abort(404, description=f"no tenant {domain}")


def _add(form: Mapping[str, Any]) -> TenantInfo:
    errors = FieldErrors()
    max_calls = form_int(form, "max_calls", errors, 0)
    raise_if(errors)
    tenant = _service().add_tenant(form_text(form, "domain") or "", name=form_text(form, "name"),
                                   max_calls=max_calls)
    audit("tenant.add", tenant.domain, tenant_id=tenant.id)
    return _info(tenant.domain)


def _change(domain: str, form: Mapping[str, Any]) -> TenantInfo:
    errors = FieldErrors()
    max_calls = form_int(form, "max_calls", errors, 0) if form.get("max_calls") not in (None, "") else None
    raise_if(errors)
    tenant = _service().set_tenant(domain, name=form_text(form, "name"), max_calls=max_calls)
    audit("tenant.change", tenant.domain, tenant_id=tenant.id)
    return _info(tenant.domain)


def _delete(domain: str, everything: bool) -> None:
    _service().delete_tenant(domain, everything=everything)
    audit("tenant.delete", domain, "with everything in it" if everything else "")


def _render_index(form: Mapping[str, Any], errors: FieldErrors) -> Any:
    return render_template("tenants/index.html", tenants=_visible(), form=form, errors=errors)


# -- pages ----------------------------------------------------------------------------------------

@blueprint.route("/tenants")
def index() -> Any:
    return _render_index({}, FieldErrors())


@blueprint.route("/tenants", methods=["POST"])
@roles_required(*OPERATIONS)
def add() -> Any:
    return add_page(lambda: _add(request.form), fields=FIELDS, page_again=_render_index,
                    done=lambda tenant: (f"tenant {tenant.domain} added", url_for("tenants.index")))


@blueprint.route("/tenants/<domain>", methods=["GET", "POST"])
@roles_required(*OPERATIONS)
def edit(domain: str) -> Any:
    tenant = _info(domain)
    current = {"name": tenant.name, "max_calls": str(tenant.max_calls)}
    return edit_page("tenants/edit.html", current=current,
                     save=lambda: _change(domain, request.form), fields=FIELDS,
                     done=f"tenant {tenant.domain} changed", done_to=url_for("tenants.index"), tenant=tenant)


@blueprint.route("/tenants/<domain>/delete", methods=["POST"])
@roles_required(*OPERATIONS)
def delete(domain: str) -> Any:
    return delete_then_redirect(lambda: _delete(domain, form_bool(request.form, "everything")),
                                done=f"tenant {domain} deleted", done_to=url_for("tenants.index"),
                                refused_to=url_for("tenants.edit", domain=domain))


# -- API ------------------------------------------------------------------------------------------

@blueprint.route("/api/v1/tenants")
def api_index() -> Any:
    """The tenants (a tenant administrator: its own), with how many users, menus, queues, rooms they hold."""
    return jsonify(tenants=[dataclasses.asdict(tenant) for tenant in _visible()])


@blueprint.route("/api/v1/tenants", methods=["POST"])
@roles_required(*OPERATIONS)
def api_add() -> Any:
    """Add a tenant: {"domain", "name"?, "max_calls"?}."""
    with api_errors(FIELDS):
        tenant = _add(json_body())
    return jsonify(dataclasses.asdict(tenant)), 201


@blueprint.route("/api/v1/tenants/<domain>")
def api_get(domain: str) -> Any:
    """One tenant."""
    return jsonify(dataclasses.asdict(_info(scoped_domain(domain) or domain)))


@blueprint.route("/api/v1/tenants/<domain>", methods=["PATCH"])
@roles_required(*OPERATIONS)
def api_change(domain: str) -> Any:
    """Change a tenant's name or call limit: {"name"?, "max_calls"?}."""
    with api_errors(FIELDS):
        tenant = _change(domain, json_body())
    return jsonify(dataclasses.asdict(tenant))


@blueprint.route("/api/v1/tenants/<domain>", methods=["DELETE"])
@roles_required(*OPERATIONS)
def api_delete(domain: str) -> Any:
    """Delete a tenant; one that holds users, menus, queues... only with ?everything=true."""
    with api_errors():
        _delete(domain, form_bool(request.args, "everything"))
    return jsonify(deleted=domain)
