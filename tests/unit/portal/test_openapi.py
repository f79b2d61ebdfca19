"""The OpenAPI document: every API route is in it, with its parameters."""

from __future__ import annotations

from flask import Flask

from tests.unit.portal.conftest import LoggedIn


def test_every_api_route_is_described(app: Flask, logged_in: LoggedIn) -> None:
    client, _ = logged_in("ops")

    document = client.get("/api/v1/openapi.json").get_json()

    assert document["openapi"].startswith("3.")
    api_rules = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")}
    assert len(document["paths"]) == len(api_rules)
    toggle = document["paths"]["/api/v1/servers/{name}/{action}"]["post"]
    assert toggle["summary"].startswith("Enable a server")
    assert {p["name"]: p["schema"] for p in toggle["parameters"]} == {
        "name": {"type": "string"}, "action": {"type": "string", "enum": ["enable", "disable"]}}
    assert "get" in document["paths"]["/api/v1/servers"]
    assert set(document["components"]["securitySchemes"]) == {"basic", "session"}


def test_the_document_needs_a_login(app: Flask) -> None:
    assert app.test_client().get("/api/v1/openapi.json").status_code == 401
