"""The administrators page: a wrong value is shown next to its field; the API says which field."""

from __future__ import annotations

import re
from html import unescape as html_unescape

from pbx_services.cluster.admins import AdminService
from tests.unit.portal.conftest import TENANT_A, LoggedIn


def field_error(html: str, field: str) -> str | None:
    match = re.search(rf'<p class="field-error" id="error-{field}" role="alert">([^<]*)</p>', html)
    return html_unescape(match.group(1)) if match else None


def test_a_wrong_value_is_shown_next_to_its_field(logged_in: LoggedIn, admins: AdminService) -> None:
    client, token = logged_in("root")

    def add(**form: str) -> tuple[int, str]:
        reply = client.post("/admins", data={"csrf_token": token, "role": "operator", "tenant": "", **form})
        return reply.status_code, reply.get_data(as_text=True)

    status, html = add(name="bad name!", password="long-enough-password")
    assert status == 400
    assert (field_error(html, "name") or "").startswith("administrator name 'bad name!' must be 1 to 64")
    assert 'value="bad name!"' in html  # what was typed stays in the form
    assert field_error(add(name="carol", password="short")[1], "password") == \
        "password is shorter than 10 characters"
    assert field_error(add(name="carol", password="long-enough-password", role="tenant")[1], "tenant") == \
        "tenant: a tenant administrator needs its tenant"
    assert field_error(add(name="carol", password="long-enough-password", role="tenant",
                           tenant="nowhere.example")[1], "tenant") == "tenant: no tenant nowhere.example"
    assert field_error(add(name="ops", password="long-enough-password")[1], "name") == \
        "administrator ops already exists"
    assert field_error(add(name="carol", password="long-enough-password", role="king")[1], "role") == \
        "role: one of system, operator, tenant"
    assert "carol" not in [admin.name for admin in admins.list_admins()]

    status, _ = add(name="carol", password="long-enough-password", role="tenant", tenant=TENANT_A)
    assert status == 302
    assert next(a for a in admins.list_admins() if a.name == "carol").tenant == TENANT_A


def test_the_api_names_the_wrong_field(logged_in: LoggedIn) -> None:
    client, token = logged_in("root")
    headers = {"X-CSRF-Token": token}

    bad = client.post("/api/v1/admins", json={"name": "dave", "password": "x", "role": "operator"},
                      headers=headers)
    twice = client.post("/api/v1/admins", json={"name": "ops", "password": "long-enough-password",
                                                "role": "operator"}, headers=headers)
    good = client.post("/api/v1/admins", json={"name": "dave", "password": "long-enough-password",
                                               "role": "operator"}, headers=headers)

    assert bad.status_code == 400
    assert bad.get_json()["fields"] == {"password": "password is shorter than 10 characters"}
    assert twice.status_code == 409
    assert good.status_code == 201 and good.get_json()["role"] == "operator"


def test_an_administrator_cannot_delete_itself(logged_in: LoggedIn) -> None:
    client, token = logged_in("root")

    reply = client.delete("/api/v1/admins/root", headers={"X-CSRF-Token": token})

    assert reply.status_code == 400
    assert reply.get_json() == {"error": "you cannot delete yourself"}
