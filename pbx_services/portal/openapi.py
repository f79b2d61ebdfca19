"""The OpenAPI 3 document of the portal's REST API, made from its routes.

Every rule under /api/v1/ is an operation: its path parameters come from the rule's
converters, its summary and description from the view's docstring, so a blueprint's API
is described as soon as it is registered.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from flask import Flask

API_ROOT = "/api/v1/"
OPENAPI_VERSION = "3.0.3"
_CONVERTER = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\((?P<args>[^)]*)\))?:)?(?P<name>\w+)>")
_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}}
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def openapi_document(app: Flask, *, version: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(API_ROOT):
            continue
        view = app.view_functions[rule.endpoint]
        path, parameters = _path_and_parameters(rule.rule)
        doc = inspect.getdoc(view) or rule.endpoint
        summary, _, description = doc.partition("\n")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            operation: dict[str, Any] = {
                "operationId": f"{rule.endpoint}.{method.lower()}",
                "tags": [rule.endpoint.split(".", 1)[0]],
                "summary": summary.strip(),
                "parameters": parameters,
                "responses": {
                    "200": {"description": "done; a JSON object"},
                    "400": {"description": "a value is wrong; `error` names it", **_ERROR},
                    "401": {"description": "not logged in", **_ERROR},
                    "403": {"description": "your role or tenant may not", **_ERROR},
                    "404": {"description": "no such thing", **_ERROR},
                },
            }
            if description.strip():
                operation["description"] = description.strip()
            if method in _UNSAFE:
                operation["requestBody"] = {"required": False, "content": {"application/json": {
                    "schema": {"type": "object"}}}}
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "PBX portal API", "version": version,
                 "description": "Log in with HTTP Basic (scripts; a request that changes something must be "
                                "application/json) or the portal's session cookie (then send the page's CSRF "
                                "token in X-CSRF-Token)."},
        "servers": [{"url": "/"}],
        "components": {"securitySchemes": {
            "basic": {"type": "http", "scheme": "basic"},
            "session": {"type": "apiKey", "in": "cookie", "name": "pbx_portal"}},
            "schemas": {"Error": {"type": "object", "properties": {"error": {"type": "string"}}}}},
        "security": [{"basic": []}, {"session": []}],
        "paths": paths,
    }


_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _path_and_parameters(rule: str) -> tuple[str, list[dict[str, Any]]]:
    parameters: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        converter, name = match.group("converter") or "string", match.group("name")
        schema: dict[str, Any] = dict(_TYPES.get(converter, {"type": "string"}))
        if converter == "any" and match.group("args"):
            schema["enum"] = [value.strip().strip("'\"") for value in match.group("args").split(",")]
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER.sub(replace, rule), parameters
