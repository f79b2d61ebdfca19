"""Users (extensions): list and search, add, change (permission, call limit, pickup group,
withheld number), their call forwarding and do-not-disturb, delete, and the CSV import of many
at once as a background job with a progress bar (`portal.user_import`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for

from pbx_services.cluster.dao import TenantDao, UserDao
from pbx_services.cluster.forwarding import ForwardingInfo, ForwardingService, ForwardKind
from pbx_services.cluster.models import User
from pbx_services.cluster.models.forwarding import DEFAULT_NO_ANSWER_SECONDS
from pbx_services.cluster.models.user import DEFAULT_PERMISSION, USER_PERMISSIONS
from pbx_services.cluster.users import (
    CSV_OPTIONAL_COLUMNS,
    CSV_REQUIRED_COLUMNS,
    DEFAULT_PICKUP_GROUP,
    UserService,
)
from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.admin_views import (
    FormInvalid,
    add_page,
    answer_not_found,
    api_errors,
    attempt,
    delete_then_redirect,
    edit_page,
    form_bool,
    form_int,
    form_text,
    json_body,
    raise_if,
    request_tenant,
    tenant_choices,
    tenant_or_default,
)
from pbx_services.portal.auth import audit, current_admin, is_api_request, scoped_domain, tenant_filter
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import GENERAL, FieldErrors
from pbx_services.portal.navigation import NavItem
from pbx_services.portal.user_import import ImportProgress, UserImporter

blueprint = Blueprint("users", __name__)
navigation = (NavItem("Users", "users.index", order=30),)
answer_not_found(blueprint)

FIELDS = {"extension": "extension", "password": "password", "name": "name", "email": "email",
          "permission": "permission", "max_calls": "max_calls", "pickup group": "pickup_group",
          "tenant": "tenant"}
FORWARDS = tuple(kind.value for kind in ForwardKind)
PAGE_SIZE = 100
IMPORTER_KEY = "pbx_user_importer"
PERMISSIONS = [(permission.value, permission.value) for permission in USER_PERMISSIONS]


def _service() -> UserService:
    return portal_context().service(UserService)


def _importer() -> UserImporter:
    """One per app: it keeps the threads of the imports this worker runs."""
    context = portal_context()
    importer: UserImporter = current_app.extensions.setdefault(IMPORTER_KEY, UserImporter(
        sessions=context.sessions, default_domain=context.config.callmanager.default_domain))
    return importer


def _as_json(user: User) -> dict[str, Any]:
    return {"extension": user.extension, "tenant": user.tenant.domain, "name": user.display_name,
            "email": user.email, "enabled": user.enabled, "permission": user.permission.value,
            "max_calls": user.max_calls, "pickup_group": user.pickup_group or DEFAULT_PICKUP_GROUP,
            "withhold_number": user.withhold_number}


def _search(tenant: str | None, text: str, limit: int, offset: int) -> tuple[int, list[User]]:
    """A page of users: of `tenant` (None: every tenant the administrator may see)."""
    with portal_context().sessions() as session:
        criteria: dict[str, Any] = {}
        tenant_id = tenant_filter()
        if tenant is not None:
            found = TenantDao(session=session).find_by(domain=tenant.lower())
            criteria["tenant_id"] = found.id if found is not None else -1
        elif tenant_id is not None:
            criteria["tenant_id"] = tenant_id
        result = UserDao(session=session).search(search=text or None, order="extension", limit=limit,
                                                 offset=offset, **criteria)
        return result.total, result.items


def _add(form: Mapping[str, Any], tenant: str | None) -> User:
    errors = FieldErrors()
    max_calls = form_int(form, "max_calls", errors, 0)
    raise_if(errors)
    user = _service().add_user(
        form_text(form, "extension") or "", str(form.get("password") or ""), name=form_text(form, "name"),
        email=form_text(form, "email"), tenant=tenant,
        permission=form_text(form, "permission") or DEFAULT_PERMISSION.value, max_calls=max_calls,
        withhold_number=form_bool(form, "withhold_number"))
    audit("user.add", f"{user.extension}@{user.tenant.domain}", tenant_id=user.tenant_id)
    return user


def _change(extension: str, tenant: str, form: Mapping[str, Any]) -> User:
    errors = FieldErrors()
    max_calls = form_int(form, "max_calls", errors, 0) if form.get("max_calls") not in (None, "") else None
    raise_if(errors)
    # The form's unchecked box is absent (off); in a JSON body an absent key changes nothing.
    given = "withhold_number" in form or not is_api_request()
    withhold = form_bool(form, "withhold_number") if given else None
    user = _service().set_user(extension, tenant=tenant, permission=form_text(form, "permission"),
                               max_calls=max_calls, pickup_group=form_text(form, "pickup_group"),
                               withhold_number=withhold)
    audit("user.change", f"{user.extension}@{user.tenant.domain}", tenant_id=user.tenant_id)
    return user


def _user_form(user: User) -> dict[str, str]:
    return {"permission": user.permission.value, "max_calls": str(user.max_calls),
            "pickup_group": user.pickup_group or DEFAULT_PICKUP_GROUP,
            **({"withhold_number": "on"} if user.withhold_number else {})}


def _forwarding() -> ForwardingService:
    return portal_context().service(ForwardingService)


def _forwarding_form(info: ForwardingInfo) -> dict[str, str]:
    form = {kind: getattr(info, kind) or "" for kind in FORWARDS}
    form["no_answer_seconds"] = str(info.no_answer_seconds)
    if info.dnd:
        form["dnd"] = "on"
    return form


def _set_forwarding(extension: str, tenant: str, form: Mapping[str, Any]) -> ForwardingInfo:
    errors = FieldErrors()
    seconds = form_int(form, "no_answer_seconds", errors, DEFAULT_NO_ANSWER_SECONDS)
    raise_if(errors)
    try:
        info = _forwarding().set_forwarding(
            extension, always=form_text(form, "always"), busy=form_text(form, "busy"),
            no_answer=form_text(form, "no_answer"), no_answer_seconds=seconds,
            unreachable=form_text(form, "unreachable"), dnd=form_bool(form, "dnd"), tenant_domain=tenant)
    except FormInvalid:
        raise
    except InvalidValue as exc:
        raise FormInvalid(FieldErrors({_forward_field(str(exc)): str(exc)})) from None
    audit("user.forwarding", f"{extension}@{tenant}: {info.describe()}")
    return info


def _forward_field(message: str) -> str:
    """The forwarding service names the forward first ("forward of 1001 (busy): 1999 reaches
    nothing"): the field is its kind."""
    for kind in FORWARDS:
        if f"({kind})" in message.partition(":")[0]:
            return kind
    return "no_answer_seconds" if message.startswith("no answer seconds") else GENERAL


def _get(extension: str, tenant: str) -> User:
    with portal_context().sessions() as session:
        owner = TenantDao(session=session).find_by(domain=tenant.lower())
        user = UserDao(session=session).find_by(tenant_id=owner.id, extension=extension) if owner else None
    if user is None:
        abort(404, description=f"no user {extension}@{tenant}")
    return user


def _delete(extension: str, tenant: str) -> None:
    _service().delete_user(extension, tenant=tenant)
    audit("user.delete", f"{extension}@{tenant}")


def _page_args() -> tuple[int, str]:
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        abort(400, description="page: not a whole number")
    return page, request.args.get("q", "").strip()


def _render_index(form: Mapping[str, Any], errors: FieldErrors) -> Any:
    tenant = request_tenant()
    page, text = _page_args()
    total, users = _search(tenant, text, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    return render_template("users/index.html", users=users, total=total, page=page, search=text,
                           pages=max(1, -(-total // PAGE_SIZE)), tenant=tenant, tenants=tenant_choices(),
                           tenant_options=[(domain, domain) for domain in tenant_choices()],
                           permissions=PERMISSIONS, form=form, errors=errors)


# -- pages ----------------------------------------------------------------------------------------

@blueprint.route("/users")
def index() -> Any:
    tenant = tenant_or_default(request_tenant())
    return _render_index({"tenant": tenant, "permission": DEFAULT_PERMISSION.value}, FieldErrors())


@blueprint.route("/users", methods=["POST"])
def add() -> Any:
    tenant = request_tenant()
    return add_page(lambda: _add(request.form, tenant), fields=FIELDS, page_again=_render_index,
                    done=lambda user: (f"user {user.extension}@{user.tenant.domain} added",
                                       url_for("users.index", tenant=tenant)))


@blueprint.route("/users/<tenant>/<extension>", methods=["GET", "POST"])
def edit(tenant: str, extension: str) -> Any:
    domain = scoped_domain(tenant) or tenant
    user = _get(extension, domain)
    return edit_page("users/edit.html", current=_user_form(user),
                     save=lambda: _change(extension, domain, request.form), fields=FIELDS,
                     done=f"user {extension}@{domain} changed", done_to=url_for("users.index", tenant=domain),
                     user=user, domain=domain, permissions=PERMISSIONS,
                     forwarding=_forwarding_form(_forwarding().get(extension, tenant_domain=domain)),
                     forwarding_errors=FieldErrors())


@blueprint.route("/users/<tenant>/<extension>/forwarding", methods=["POST"])
def forwarding(tenant: str, extension: str) -> Any:
    """The user page's forwarding form: every forward and do-not-disturb saved at once."""
    domain = scoped_domain(tenant) or tenant
    user = _get(extension, domain)
    saved, errors = attempt(lambda: _set_forwarding(extension, domain, request.form), FORWARDS)
    if saved is None:
        return render_template("users/edit.html", form=_user_form(user), errors=FieldErrors(), user=user,
                               domain=domain, permissions=PERMISSIONS, forwarding=request.form,
                               forwarding_errors=errors), 400
    flash(f"forwarding of {extension}@{domain} saved: {saved.describe()}")
    return redirect(url_for("users.edit", tenant=domain, extension=extension))


@blueprint.route("/users/<tenant>/<extension>/delete", methods=["POST"])
def delete(tenant: str, extension: str) -> Any:
    domain = scoped_domain(tenant) or tenant
    return delete_then_redirect(lambda: _delete(extension, domain), done=f"user {extension}@{domain} deleted",
                                refused_to=url_for("users.edit", tenant=domain, extension=extension),
                                done_to=url_for("users.index", tenant=domain))


@blueprint.route("/users/import")
def import_form() -> Any:
    return _render_import(FieldErrors())


def _render_import(errors: FieldErrors, status: int = 200) -> Any:
    return render_template("users/import.html", errors=errors, jobs=_importer().recent(tenant_scope=_scope()),
                           columns=CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS,
                           required=CSV_REQUIRED_COLUMNS), status


@blueprint.route("/users/import", methods=["POST"])
def import_upload() -> Any:
    upload = request.files.get("file")
    errors = FieldErrors()
    if upload is None or not upload.filename:
        errors.add("file", "file: choose a CSV file to import")
        return _render_import(errors, 400)
    try:
        job = _start_import(upload.read(), upload.filename)
    except InvalidValue as exc:
        errors.add("file", str(exc))
        return _render_import(errors, 400)
    return redirect(url_for("users.import_job", job_id=job.id))


@blueprint.route("/users/import/<int:job_id>")
def import_job(job_id: int) -> Any:
    return render_template("users/import_job.html", job=_importer().progress(job_id, tenant_scope=_scope()))


def _scope() -> str | None:
    """The tenant an import is limited to: a tenant administrator's."""
    return scoped_domain(None) if tenant_filter() is not None else None


def _start_import(data: bytes, file_name: str) -> ImportProgress:
    job = _importer().start(data, file_name=file_name, tenant_scope=_scope(), created_by=current_admin().name)
    audit("user.import", file_name, f"job {job.id}, {job.total} rows")
    return job


# -- API ------------------------------------------------------------------------------------------

@blueprint.route("/api/v1/users")
def api_index() -> Any:
    """Users, by extension (query: tenant, q to search extension/name/email, limit, offset)."""
    errors = FieldErrors()
    limit = form_int(request.args, "limit", errors, PAGE_SIZE)
    offset = form_int(request.args, "offset", errors, 0)
    with api_errors():
        raise_if(errors)
    total, users = _search(request_tenant(), request.args.get("q", "").strip(), max(limit, 0), max(offset, 0))
    return jsonify(total=total, users=[_as_json(user) for user in users])


@blueprint.route("/api/v1/users", methods=["POST"])
def api_add() -> Any:
    """Add a user: {"extension", "password", "tenant"?, "name"?, "email"?, "permission"?, "max_calls"?,
    "withhold_number"?}."""
    body = json_body()
    with api_errors(FIELDS):
        user = _add(body, request_tenant(body))
    return jsonify(_as_json(user)), 201


@blueprint.route("/api/v1/users/<tenant>/<extension>")
def api_get(tenant: str, extension: str) -> Any:
    """One user."""
    return jsonify(_as_json(_get(extension, scoped_domain(tenant) or tenant)))


@blueprint.route("/api/v1/users/<tenant>/<extension>", methods=["PATCH"])
def api_change(tenant: str, extension: str) -> Any:
    """Change a user's outbound permission, call limit or withheld number: {"permission"?, "max_calls"?,
    "withhold_number"?}."""
    domain = scoped_domain(tenant) or tenant
    with api_errors(FIELDS):
        user = _change(extension, domain, json_body())
    return jsonify(_as_json(user))


@blueprint.route("/api/v1/users/<tenant>/<extension>/forwarding")
def api_forwarding(tenant: str, extension: str) -> Any:
    """A user's call forwarding and do-not-disturb."""
    domain = scoped_domain(tenant) or tenant
    with api_errors():
        info = _forwarding().get(extension, tenant_domain=domain)
    return jsonify(dataclasses.asdict(info))


@blueprint.route("/api/v1/users/<tenant>/<extension>/forwarding", methods=["PUT"])
def api_set_forwarding(tenant: str, extension: str) -> Any:
    """Set every forward of a user and its do-not-disturb at once: {"always"?, "busy"?, "no_answer"?,
    "no_answer_seconds"?, "unreachable"?, "dnd"?}; a destination absent or null is off."""
    domain = scoped_domain(tenant) or tenant
    with api_errors():
        info = _set_forwarding(extension, domain, json_body())
    return jsonify(dataclasses.asdict(info))


@blueprint.route("/api/v1/users/<tenant>/<extension>", methods=["DELETE"])
def api_delete(tenant: str, extension: str) -> Any:
    """Delete a user."""
    domain = scoped_domain(tenant) or tenant
    with api_errors():
        _delete(extension, domain)
    return jsonify(deleted=f"{extension}@{domain}")


@blueprint.route("/api/v1/users/imports", methods=["POST"])
def api_import() -> Any:
    """Import users from CSV in the background: {"csv": "extension,password,...", "file_name"?}; 202, the job.

    Follow it with GET /api/v1/users/imports/{job_id}. Rows are checked one by one: a bad row is
    reported by line and column and skipped, the others imported; existing users are left unchanged."""
    body = json_body()
    text = body.get("csv")
    if not isinstance(text, str):
        abort(400, description="csv: the file's text (a string)")
    with api_errors(("csv",)):
        job = _start_import(text.encode(), str(body.get("file_name") or "users.csv"))
    return jsonify(job.as_dict()), 202


@blueprint.route("/api/v1/users/imports")
def api_imports() -> Any:
    """The latest CSV imports, newest first."""
    return jsonify(imports=[job.as_dict() for job in _importer().recent(tenant_scope=_scope())])


@blueprint.route("/api/v1/users/imports/<int:job_id>")
def api_import_job(job_id: int) -> Any:
    """A CSV import's progress: state, total, processed, imported, existing, failed, the first errors."""
    return jsonify(_importer().progress(job_id, tenant_scope=_scope()).as_dict())
