"""The administrators page and API (system administrators only): add, delete, reset a password,
unlock; every change in the audit log."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for

from pbx_services.cluster.admins import AdminInfo
from pbx_services.cluster.dao import AlreadyExists, NotFound
from pbx_services.cluster.models import AdminRole
from pbx_services.cluster.tenants import TenantService
from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.auth import audit, current_admin, roles_required
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import FieldErrors
from pbx_services.portal.navigation import NavItem

blueprint = Blueprint("admins", __name__)
navigation = (NavItem("Administrators", "admins.index", roles=frozenset({AdminRole.SYSTEM}), order=80),)

FIELDS = ("name", "password", "role", "tenant")


@blueprint.route("/admins", methods=["GET", "POST"])
@roles_required(AdminRole.SYSTEM)
def index() -> Any:
    form = {key: request.form.get(key, "").strip() for key in FIELDS} if request.method == "POST" else \
        {"role": AdminRole.OPERATOR.value}
    errors = FieldErrors()
    if request.method == "POST":
        admin = _add(form, errors)
        if admin is not None:
            flash(f"{admin.role} administrator {admin.name} added")
            return redirect(url_for("admins.index"))
    context = portal_context()
    tenants = [(tenant.domain, tenant.domain) for tenant in context.service(TenantService).list_tenants()]
    return render_template("admins.html", admins=context.admins.list_admins(), form=form, errors=errors,
                           roles=[(role.value, role.value) for role in AdminRole],
                           tenants=[("", "-"), *tenants]), 400 if errors else 200


@blueprint.route("/admins/<name>/<any(delete,unlock):action>", methods=["POST"])
@roles_required(AdminRole.SYSTEM)
def change(name: str, action: str) -> Any:
    _change(name, action)
    flash(f"administrator {name}: {'deleted' if action == 'delete' else 'unlocked'}")
    return redirect(url_for("admins.index"))


@blueprint.route("/api/v1/admins", methods=["GET"])
@roles_required(AdminRole.SYSTEM)
def api_index() -> Any:
    """The administrators: name, role, tenant, whether locked or on a one-time password."""
    return jsonify(admins=[_json(admin) for admin in portal_context().admins.list_admins()])


@blueprint.route("/api/v1/admins", methods=["POST"])
@roles_required(AdminRole.SYSTEM)
def api_add() -> Any:
    """Add an administrator: {"name", "password", "role": system|operator|tenant, "tenant": DOMAIN}."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description="the body must be a JSON object")
    form = {key: str(body.get(key) or "").strip() for key in FIELDS}
    errors = FieldErrors()
    admin = _add(form, errors)
    if admin is None:
        return jsonify(error="; ".join(errors.values()), fields=dict(errors)), 409 if "exists" in str(
            errors.get("name", "")) else 400
    return jsonify(_json(admin)), 201


@blueprint.route("/api/v1/admins/<name>", methods=["DELETE"])
@roles_required(AdminRole.SYSTEM)
def api_delete(name: str) -> Any:
    """Delete an administrator (not oneself)."""
    _change(name, "delete")
    return jsonify(deleted=name)


@blueprint.route("/api/v1/admins/<name>/unlock", methods=["POST"])
@roles_required(AdminRole.SYSTEM)
def api_unlock(name: str) -> Any:
    """Unlock an account locked after too many wrong passwords."""
    _change(name, "unlock")
    return jsonify(unlocked=name)


def _add(form: dict[str, str], errors: FieldErrors) -> AdminInfo | None:
    try:
        role = AdminRole(form["role"])
    except ValueError:
        errors.add("role", f"role: one of {', '.join(role.value for role in AdminRole)}")
        return None
    tenant = form["tenant"] or None
    if role is AdminRole.TENANT and tenant is None:
        errors.add("tenant", "tenant: a tenant administrator needs its tenant")
        return None
    if role is not AdminRole.TENANT:
        tenant = None
    try:
        admin = portal_context().admins.add_admin(form["name"], password=form["password"], role=role,
                                                  tenant=tenant)
    except InvalidValue as exc:
        errors.from_invalid(exc, ("administrator name", "password", "tenant", "domain"))
        _rename(errors, {"administrator name": "name", "domain": "tenant"})
        return None
    except AlreadyExists as exc:
        errors.add("name", str(exc))
        return None
    except NotFound:
        errors.add("tenant", f"tenant: no tenant {tenant}")
        return None
    of_tenant = f", tenant {admin.tenant}" if admin.tenant else ""
    audit("admin.add", admin.name, f"role {admin.role}{of_tenant}", tenant_id=admin.tenant_id)
    return admin


def _rename(errors: FieldErrors, names: dict[str, str]) -> None:
    for old, new in names.items():
        if old in errors:
            errors[new] = errors.pop(old)


def _change(name: str, action: str) -> None:
    admins = portal_context().admins
    if action == "delete" and name == current_admin().name:
        abort(400, description="you cannot delete yourself")
    try:
        if action == "delete":
            admins.delete_admin(name)
        else:
            admins.unlock(name)
    except NotFound:
        abort(404, description=f"no administrator named {name}")
    audit(f"admin.{'del' if action == 'delete' else 'unlock'}", name)


def _json(admin: AdminInfo) -> dict[str, Any]:
    return {"name": admin.name, "role": admin.role.value, "tenant": admin.tenant,
            "must_change_password": admin.must_change_password,
            "locked_until": admin.locked_until.isoformat() if admin.locked_until else None}
