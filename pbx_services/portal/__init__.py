"""The web portal and its REST API: a Flask app factory with one blueprint per area.

`create_app(config)` builds the app on the config's database; `pbx portal --config FILE` serves
it under gunicorn (`portal.server`), `pbx allinone` in a thread of its own (`portal.embedded`).
Pages are server-rendered Jinja templates with the portal's own CSS and JS (no CDN: the hosts
may be offline); the JSON API lives under /api/v1/ and is described by /api/v1/openapi.json,
generated from the routes (`portal.openapi`).

Adding an area (a blueprint):

1. Write `pbx_services/portal/blueprints/NAME.py` holding `blueprint = Blueprint("NAME", __name__)`
   and, for the menu, `navigation = (NavItem("Users", "NAME.index", order=30),)`. Every module of
   that package with a `blueprint` is registered by `create_app`: no list to edit.
   API routes go on the same blueprint under `/api/v1/...` (JSON in, JSON out); the first line of
   a view's docstring is its summary in the OpenAPI document.
2. Every view needs a logged-in administrator by default (`auth.authenticate_request`); restrict it
   further with `@roles_required(AdminRole.SYSTEM, AdminRole.OPERATOR)`; mark the rare public one
   `@public`. `current_admin()` says who asks.
3. Tenant data: pass the tenant the request names through `scoped_domain(requested)` (a tenant
   administrator gets its own, 403 for another's) and filter listings with `tenant_filter()`.
4. The database: `portal_context().sessions` (a SQLAlchemy sessionmaker) or a service built like the
   CLI builds it, `portal_context().service(UserService)`. Record changes with
   `audit("user.add", "1001@example.com", tenant_id=...)`.
5. Forms: templates extend `base.html`; put `{{ csrf_field() }}` in every `<form method="post">`
   (a post without it gets 400), and show each value's error next to its field with
   `{% from "_forms.html" import field %}{{ field("extension", "Extension", form, errors) }}`,
   errors being a `forms.FieldErrors` (render with status 400 when there are some).
   Scripts posting with `fetch` send the token in `X-CSRF-Token` (from `<meta name="csrf-token">`).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import pkgutil
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import Flask, Response, g, jsonify, render_template, request
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.exceptions import HTTPException

from pbx_services.cluster.admins import AdminService
from pbx_services.cluster.config import ConfigError, PbxConfig
from pbx_services.cluster.database import create_engine_for, session_factory
from pbx_services.cluster.models.base import utcnow
from pbx_services.cluster.servers import ServerService
from pbx_services.portal import blueprints
from pbx_services.portal.auth import authenticate_request, current_admin, is_api_request
from pbx_services.portal.cluster_monitor import ClusterMonitor, Prober, http_prober
from pbx_services.portal.context import EXTENSION_KEY, PortalContext
from pbx_services.portal.csrf import csrf_field, csrf_token
from pbx_services.portal.login_limit import LoginLimiter
from pbx_services.portal.navigation import NavItem

MAX_UPLOAD_BYTES = 64 * 1024 * 1024
"""Largest request body (a CSV of 100,000 users is about 10 MB)."""
SESSION_COOKIE_NAME = "pbx_portal"
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
                           "form-action 'self'")
"""Only the portal's own scripts, styles and forms; never inside another site's frame."""


def create_app(config: PbxConfig, *, sessions: sessionmaker[Session] | None = None,
               prober: Prober = http_prober, probe_interval: float | None = None,
               monitor: bool = True, clock: Callable[[], datetime] = utcnow) -> Flask:
    """The portal on `config` (its database unless `sessions` is given).

    `prober` looks at one server (tests pass their own); `monitor=False` leaves the servers
    unprobed until `portal_context().monitor.refresh()`; `clock` is the time of lockouts (by
    account and by address) and of the audit log.
    """
    if sessions is None:
        sessions = session_factory(create_engine_for(config.database.url))
    app = Flask(__name__)
    tls = config.portal.tls_cert is not None
    app.config.update(
        SECRET_KEY=session_secret(config),
        SESSION_COOKIE_NAME=SESSION_COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=tls,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=config.portal.session_minutes),
        MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES,
        JSON_SORT_KEYS=False,
    )
    servers = ServerService(sessions=sessions)
    interval: dict[str, Any] = {"interval": probe_interval} if probe_interval is not None else {}
    context = PortalContext(config=config, sessions=sessions,
                            admins=AdminService(sessions=sessions, clock=clock),
                            login_limiter=LoginLimiter(config, clock=lambda: clock().timestamp()),
                            monitor=ClusterMonitor(servers=servers.list_servers, prober=prober, **interval))
    app.extensions[EXTENSION_KEY] = context

    navigation: list[NavItem] = []
    for module_info in pkgutil.iter_modules(blueprints.__path__):
        module = importlib.import_module(f"{blueprints.__name__}.{module_info.name}")
        blueprint = getattr(module, "blueprint", None)
        if blueprint is None:
            continue
        app.register_blueprint(blueprint)
        navigation.extend(getattr(module, "navigation", ()))
    navigation.sort(key=lambda item: (item.order, item.label))

    if monitor:
        app.before_request(context.monitor.start)
    app.before_request(authenticate_request)
    app.after_request(_security_headers(tls))
    app.register_error_handler(HTTPException, _http_error)
    app.jinja_env.globals.update(csrf_field=csrf_field, csrf_token=csrf_token,
                                 menu=lambda: _menu(navigation), admin=_admin_or_none)
    return app


def session_secret(config: PbxConfig) -> bytes:
    """`portal.session_secret`, else a key derived from `auth.secret` (the same on every host)."""
    if config.portal.session_secret is not None:
        return config.portal.session_secret.get_secret_value().encode()
    if config.auth is not None:
        return hmac.new(bytes.fromhex(config.auth.secret.get_secret_value()), b"pbx portal sessions",
                        hashlib.sha256).digest()
    raise ConfigError(["portal.session_secret: Field required (or auth.secret, to derive it from)"])


def _admin_or_none() -> Any:
    return g.get("admin")


def _menu(navigation: list[NavItem]) -> list[NavItem]:
    admin = _admin_or_none()
    if admin is None or admin.must_change_password:
        return []
    return [item for item in navigation if admin.role in item.roles]


def _security_headers(tls: bool) -> Callable[[Response], Response]:
    def add(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        if tls:
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if request.endpoint != "static":
            headers.setdefault("Cache-Control", "no-store")
        return response
    return add


def _http_error(error: HTTPException) -> Any:
    code = error.code or 500
    if is_api_request():
        response = jsonify(error=error.description)
        response.status_code = code
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response
    return render_template("error.html", code=code, name=error.name, description=error.description), code


__all__ = ["create_app", "current_admin", "session_secret"]
