"""Who is asking, and what they may do: sessions, HTTP Basic for scripts, roles, tenant scoping.

Every endpoint needs a logged-in administrator unless its view is marked `@public`: a page
without one redirects to /login, an API call (`/api/...`) gets 401 with a Basic challenge.
Browsers log in through the form and hold a signed session cookie (HttpOnly, SameSite=Lax,
Secure over TLS) that names the administrator and when their password was last set, so a
new password logs out every other session. Scripts send `Authorization: Basic` with each
request (checked like a login: wrong passwords count toward the lockout). Failed logins of
either kind also count per source address (`login_limit`): too many and it gets 429.

Roles: `system` does everything; `operator` everything but administrators; `tenant` only its
tenant's data. A view restricts itself with `@roles_required(AdminRole.SYSTEM, ...)`; a view
working on a tenant's data passes the tenant the request names through `scoped_domain()`.
"""

from __future__ import annotations

import base64
import binascii
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, current_app, g, jsonify, redirect, request, session, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from pbx_services.cluster.admins import AdminInfo, LoginOutcome, LoginResult
from pbx_services.cluster.models import AdminRole
from pbx_services.portal.context import portal_context
from pbx_services.portal.csrf import check_csrf

ViewT = TypeVar("ViewT", bound=Callable[..., Any])

SESSION_ADMIN = "admin_id"
SESSION_STAMP = "stamp"
API_PREFIX = "/api/"
BASIC_REALM = 'Basic realm="pbx portal", charset="UTF-8"'
PASSWORD_CHANGE_ENDPOINTS = frozenset({"auth.password", "auth.logout", "static"})
"""What an administrator with a one-time password may reach before setting their own."""


def public(view: ViewT) -> ViewT:
    """Mark a view as reachable without logging in (the login page, /health)."""
    view.portal_public = True  # type: ignore[attr-defined]
    return view


def current_admin() -> AdminInfo:
    """The administrator making this request (every non-public view has one)."""
    admin: AdminInfo | None = g.get("admin")
    if admin is None:
        abort(401)
    return admin


def roles_required(*roles: AdminRole) -> Callable[[ViewT], ViewT]:
    """Let only administrators of these roles reach the view; the others get 403."""
    def decorate(view: ViewT) -> ViewT:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if current_admin().role not in roles:
                abort(403, description="your role may not do this")
            return view(*args, **kwargs)
        return checked  # type: ignore[return-value]
    return decorate


def scoped_domain(requested: str | None) -> str | None:
    """The tenant (domain) a request may work on: what it names (None: the default tenant, or all
    in a listing) for system and operator administrators; a tenant administrator's own tenant,
    and 403 when it names another."""
    admin = current_admin()
    if admin.role is not AdminRole.TENANT:
        return requested or None
    if requested and requested.strip().lower() != admin.tenant:
        abort(403, description="this tenant is not yours")
    return admin.tenant


def tenant_filter() -> int | None:
    """The tenant id a listing must be limited to: a tenant administrator's; None for the others."""
    admin = current_admin()
    return admin.tenant_id if admin.role is AdminRole.TENANT else None


def audit(action: str, target: str = "", detail: str = "", *, tenant_id: int | None = None) -> None:
    """Record in the audit log that the current administrator did `action` to `target`."""
    portal_context().admins.record(actor=current_admin().name, action=action, target=target, detail=detail,
                                   tenant_id=tenant_id, source=request.remote_addr or "")


def start_session(admin: AdminInfo) -> None:
    session.clear()
    session.permanent = True
    session[SESSION_ADMIN] = admin.id
    session[SESSION_STAMP] = admin.password_changed_at.timestamp()


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIX)


def authenticate_request() -> Response | None:
    """The app's `before_request`: find the administrator, then refuse what they may not reach."""
    basic = _basic_credentials()
    g.admin = _basic_admin(*basic) if basic is not None else _session_admin()
    view = portal_view()
    if view is not None and getattr(view, "portal_public", False):
        check_csrf(basic_auth=basic is not None)
        return None
    if g.admin is None:
        if is_api_request() or basic is not None:
            response = jsonify(error="log in first: a session cookie or HTTP Basic credentials")
            response.status_code = 401
            response.headers["WWW-Authenticate"] = BASIC_REALM
            return response
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    check_csrf(basic_auth=basic is not None)
    if g.admin.must_change_password and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS:
        if is_api_request():
            abort(403, description="this account has a one-time password: set your own first")
        return redirect(url_for("auth.password"))
    return None


def portal_view() -> Callable[..., Any] | None:
    return current_app.view_functions.get(request.endpoint) if request.endpoint else None


def _session_admin() -> AdminInfo | None:
    admin_id = session.get(SESSION_ADMIN)
    if not isinstance(admin_id, int):
        return None
    admin = portal_context().admins.find_admin(admin_id)
    if admin is None or session.get(SESSION_STAMP) != admin.password_changed_at.timestamp():
        session.clear()  # deleted, or its password changed since: log in again
        return None
    return admin


def _basic_credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        name, separator, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    return (name, password) if separator else ("", "")


def checked_login(name: str, password: str) -> LoginResult | None:
    """The administrators' `authenticate` behind the per-source limit: None when the request's
    address is refused (no hash computed); a failure counts toward it."""
    context = portal_context()
    source = request.remote_addr or ""
    if context.login_limiter.refused(source):
        return None
    result = context.admins.authenticate(name, password, lockout=context.lockout)
    if result.outcome is LoginOutcome.WRONG and context.login_limiter.failed(source):
        context.admins.record(actor=name[:80], action="login.source_refused", source=source,
                              detail=f"{context.config.portal.source_failures} failed logins from this "
                                     f"address: refused for {context.login_limiter.block_minutes} min")
    return result


def _basic_admin(name: str, password: str) -> AdminInfo | None:
    result = checked_login(name, password)
    if result is None:
        raise TooManyFailures()
    if result.outcome is LoginOutcome.LOCKED:
        raise _LockedOut()
    return result.admin


class TooManyFailures(HTTPException):
    code = 429
    description = "too many failed logins from this address; try again later"


class _LockedOut(HTTPException):
    code = 401
    description = "this account is locked after too many wrong passwords; try again later"
