"""The portal's own health check (no login: keepalived and Ansible ask it), the API's OpenAPI
document, and who is logged in."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from pbx_services.portal.auth import current_admin, public
from pbx_services.portal.context import portal_context
from pbx_services.portal.openapi import openapi_document
from pbx_services.runtime.daemon import package_version

blueprint = Blueprint("api", __name__)


@blueprint.route("/health")
@public
def health() -> Any:
    try:
        with portal_context().sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return jsonify(status="degraded", role="portal", version=package_version(),
                       database=f"unreachable: {type(exc).__name__}"), 503
    return jsonify(status="ok", role="portal", version=package_version(), database="ok")


@blueprint.route("/api/v1/openapi.json")
def openapi() -> Any:
    """This document: the portal's REST API in OpenAPI 3."""
    return jsonify(openapi_document(current_app, version=package_version()))


@blueprint.route("/api/v1/me")
def me() -> Any:
    """The administrator the request is authenticated as: name, role and tenant."""
    admin = current_admin()
    return jsonify(name=admin.name, role=admin.role.value, tenant=admin.tenant,
                   must_change_password=admin.must_change_password)
