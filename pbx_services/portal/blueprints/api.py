"""The portal's own health check (no login: keepalived and Ansible ask it), the API's OpenAPI
document, and who is logged in."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from pbx_services.portal.auth import current_admin, public
from pbx_services.portal.context import portal_context
from pbx_services.portal.openapi import openapi_document

blueprint = Blueprint("api", __name__)


def pbx_version() -> str:
    try:
        return version("pbx-services")
    except PackageNotFoundError:
        return "unknown"


@blueprint.route("/health")
@public
def health() -> Any:
    try:
        with portal_context().sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return jsonify(status="degraded", role="portal", version=pbx_version(),
                       database=f"unreachable: {type(exc).__name__}"), 503
    return jsonify(status="ok", role="portal", version=pbx_version(), database="ok")


@blueprint.route("/api/v1/openapi.json")
def openapi() -> Any:
    """This document: the portal's REST API in OpenAPI 3."""
    return jsonify(openapi_document(current_app, version=pbx_version()))


@blueprint.route("/api/v1/me")
def me() -> Any:
    """The administrator the request is authenticated as: name, role and tenant."""
    admin = current_admin()
    return jsonify(name=admin.name, role=admin.role.value, tenant=admin.tenant,
                   must_change_password=admin.must_change_password)
