"""Logging in and out, and setting one's own password (forced after a one-time password)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, redirect, render_template, request, session, url_for

from pbx_services.cluster.admins import LoginOutcome
from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.auth import audit, checked_login, current_admin, public, start_session
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import FieldErrors

blueprint = Blueprint("auth", __name__)

WRONG_LOGIN = "wrong name or password"


@blueprint.route("/login", methods=["GET", "POST"])
@public
def login() -> Any:
    form = {"name": request.form.get("name", "").strip()}
    errors = FieldErrors()
    if request.method == "GET":
        return render_template("login.html", form=form, errors=errors, next=_safe_next())
    context = portal_context()
    password = request.form.get("password", "")
    if not form["name"]:
        errors.add("name", "name: required")
    if not password:
        errors.add("password", "password: required")
    if errors:
        return render_template("login.html", form=form, errors=errors, next=_safe_next()), 400
    result = checked_login(form["name"], password)
    if result is None:
        errors.add("password", f"too many failed logins from your address: try again in "
                               f"{context.login_limiter.block_minutes} minutes")
        return render_template("login.html", form=form, errors=errors, next=_safe_next()), 429
    source = request.remote_addr or ""
    if result.outcome is LoginOutcome.OK and result.admin is not None:
        start_session(result.admin)
        context.admins.record(actor=result.admin.name, action="login", source=source,
                              tenant_id=result.admin.tenant_id)
        if result.admin.must_change_password:
            return redirect(url_for("auth.password"))
        return redirect(_safe_next() or url_for("cluster.index" if result.admin.role.value != "tenant"
                                                 else "audit.index"))
    if result.locked_until is not None:
        context.admins.record(actor=form["name"], action="login.locked", source=source,
                              detail=f"locked until {result.locked_until:%Y-%m-%d %H:%M} UTC")
        errors.add("password", f"this account is locked until {result.locked_until:%H:%M} UTC after "
                               f"{context.lockout.failures} wrong passwords")
        return render_template("login.html", form=form, errors=errors, next=_safe_next()), 403
    context.admins.record(actor=form["name"], action="login.failed", source=source)
    errors.add("password", WRONG_LOGIN)
    return render_template("login.html", form=form, errors=errors, next=_safe_next()), 401


@blueprint.route("/logout", methods=["POST"])
def logout() -> Any:
    session.clear()
    return redirect(url_for("auth.login"))


@blueprint.route("/account/password", methods=["GET", "POST"])
def password() -> Any:
    admin = current_admin()
    errors = FieldErrors()
    if request.method == "GET":
        return render_template("password.html", errors=errors, forced=admin.must_change_password)
    current, new, again = (request.form.get(key, "") for key in ("current", "new", "again"))
    if new != again:
        errors.add("again", "again: not the same as the new password")
    else:
        try:
            changed = portal_context().admins.change_own_password(admin.id, current=current, new=new)
        except InvalidValue as exc:
            errors.from_invalid(exc, ("current", "new"))
            if errors.general:  # the service's "password is shorter than..." is about the new one
                errors["new"] = errors.pop("_form")
        else:
            start_session(changed)
            audit("admin.password", admin.name)
            return redirect(url_for("cluster.index" if changed.role.value != "tenant" else "audit.index"))
    return render_template("password.html", errors=errors, forced=admin.must_change_password), 400


def _safe_next() -> str | None:
    """Where to go after logging in: a path of this portal only (not another site)."""
    target = request.values.get("next", "")
    parts = urlsplit(target)
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if parts.scheme or parts.netloc:
        return None
    return target
