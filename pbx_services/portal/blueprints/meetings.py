"""Meeting rooms: list, add or change a room (PINs, size, moderator rules), delete it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, jsonify, render_template, request, url_for

from pbx_services.cluster.meetings import MeetingRoomInfo, MeetingService
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

blueprint = Blueprint("meetings", __name__)
navigation = (NavItem("Meeting rooms", "meetings.index", order=60),)
answer_not_found(blueprint)

FIELDS = {"meeting room number": "number", "number": "number", "name": "name", "pin": "pin",
          "moderator pin": "moderator_pin", "max participants": "max_participants", "pin tries": "pin_tries",
          "wait for moderator": "wait_for_moderator", "end with moderator": "end_with_moderator",
          "tenant": "tenant"}
"""What the meeting service's messages start with -> the form's field."""
NUMBERS = {"max_participants": 50, "pin_tries": 3}
FLAGS = {"wait_for_moderator": False, "end_with_moderator": False, "mute_on_entry": False,
         "entry_tones": True, "record": False}
DEFAULTS = {"max_participants": "50", "pin_tries": "3", "entry_tones": "on"}


def _service() -> MeetingService:
    return portal_context().service(MeetingService)


def _save(form: Mapping[str, Any], tenant: str | None, *, number: str | None = None) -> MeetingRoomInfo:
    errors = FieldErrors()
    numbers = {name: form_int(form, name, errors, default) for name, default in NUMBERS.items()}
    raise_if(errors)
    flags = {name: form_bool(form, name) for name in FLAGS}
    room = _service().add_room(number or form_text(form, "number") or "", name=form_text(form, "name"),
                               pin=form_text(form, "pin"), moderator_pin=form_text(form, "moderator_pin"),
                               max_participants=numbers["max_participants"], pin_tries=numbers["pin_tries"],
                               tenant_domain=tenant, replace=number is not None, **flags)
    audit("meeting.change" if number else "meeting.add", f"{room.number}@{room.tenant_domain}")
    return room


def _delete(number: str, tenant: str | None) -> None:
    _service().delete_room(number, tenant)
    audit("meeting.delete", f"{number}@{tenant_or_default(tenant)}")


def _form_of(room: MeetingRoomInfo) -> dict[str, str]:
    form = {"number": room.number, "name": room.name or "", "pin": room.pin or "",
            "moderator_pin": room.moderator_pin or "", "max_participants": str(room.max_participants),
            "pin_tries": str(room.pin_tries)}
    form.update({name: "on" for name in FLAGS if getattr(room, name)})
    return form


def _render_index(form: Mapping[str, Any], errors: FieldErrors) -> Any:
    tenant = request_tenant()
    return render_template("meetings/index.html", rooms=_service().list_rooms(tenant), tenant=tenant,
                           tenant_options=[(d, d) for d in tenant_choices()],
                           default_domain=portal_context().config.callmanager.default_domain, form=form,
                           errors=errors)


# -- pages ----------------------------------------------------------------------------------------

@blueprint.route("/meetings")
def index() -> Any:
    return _render_index({**DEFAULTS, "tenant": request_tenant() or ""}, FieldErrors())


@blueprint.route("/meetings", methods=["POST"])
def add() -> Any:
    tenant = request_tenant()
    return add_page(lambda: _save(request.form, tenant), fields=FIELDS, page_again=_render_index,
                    done=lambda room: (f"meeting room {room.number} added",
                                       url_for("meetings.index", tenant=tenant)))


@blueprint.route("/meetings/<number>", methods=["GET", "POST"])
def edit(number: str) -> Any:
    tenant = request_tenant()
    room = _service().room(number, tenant)
    return edit_page("meetings/edit.html", current=_form_of(room),
                     save=lambda: _save(request.form, tenant, number=number), fields=FIELDS,
                     done=f"meeting room {number} changed", done_to=url_for("meetings.index", tenant=tenant),
                     room=room, tenant=tenant)


@blueprint.route("/meetings/<number>/delete", methods=["POST"])
def delete(number: str) -> Any:
    tenant = request_tenant()
    return delete_then_redirect(lambda: _delete(number, tenant), done=f"meeting room {number} deleted",
                                refused_to=url_for("meetings.edit", number=number, tenant=tenant),
                                done_to=url_for("meetings.index", tenant=tenant))


# -- API ------------------------------------------------------------------------------------------

@blueprint.route("/api/v1/meetings")
def api_index() -> Any:
    """A tenant's meeting rooms (query: tenant; default: the default tenant)."""
    with api_errors():
        rooms = _service().list_rooms(request_tenant())
    return jsonify(rooms=[dataclasses.asdict(room) for room in rooms])


@blueprint.route("/api/v1/meetings", methods=["POST"])
def api_add() -> Any:
    """Add a room: {"number", "tenant"?, "name"?, "pin"?, "moderator_pin"?, "max_participants"?, "pin_tries"?,
    "wait_for_moderator"?, "end_with_moderator"?, "mute_on_entry"?, "entry_tones"?, "record"?}."""
    body = json_body()
    with api_errors(FIELDS):
        room = _save({**FLAGS, **body}, request_tenant(body))
    return jsonify(dataclasses.asdict(room)), 201


@blueprint.route("/api/v1/meetings/<number>")
def api_get(number: str) -> Any:
    """One room (query: tenant)."""
    with api_errors():
        return jsonify(dataclasses.asdict(_service().room(number, request_tenant())))


@blueprint.route("/api/v1/meetings/<number>", methods=["PUT"])
def api_replace(number: str) -> Any:
    """Change a room: every setting as for adding one (those not given take their defaults)."""
    body = json_body()
    with api_errors(FIELDS):
        room = _save({**FLAGS, **body}, request_tenant(body), number=number)
    return jsonify(dataclasses.asdict(room))


@blueprint.route("/api/v1/meetings/<number>", methods=["DELETE"])
def api_delete(number: str) -> Any:
    """Delete a room (query: tenant)."""
    with api_errors():
        _delete(number, request_tenant())
    return jsonify(deleted=number)
