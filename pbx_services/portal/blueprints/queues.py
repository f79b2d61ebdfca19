"""Call queues and their agents: list, add or change a queue (members, strategy, limits), delete
it, and log agents in and out or pause them (as the feature codes *45-*48 and `pbx agent` do)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, flash, jsonify, redirect, render_template, request, url_for

from pbx_services.cluster.queues import QueueInfo, QueueService, format_skills
from pbx_services.cluster.validation import InvalidValue
from pbx_services.portal.admin_views import (
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
    request_tenant,
    tenant_choices,
    tenant_or_default,
)
from pbx_services.portal.auth import audit
from pbx_services.portal.context import portal_context
from pbx_services.portal.forms import FieldErrors
from pbx_services.portal.navigation import NavItem
from pbx_services.queue.strategies import Strategy

blueprint = Blueprint("queues", __name__)
navigation = (NavItem("Queues", "queues.index", order=50),)
answer_not_found(blueprint)

FIELDS = {"queue number": "number", "number": "number", "name": "name", "unknown queue strategy": "strategy",
          "strategy": "strategy", "skill": "skills", "member": "members", "max wait": "max_wait",
          "max length": "max_length", "overflow": "overflow", "wrap-up": "wrap_up",
          "ring timeout": "ring_timeout", "music": "music_prompt", "tenant": "tenant"}
"""What the queue service's messages start with -> the form's field."""
NUMBERS = ("max_wait", "max_length", "wrap_up", "ring_timeout")
DEFAULTS = {"strategy": Strategy.RING_ALL.value, "max_wait": "0", "max_length": "0", "wrap_up": "10",
            "ring_timeout": "15", "leave_empty": "on"}
STRATEGIES = [(strategy.value, strategy.value) for strategy in Strategy]
AGENT_ACTIONS = ("login", "logout", "pause", "unpause")


def _service() -> QueueService:
    return portal_context().service(QueueService)


def parse_members(field: str, text: str, errors: FieldErrors) -> list[tuple[str, int]]:
    """"1001, 1002:5" -> [("1001", 0), ("1002", 5)]: extensions, each with its penalty after ':'."""
    members = []
    for item in (part.strip() for part in text.replace(";", ",").replace(" ", ",").split(",")):
        if not item:
            continue
        extension, colon, penalty = item.partition(":")
        try:
            members.append((extension.strip(), int(penalty) if colon else 0))
        except ValueError:
            errors.add(field, f"member {item!r}: the penalty after ':' must be a number")
    return members


def format_members(queue: QueueInfo, *, dynamic: bool) -> str:
    return ", ".join(f"{m.extension}:{m.penalty}" if m.penalty else m.extension
                     for m in queue.members if m.dynamic == dynamic)


def _save(form: Mapping[str, Any], tenant: str | None, *, number: str | None = None) -> QueueInfo:
    """Add the queue of the form (or change queue `number`: every setting is the form's)."""
    errors = FieldErrors()
    values = {name: form_int(form, name, errors, int(DEFAULTS[name])) for name in NUMBERS}
    members = parse_members("members", _text(form, "members"), errors)
    dynamic = parse_members("dynamic_members", _text(form, "dynamic_members"), errors)
    raise_if(errors)
    queue = _service().add_queue(
        number or form_text(form, "number") or "", name=form_text(form, "name"),
        strategy=form_text(form, "strategy") or Strategy.RING_ALL.value, members=members,
        dynamic_members=dynamic, skills=_text(form, "skills"), overflow=form_text(form, "overflow"),
        join_empty=form_bool(form, "join_empty"), leave_empty=form_bool(form, "leave_empty"),
        callback=form_bool(form, "callback"), music_prompt=form_text(form, "music_prompt"),
        tenant_domain=tenant, replace=number is not None, **values)
    audit("queue.change" if number else "queue.add", f"{queue.number}@{queue.tenant_domain}")
    return queue


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    if isinstance(value, list):  # the API may give members as a list of "EXT[:PENALTY]"
        return ",".join(str(item) for item in value)
    return str(value or "")


def _delete(number: str, tenant: str | None) -> None:
    _service().delete_queue(number, tenant)
    audit("queue.delete", f"{number}@{tenant_or_default(tenant)}")


def _agent(number: str, extension: str, action: str, tenant: str | None,
           reason: str | None = None) -> list[str]:
    """Log the agent in or out of queue `number`, or pause it there; the queues concerned."""
    service = _service()
    if action in ("login", "logout"):
        queues = service.log_in(extension, queue=number, logged_in=action == "login", tenant_domain=tenant)
    else:
        queues = service.pause(extension, queue=number, paused=action == "pause", reason=reason,
                               tenant_domain=tenant)
    audit(f"agent.{action}", f"{extension} in queue {number}")
    return queues


def _form_of(queue: QueueInfo) -> dict[str, str]:
    form = {"number": queue.number, "name": queue.name or "", "strategy": queue.strategy,
            "members": format_members(queue, dynamic=False),
            "dynamic_members": format_members(queue, dynamic=True),
            "skills": format_skills(queue.skills), "overflow": queue.overflow or "",
            "music_prompt": queue.music_prompt or "", "tenant": queue.tenant_domain,
            **{name: str(getattr(queue, name)) for name in NUMBERS}}
    form.update({name: "on" for name in ("join_empty", "leave_empty", "callback") if getattr(queue, name)})
    return form


def _as_json(queue: QueueInfo) -> dict[str, Any]:
    return dataclasses.asdict(queue)


def _render_index(form: Mapping[str, Any], errors: FieldErrors) -> Any:
    tenant = request_tenant()
    return render_template("queues/index.html", queues=_service().list_queues(tenant), tenant=tenant,
                           tenant_options=[(d, d) for d in tenant_choices()], strategies=STRATEGIES,
                           default_domain=portal_context().config.callmanager.default_domain, form=form,
                           errors=errors)


# -- pages ----------------------------------------------------------------------------------------

@blueprint.route("/queues")
def index() -> Any:
    return _render_index({**DEFAULTS, "tenant": request_tenant() or ""}, FieldErrors())


@blueprint.route("/queues", methods=["POST"])
def add() -> Any:
    tenant = request_tenant()
    return add_page(lambda: _save(request.form, tenant), fields=FIELDS, page_again=_render_index,
                    done=lambda queue: (f"queue {queue.number} added",
                                        url_for("queues.show", number=queue.number, tenant=tenant)))


@blueprint.route("/queues/<number>", methods=["GET", "POST"])
def show(number: str) -> Any:
    tenant = request_tenant()
    queue = _service().queue(number, tenant)
    return edit_page("queues/show.html", current=_form_of(queue),
                     save=lambda: _save(request.form, tenant, number=number), fields=FIELDS,
                     done=f"queue {number} changed",
                     done_to=url_for("queues.show", number=number, tenant=tenant),
                     queue=queue, tenant=tenant, strategies=STRATEGIES)


@blueprint.route("/queues/<number>/delete", methods=["POST"])
def delete(number: str) -> Any:
    tenant = request_tenant()
    return delete_then_redirect(lambda: _delete(number, tenant), done=f"queue {number} deleted",
                                refused_to=url_for("queues.show", number=number, tenant=tenant),
                                done_to=url_for("queues.index", tenant=tenant))


@blueprint.route("/queues/<number>/agents/<extension>/<any(login,logout,pause,unpause):action>",
                 methods=["POST"])
def agent(number: str, extension: str, action: str) -> Any:
    tenant = request_tenant()
    try:
        _agent(number, extension, action, tenant, form_text(request.form, "reason"))
        flash(f"{extension}: {action} in queue {number}")
    except InvalidValue as exc:
        flash(str(exc))
    return redirect(url_for("queues.show", number=number, tenant=tenant))


# -- API ------------------------------------------------------------------------------------------

@blueprint.route("/api/v1/queues")
def api_index() -> Any:
    """A tenant's queues with their members and agent states (query: tenant; default: the default tenant)."""
    with api_errors():
        queues = _service().list_queues(request_tenant())
    return jsonify(queues=[_as_json(queue) for queue in queues])


@blueprint.route("/api/v1/queues", methods=["POST"])
def api_add() -> Any:
    """Add a queue: {"number", "tenant"?, "name"?, "strategy"?, "members"?, "dynamic_members"?, "skills"?,
    "max_wait"?, "max_length"?, "overflow"?, "wrap_up"?, "ring_timeout"?, "join_empty"?, "leave_empty"?,
    "callback"?, "music_prompt"?}; members as ["1001", "1002:5"] (extension[:penalty])."""
    body = json_body()
    with api_errors(FIELDS):
        queue = _save({**DEFAULTS, **body}, request_tenant(body))
    return jsonify(_as_json(queue)), 201


@blueprint.route("/api/v1/queues/<number>")
def api_get(number: str) -> Any:
    """One queue (query: tenant)."""
    with api_errors():
        return jsonify(_as_json(_service().queue(number, request_tenant())))


@blueprint.route("/api/v1/queues/<number>", methods=["PUT"])
def api_replace(number: str) -> Any:
    """Change a queue: every setting as for adding one (those not given take their defaults)."""
    body = json_body()
    with api_errors(FIELDS):
        queue = _save({**DEFAULTS, **body}, request_tenant(body), number=number)
    return jsonify(_as_json(queue))


@blueprint.route("/api/v1/queues/<number>", methods=["DELETE"])
def api_delete(number: str) -> Any:
    """Delete a queue (query: tenant)."""
    with api_errors():
        _delete(number, request_tenant())
    return jsonify(deleted=number)


@blueprint.route("/api/v1/queues/<number>/agents/<extension>/<any(login,logout,pause,unpause):action>",
                 methods=["POST"])
def api_agent(number: str, extension: str, action: str) -> Any:
    """Log a dynamic agent in to or out of the queue, or pause or unpause an agent: {"tenant"?, "reason"?}."""
    body = json_body()
    with api_errors(("reason",)):
        queues = _agent(number, extension, action, request_tenant(body), form_text(body, "reason"))
    return jsonify(extension=extension, action=action, queues=queues)
