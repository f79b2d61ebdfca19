"""Ring groups: numbers that ring several users at once or in turn; list, add, change, delete,
as `pbx ring-group` does (docs/call-features.md)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, jsonify, render_template, request, url_for

from pbx_services.cluster.ring_groups import RingGroupInfo, RingGroupService, RingStrategy
from pbx_services.portal.admin_views import (
    add_page,
    answer_not_found,
    api_errors,
    delete_then_redirect,
    edit_page,
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

blueprint = Blueprint("ring_groups", __name__)
navigation = (NavItem("Ring groups", "ring_groups.index", order=55),)
answer_not_found(blueprint)

FIELDS = {"ring group number": "number", "ring seconds": "ring_seconds", "unknown strategy": "strategy",
          "name": "name", "no member": "members", "more than": "members", "a member": "members",
          "member": "members", "final destination": "final_destination", "tenant": "tenant"}
"""What the ring group service's messages start with (after "ring group N: ") -> the form's field."""
DEFAULTS = {"strategy": RingStrategy.SIMULTANEOUS.value, "ring_seconds": "20"}
STRATEGIES = [(strategy.value, strategy.value) for strategy in RingStrategy]


def _service() -> RingGroupService:
    return portal_context().service(RingGroupService)


def _save(form: Mapping[str, Any], tenant: str | None, *, number: str | None = None) -> RingGroupInfo:
    errors = FieldErrors()
    seconds = form_int(form, "ring_seconds", errors, 20)
    raise_if(errors)
    group = _service().add_group(
        number or form_text(form, "number") or "", members=form_list(form, "members"),
        strategy=form_text(form, "strategy") or RingStrategy.SIMULTANEOUS.value, ring_seconds=seconds,
        final_destination=form_text(form, "final_destination"), name=form_text(form, "name"),
        tenant_domain=tenant, replace=number is not None)
    audit("ring_group.change" if number else "ring_group.add", f"{group.number}@{group.tenant_domain}")
    return group


def _delete(number: str, tenant: str | None) -> None:
    _service().delete_group(number, tenant)
    audit("ring_group.delete", f"{number}@{tenant_or_default(tenant)}")


def _group(number: str, tenant: str | None) -> RingGroupInfo:
    return found_or_404(_service().list_groups(tenant), "number", number, "ring group")


def _form_of(group: RingGroupInfo) -> dict[str, str]:
    return {"number": group.number, "name": group.name or "", "strategy": group.strategy,
            "members": ", ".join(group.members), "ring_seconds": str(group.ring_seconds),
            "final_destination": group.final_destination or ""}


def _render_index(form: Mapping[str, Any], errors: FieldErrors) -> Any:
    tenant = request_tenant()
    return render_template("ring_groups/index.html", groups=_service().list_groups(tenant), tenant=tenant,
                           tenant_options=[(d, d) for d in tenant_choices()], strategies=STRATEGIES,
                           default_domain=portal_context().config.callmanager.default_domain, form=form,
                           errors=errors)


@blueprint.route("/ring-groups")
def index() -> Any:
    return _render_index({**DEFAULTS, "tenant": request_tenant() or ""}, FieldErrors())


@blueprint.route("/ring-groups", methods=["POST"])
def add() -> Any:
    tenant = request_tenant()
    return add_page(lambda: _save(request.form, tenant), fields=FIELDS, page_again=_render_index,
                    done=lambda group: (f"ring group {group.number} added",
                                        url_for("ring_groups.index", tenant=tenant)))


@blueprint.route("/ring-groups/<number>", methods=["GET", "POST"])
def edit(number: str) -> Any:
    tenant = request_tenant()
    group = _group(number, tenant)
    return edit_page("ring_groups/edit.html", current=_form_of(group),
                     save=lambda: _save(request.form, tenant, number=number), fields=FIELDS,
                     done=f"ring group {number} changed", done_to=url_for("ring_groups.index", tenant=tenant),
                     group=group, tenant=tenant, strategies=STRATEGIES)


@blueprint.route("/ring-groups/<number>/delete", methods=["POST"])
def delete(number: str) -> Any:
    tenant = request_tenant()
    return delete_then_redirect(lambda: _delete(number, tenant), done=f"ring group {number} deleted",
                                refused_to=url_for("ring_groups.edit", number=number, tenant=tenant),
                                done_to=url_for("ring_groups.index", tenant=tenant))


@blueprint.route("/api/v1/ring-groups")
def api_index() -> Any:
    """A tenant's ring groups (query: tenant)."""
    with api_errors():
        groups = _service().list_groups(request_tenant())
    return jsonify(ring_groups=[dataclasses.asdict(group) for group in groups])


@blueprint.route("/api/v1/ring-groups", methods=["POST"])
def api_add() -> Any:
    """Add a ring group: {"number", "members": [extensions, in the order they ring], "tenant"?,
    "strategy"?, "ring_seconds"?, "final_destination"?, "name"?}."""
    body = json_body()
    with api_errors(FIELDS):
        group = _save(body, request_tenant(body))
    return jsonify(dataclasses.asdict(group)), 201


@blueprint.route("/api/v1/ring-groups/<number>", methods=["PUT"])
def api_replace(number: str) -> Any:
    """Change a ring group: every setting as for adding one."""
    body = json_body()
    with api_errors(FIELDS):
        tenant = request_tenant(body)
        _group(number, tenant)
        group = _save(body, tenant, number=number)
    return jsonify(dataclasses.asdict(group))


@blueprint.route("/api/v1/ring-groups/<number>", methods=["DELETE"])
def api_delete(number: str) -> Any:
    """Delete a ring group nothing sends calls to (query: tenant)."""
    with api_errors():
        _delete(number, request_tenant())
    return jsonify(deleted=number)
